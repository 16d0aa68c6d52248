/* perc_train.c - train the default perceptual network (perceptual.h,
 * "tokpipe-percep") on a labelled image stream and save its weights.
 *
 * Usage: perc_train [options] TRAIN.tz OUT.safetensors
 *   --steps N    AdamW updates (default 1200)
 *   --batch N    images per update (64)
 *   --lr X       peak learning rate (2e-3)
 *   --seed N     init and sample order (0)
 *   --test FILE  labelled stream to measure the accuracy on; it goes into
 *                the weights' metadata (test_acc) and to stderr
 *   -j N         threads (default: all cores)
 * Progress (every 100 steps: mean loss, accuracy, lr) goes to stderr.
 * Exit 0, 1 on a runtime error, 2 on a usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "perceptual.h"

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct perc_train_cfg c;
    perc_train_cfg_init(&c);
    c.log = stderr;
    long steps = 1200, seed = 0;
    static const struct option opts[] = {
        {"steps", required_argument, 0, 's'}, {"batch", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'l'},    {"seed", required_argument, 0, 'S'},
        {"test", required_argument, 0, 't'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
        switch (o) {
        case 's': steps = cli_long("--steps", optarg, 1, 100000000); break;
        case 'b': c.batch = (int)cli_long("--batch", optarg, 1, 65536); break;
        case 'l': c.lr = cli_double("--lr", optarg, 0, 10); break;
        case 'S': seed = cli_long("--seed", optarg, 0, __LONG_MAX__); break;
        case 't': c.test = optarg; break;
        case 'j': tp_threads_set((int)cli_long("-j", optarg, 1, 1024)); break;
        case 'h':
            printf("Usage: %s [--steps N] [--batch N] [--lr X] [--seed N] [--test FILE] [-j N] "
                   "TRAIN.tz OUT.safetensors\n", tp_progname);
            return 0;
        default: die_usage("unknown option");
        }
    }
    if (argc - optind != 2) die_usage("expected TRAIN.tz and OUT.safetensors");
    double t0 = tp_now();
    if (perceptual_train(argv[optind], argv[optind + 1], (int)steps, (uint64_t)seed, &c) != 0)
        die_err();
    fprintf(stderr, "%s: %ld steps in %.1f s, wrote %s\n", tp_progname, steps, tp_now() - t0,
            argv[optind + 1]);
    return 0;
}
