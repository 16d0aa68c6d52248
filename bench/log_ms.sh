#!/bin/sh
# log_ms.sh LOG FROM - ms per step in a `loss --log` file: from its record
# FROM (0-based step; the end of step FROM+1's forward) to its last record,
# read from the "seconds" column. Used by speed_vs_torch.sh and
# train_split.sh: a step's time inside one run, its process starts left out.
awk -F'\t' -v from="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i; next }
    { t[$1] = $c; n = $1 }
    END { if (!c || n <= from) exit 1; printf "%.2f\n", 1000 * (t[n] - t[from]) / (n - from) }' "$1" ||
    { echo "log_ms.sh: $1: no record past $2" >&2; exit 1; }
