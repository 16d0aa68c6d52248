/* test_train.c - the training protocol computed in-process (modules, loss
 * and optimizer called directly, as llm.c's train loop) ends with the same
 * weights, bit for bit, as the tools run in step mode (one process per stage
 * per step; tests/tools/train_modes.sh holds stream mode to step mode).
 * Needs the tools: $TP_BIN. */
#include "test.h"
#include "cli.h"
#include "io.h"
#include "chain.h"
#include "module.h"
#include "objective.h"
#include "optim.h"
#include "tz.h"
#include "vqgan.h"
#include "vqmod.h"

#include <fcntl.h>
#include <unistd.h>

#define STEPS 3
static const struct module_ops *const enc_ops[] = {&vqgan_encoder_ops, NULL};
static const struct module_ops *const vq_ops[] = {&vq_module_ops, NULL};
static const struct module_ops *const dec_ops[] = {&vqgan_decoder_ops, NULL};
static const char *const names[3] = {"encode", "vq", "decode"};
static const char *const metas[3] = {
    "arch=vqgan-encoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=1 z=8",
    "arch=vq codes=64 dim=8 l2=0 beta=0.25",
    "arch=vqgan-decoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=1 z=8",
};
static const char *const OPT = "--lr 2e-3 --warmup 1 --schedule cosine --total 3 --clip 1.0 -j 2";

static struct st *meta_of(const char *kv)
{
    struct st *m = st_new();
    char *c = tp_strdup(kv), *save = NULL;
    for (char *t = strtok_r(c, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        *eq = 0;
        st_meta_set(m, t, eq + 1);
    }
    free(c);
    return m;
}

static struct st *batch(int i)
{
    struct st *r = st_new();
    float *x = st_put_v(r, "image", ST_F32, 4, (int64_t)2, (int64_t)1, (int64_t)16, (int64_t)16)->data;
    struct rng g;
    rng_seed(&g, 100 + (uint64_t)i);
    for (int k = 0; k < 2 * 256; k++) x[k] = rng_uniform(&g);
    st_meta_set_long(r, "step", i);
    return r;
}

static void write_one(const char *path, const struct st *r)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    struct tz_writer *w = tz_writer_open(fd, path, 1, 0);
    assert_int_equal(tz_writer_put(w, r), 0);
    assert_int_equal(tz_writer_close(w), 0);
    close(fd);
}

static int sh(const char *fmt, ...) TP_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void test_inprocess_equals_step_mode(void **state)
{
    (void)state;
    const char *bin = getenv("TP_BIN");
    if (!bin) bin = "bin";
    char dir[] = "/tmp/tp_train_XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct module m[3];
    struct optim_cfg oc;
    optim_cfg_init(&oc);
    oc.lr = 2e-3, oc.warmup = 1, oc.schedule = OPTIM_COSINE, oc.total = 3, oc.clip = 1.0;
    const struct module_ops *const *ops[3] = {enc_ops, vq_ops, dec_ops};
    struct optim *opt = optim_new(&oc);
    assert_non_null(opt);
    char path[512];
    for (int k = 0; k < 3; k++) {
        struct st *meta = meta_of(metas[k]);
        assert_int_equal(module_build(&m[k], ops[k], meta), 0);
        params_fill_init(&m[k].params, 7 + (uint64_t)k);
        snprintf(path, sizeof path, "%s/%s.st", dir, names[k]);
        assert_int_equal(params_save(&m[k].params, path, m[k].meta), 0);
        st_free(meta);
    }
    float *init_dec = tp_malloc(m[2].params.total * sizeof(float));
    memcpy(init_dec, m[2].params.data, m[2].params.total * sizeof(float));
    tp_threads_set(2);
    struct objective obj;
    objective_init(&obj);
    assert_int_equal(objective_add(&obj, "mse"), 0);
    struct chain ch;
    struct module *mp[3] = {&m[0], &m[1], &m[2]};
    chain_init(&ch, mp, 3, opt, &obj);
    for (int i = 0; i < STEPS; i++) {
        struct st *rec = batch(i);
        snprintf(path, sizeof path, "%s/in%d.tz", dir, i);
        write_one(path, rec);
        /* in-process: forward through the chain, loss, backward, update */
        assert_int_equal(chain_step(&ch, rec), 0);
        st_free(rec);
        /* the tools, step mode */
        int rc = sh("cd %s && B=%s && "
                    "$B/encode -w encode.st --training -j 2 < in%d.tz > lat.tz && "
                    "$B/vq -w vq.st --training -j 2 < lat.tz > q.tz && "
                    "$B/decode -w decode.st --training -j 2 < q.tz > out.tz && "
                    "$B/loss mse < out.tz > g.tz && "
                    "$B/decode -w decode.st --backward q.tz -g dec.g -j 2 < g.tz > qg.tz && "
                    "$B/vq -w vq.st --backward lat.tz -g vq.g -j 2 < qg.tz > lg.tz && "
                    "$B/encode -w encode.st --backward in%d.tz -g enc.g -j 2 < lg.tz > /dev/null && "
                    "$B/optim -w encode.st -g enc.g -s enc.s %s > /dev/null && "
                    "$B/optim -w vq.st -g vq.g -s vq.s %s > /dev/null && "
                    "$B/optim -w decode.st -g dec.g -s dec.s %s > /dev/null",
                    dir, bin, i, i, OPT, OPT, OPT);
        assert_int_equal(rc, 0);
    }
    /* training moved the weights: the comparison below is not of two inits */
    assert_true(memcmp(init_dec, m[2].params.data, m[2].params.total * sizeof(float)) != 0);
    free(init_dec);
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s.st", dir, names[k]);
        struct st *w;
        assert_int_equal(st_load(&w, path), 0);
        int differs = 0;
        for (int j = 0; j < m[k].params.n; j++) {
            const struct param_spec *p = &m[k].params.spec[j];
            struct st_tensor *t = st_find(w, p->name);
            assert_non_null(t);
            if (memcmp(t->data, m[k].params.data + p->offset, p->numel * sizeof(float)) != 0) {
                print_error("%s: %s differs between in-process and step mode\n", names[k], p->name);
                differs = 1;
            }
        }
        assert_false(differs);
        st_free(w);
    }
    chain_free(&ch);
    for (int k = 0; k < 3; k++) {
        module_free(&m[k]);
    }
    optim_free(opt);
    assert_int_equal(sh("rm -rf %s", dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inprocess_equals_step_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
