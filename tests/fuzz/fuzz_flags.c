/* fuzz_flags.c - libFuzzer target: the option parsing of every tool.
 *
 * Input: NUL-separated arguments; the first names the tool (argv[0]), the
 * rest are its arguments ('/' becomes '_', so every path is a name in an
 * empty scratch directory). The tool's own main runs (tools/X.c, compiled
 * with -Dmain=X_main; the stage tools go through lib/stage.c, the
 * optimizer flags through lib/optim_cli.c, `tz CMD` through lib/tzcmd_*)
 * and is stopped at the end of its parsing without any source change:
 *   - exit() is wrapped at link time (ld --wrap=exit): usage errors, -h
 *     and --version longjmp back here instead of ending the process;
 *   - the first call each tool makes after parsing is wrapped and longjmps
 *     back: tp_threads_set (stage tools, img2patch, loss, mask),
 *     tz_reader_open_path (patch2img, tz merge), st_load (optim, after its
 *     settings are checked by optim_new), and for tz the input/output
 *     openers (tzc_inputs, tzc_out_open, tzc_text_open, progress_init,
 *     io_mkdirs).
 * Nothing is read or written: the parsers are the target. A crash, a
 * sanitizer report, a hang, or an exit status other than 0 and 2 (a usage
 * error) is a bug. Leak checks are off: a longjmp out of a parser leaves
 * what it allocated (the tools exit there); the harness tracks what is
 * allocated during a run (sanitizer malloc hooks) and frees what is left,
 * so long runs stay within the fuzzer's RSS limit. */
#include <getopt.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sanitizer/allocator_interface.h>

#include "cli.h"
#include "io.h"
#include "st.h"
#include "tz.h"
#include "tzcmd.h"

#define TOOLS(X) X(encode) X(vq) X(decode) X(transformer) X(img2patch) X(patch2img) \
                 X(loss) X(mask) X(optim) X(tz)
#define DECL(t) int t##_main(int argc, char **argv);
TOOLS(DECL)

enum { STOP_THREADS = 1, STOP_READER = 2, STOP_STLOAD = 4, STOP_TZ = 8 };

static const struct {
    const char *name;
    int (*main)(int, char **);
    unsigned stop;
} tools[] = {
    {"encode", encode_main, STOP_THREADS},
    {"vq", vq_main, STOP_THREADS},
    {"decode", decode_main, STOP_THREADS},
    {"transformer", transformer_main, STOP_THREADS},
    {"img2patch", img2patch_main, STOP_THREADS},
    {"patch2img", patch2img_main, STOP_READER},
    {"loss", loss_main, STOP_THREADS},
    {"mask", mask_main, STOP_THREADS},
    {"optim", optim_main, STOP_STLOAD},
    {"tz", tz_main, STOP_TZ | STOP_READER},
};

static jmp_buf env;
static int armed;
static unsigned stop;
static int devnull = -1, cwd = -1;

enum { R_EXIT = 0x1000, R_STOP = 0x2000 };

const char *__asan_default_options(void) { return "detect_leaks=0"; }

/* ---- what a run allocated and did not free ------------------------------------- */

/* Open addressing over the live allocations of one run; the hooks run
 * inside malloc/free, so nothing here allocates. */
/* a parse allocates a few blocks, but glibc's regcomp (optim --freeze) may
 * leave thousands live at the stop; more than LIVE_CAP / 2: not freed, and
 * the fuzzer's memory grows run by run to its limit (it did, at 4096) */
#define LIVE_CAP (1 << 16)
static const volatile void *live[LIVE_CAP];
static long nlive;
static int tracking, overflow;

static size_t slot(const volatile void *p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 52; }

static void on_malloc(const volatile void *p, size_t n)
{
    (void)n;
    if (!tracking || !p) return;
    if (nlive >= LIVE_CAP / 2) {
        overflow = 1;
        return;
    }
    size_t i = slot(p);
    while (live[i]) i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    nlive++;
}

static void on_free(const volatile void *p)
{
    if (!tracking || !p || !nlive) return;
    size_t i = slot(p);
    while (live[i] && live[i] != p) i = (i + 1) & (LIVE_CAP - 1);
    if (!live[i]) return;
    live[i] = NULL;
    nlive--;
    /* backward-shift deletion keeps every probe chain unbroken */
    for (size_t j = (i + 1) & (LIVE_CAP - 1); live[j]; j = (j + 1) & (LIVE_CAP - 1)) {
        size_t h = slot(live[j]);
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            live[i] = live[j];
            live[j] = NULL;
            i = j;
        }
    }
}

/* Free what the run left (the tools would exit here), then forget it. */
static void free_leftovers(void)
{
    tracking = 0;
    for (size_t i = 0; i < LIVE_CAP && nlive; i++)
        if (live[i]) {
            if (!overflow) free((void *)live[i]);
            live[i] = NULL;
            nlive--;
        }
    nlive = 0;
    overflow = 0;
}

/* ---- the wrapped functions --------------------------------------------------- */

_Noreturn void __real_exit(int code);
void __real_tzc_inputs(struct tzc *c, int argc, char **argv);
void __real_tzc_out_open(struct tzc *c);
FILE *__real_tzc_text_open(struct tzc *c);
struct tz_reader *__real_tz_reader_open_path(const char *path);
void __real_progress_init(struct progress *p, const char *what, long total, int force);
int __real_io_mkdirs(const char *path);
int __real_st_load(struct st **out, const char *path);

_Noreturn void __wrap_exit(int code)
{
    if (armed) longjmp(env, R_EXIT | (code & 0xff));
    __real_exit(code);
}

static void stop_here(unsigned why)
{
    if (armed && (stop & why)) longjmp(env, R_STOP);
}

void __wrap_cli_init(int argc, char **argv)
{
    (void)argc;
    const char *s = strrchr(argv[0], '/');
    tp_progname = s ? s + 1 : argv[0];
}

void __wrap_tp_threads_set(int n)
{
    (void)n;   /* never start thread pools here */
    stop_here(STOP_THREADS);
}

void __wrap_tzc_inputs(struct tzc *c, int argc, char **argv)
{
    stop_here(STOP_TZ);
    __real_tzc_inputs(c, argc, argv);
}

void __wrap_tzc_out_open(struct tzc *c)
{
    stop_here(STOP_TZ);
    __real_tzc_out_open(c);
}

FILE *__wrap_tzc_text_open(struct tzc *c)
{
    stop_here(STOP_TZ);
    return __real_tzc_text_open(c);
}

struct tz_reader *__wrap_tz_reader_open_path(const char *path)
{
    stop_here(STOP_READER);
    return __real_tz_reader_open_path(path);
}

void __wrap_progress_init(struct progress *p, const char *what, long total, int force)
{
    stop_here(STOP_TZ);
    __real_progress_init(p, what, total, force);
}

int __wrap_io_mkdirs(const char *path)
{
    stop_here(STOP_TZ);
    return __real_io_mkdirs(path);
}

int __wrap_st_load(struct st **out, const char *path)
{
    stop_here(STOP_STLOAD);
    return __real_st_load(out, path);
}

/* ---- the target ---------------------------------------------------------------- */

static char scratch[] = "/tmp/fuzz-flags-XXXXXX";

static void cleanup(void) { rmdir(scratch); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* tools print usage and errors on stdout and stderr: run with
     * -close_fd_mask=3 (fuzz.mk does), which keeps the fuzzer's own output
     * and sanitizer reports on a copy of stderr */
    devnull = open("/dev/null", O_RDWR);
    cwd = open(".", O_RDONLY | O_DIRECTORY);
    if (devnull < 0 || cwd < 0 || !mkdtemp(scratch)) abort();
    if (!__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free)) abort();
    static char outbuf[BUFSIZ];   /* stdout's buffer: never allocated during a run */
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    dup2(devnull, 0);
    atexit(cleanup);
    return 0;
}

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (char *p = buf; p <= buf + size && argc < MAX_ARGS; p += strlen(p) + 1) {
        for (char *q = p; *q; q++)
            if (*q == '/') *q = '_';
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    int t = -1;
    for (int i = 0; i < (int)(sizeof tools / sizeof tools[0]); i++)
        if (strcmp(argv[0], tools[i].name) == 0) t = i;
    if (t < 0) {
        free(buf);
        return 0;
    }
    /* a fresh getopt, as at process start */
    char *dummy[] = {"x", NULL};
    optind = 0;
    getopt(1, dummy, "");
    optind = 1;
    opterr = 1;
    stop = tools[t].stop;
    if (chdir(scratch) != 0) abort();   /* the fuzzer's own paths are relative: only here */
    int r = setjmp(env);
    if (r == 0) {
        armed = tracking = 1;
        r = tools[t].main(argc, argv);
    }
    armed = 0;
    free_leftovers();
    if (fchdir(cwd) != 0) abort();
    fflush(stdout);
    tp_progname = "fuzz";
    /* parsing ends in a usage error (2), -h/--version (0, or tz's return
     * 0), the stop, or a file a parser reads (loss --perceptual) missing (1) */
    if (r != R_STOP && r != 0 && r != (R_EXIT | 0) && r != (R_EXIT | 1) && r != (R_EXIT | 2)) {
        fprintf(stderr, "fuzz_flags: %s ended with %#x, not a usage error or the end of parsing\n",
                argv[0], r);
        abort();
    }
    if (getenv("FUZZ_FLAGS_VERBOSE"))   /* what each input ended in (without -close_fd_mask) */
        fprintf(stderr, "fuzz_flags: %s: %s %d\n", argv[0],
                r == R_STOP ? "parsed" : r >= R_EXIT ? "exit" : "return", r & 0xff);
    free(buf);
    return 0;
}
