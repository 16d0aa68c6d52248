/* tz - inspect and reshape .tz tensor streams (like jq for tensors).
 *
 * A dispatcher: `tz CMD [options] [FILE...]` runs tzcmd_CMD (lib/tzcmd_*.c),
 * which parses its own options (each has -h). See man/man1/tz.1.
 */
#include <string.h>

#include "cli.h"
#include "tzcmd.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} cmds[] = {
    {"info", tzcmd_info, "records, samples, fields, sizes (--json)"},
    {"check", tzcmd_check, "read and validate every record"},
    {"head", tzcmd_head, "the first N records (-n) or samples (--samples)"},
    {"slice", tzcmd_slice, "records A:B (seeks with a seek table)"},
    {"cat", tzcmd_cat, "concatenate streams"},
    {"batch", tzcmd_batch, "re-batch samples to N per record"},
    {"shuffle", tzcmd_shuffle, "seeded shuffle of samples (or --records)"},
    {"pick", tzcmd_pick, "keep only the named fields"},
    {"rename", tzcmd_rename, "rename fields"},
    {"drop", tzcmd_drop, "remove the named fields"},
    {"merge", tzcmd_merge, "zip the fields of two streams record by record"},
    {"stats", tzcmd_stats, "min, max, mean, std, NaN and Inf counts per field"},
    {"argmax", tzcmd_argmax, "int32 ids: the largest entry along the last dimension"},
    {"npy", tzcmd_npy, "export fields to DIR/FIELD.npy"},
    {"meta", tzcmd_meta, "print, get or set __metadata__"},
    {"make", tzcmd_make, "synthesise records (tests, benchmarks)"},
    {"feed", tzcmd_feed, "the batches of training steps: seeded epochs, resumable"},
};
#define NCMDS ((int)(sizeof cmds / sizeof cmds[0]))

static void usage(void)
{
    printf("usage: tz CMD [options] [FILE...]\n"
           "Inspect and reshape .tz tensor streams; FILE... or stdin in, stdout or -o FILE out.\n\n");
    for (int i = 0; i < NCMDS; i++) printf("  %-8s %s\n", cmds[i].name, cmds[i].what);
    printf("\nCommon options: -o FILE, -l LEVEL (zstd), -j N, --progress, -h.\n"
           "'tz CMD -h' shows the options of CMD; man tz for more.\n");
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    if (argc < 2) die_usage("missing command");
    const char *c = argv[1];
    if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0) {
        usage();
        return 0;
    }
    if (strcmp(c, "--version") == 0) cli_version();
    for (int i = 0; i < NCMDS; i++)
        if (strcmp(c, cmds[i].name) == 0) return cmds[i].run(argc - 1, argv + 1);
    die_usage("unknown command '%s'", c);
}
