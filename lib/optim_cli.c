/* optim_cli.c - shared optimizer flags (see optim_cli.h). */
#include "optim_cli.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

enum {
    O_LR = OPTIM_CLI_BASE, O_BETAS, O_EPS, O_WD, O_SGD, O_MOMENTUM, O_SCHEDULE,
    O_WARMUP, O_TOTAL, O_END_LR, O_CLIP, O_FREEZE,
};

const struct option optim_cli_options[] = {
    {"lr", required_argument, 0, O_LR},
    {"betas", required_argument, 0, O_BETAS},
    {"eps", required_argument, 0, O_EPS},
    {"wd", required_argument, 0, O_WD},
    {"sgd", no_argument, 0, O_SGD},
    {"momentum", required_argument, 0, O_MOMENTUM},
    {"schedule", required_argument, 0, O_SCHEDULE},
    {"warmup", required_argument, 0, O_WARMUP},
    {"total", required_argument, 0, O_TOTAL},
    {"end-lr", required_argument, 0, O_END_LR},
    {"clip", required_argument, 0, O_CLIP},
    {"freeze", required_argument, 0, O_FREEZE},
    {0, 0, 0, 0},
};

const char optim_cli_usage[] =
    "optimizer (AdamW unless --sgd; defaults are upstream TiTok stage 1):\n"
    "  --lr X               base learning rate (1e-4)\n"
    "  --betas B1,B2        AdamW betas (0.9,0.99)\n"
    "  --eps X              AdamW epsilon (1e-8)\n"
    "  --wd X               weight decay (1e-4), not on 1-D, norm, bias, embedding tensors\n"
    "  --sgd                SGD with momentum instead of AdamW\n"
    "  --momentum X         SGD momentum (0.9)\n"
    "  --schedule S         constant | cosine (constant)\n"
    "  --warmup N           linear warmup steps (0)\n"
    "  --total N            steps of the cosine schedule\n"
    "  --end-lr X           learning rate at the end of the cosine (1e-5)\n"
    "  --clip X             clip the global gradient norm to X (off)\n"
    "  --freeze REGEX       do not update tensors whose name matches (POSIX ERE)\n";

int optim_cli_parse(struct optim_cfg *c, int code, const char *arg)
{
    switch (code) {
    case O_LR: c->lr = cli_double("--lr", arg, 0, 1e3); return 1;
    case O_BETAS: {
        double b1, b2;
        char tail;
        if (sscanf(arg, "%lf,%lf%c", &b1, &b2, &tail) != 2 || b1 < 0 || b1 >= 1 || b2 < 0 || b2 >= 1)
            die_usage("--betas: '%s' is not B1,B2 with both in [0,1)", arg);
        c->beta1 = b1;
        c->beta2 = b2;
        return 1;
    }
    case O_EPS: c->eps = cli_double("--eps", arg, 0, 1); return 1;
    case O_WD: c->wd = cli_double("--wd", arg, 0, 10); return 1;
    case O_SGD: c->kind = OPTIM_SGD; return 1;
    case O_MOMENTUM: c->momentum = cli_double("--momentum", arg, 0, 1); return 1;
    case O_SCHEDULE:
        if (strcmp(arg, "constant") == 0) c->schedule = OPTIM_CONSTANT;
        else if (strcmp(arg, "cosine") == 0) c->schedule = OPTIM_COSINE;
        else die_usage("--schedule: '%s' is not constant or cosine", arg);
        return 1;
    case O_WARMUP: c->warmup = cli_long("--warmup", arg, 0, 1L << 40); return 1;
    case O_TOTAL: c->total = cli_long("--total", arg, 0, 1L << 40); return 1;
    case O_END_LR: c->end_lr = cli_double("--end-lr", arg, 0, 1e3); return 1;
    case O_CLIP: c->clip = cli_double("--clip", arg, 0, 1e9); return 1;
    case O_FREEZE: c->freeze = arg; return 1;
    }
    return 0;
}

int options_append(struct option *dst, int n, const struct option *src)
{
    for (; src->name; src++) dst[n++] = *src;
    memset(&dst[n], 0, sizeof dst[n]);
    return n;
}
