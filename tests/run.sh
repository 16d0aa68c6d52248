#!/bin/sh
# Run test executables (cmocka) and tool test scripts; print one summary line
# "tests: N passed, N failed, N skipped" and exit non-zero on any failure.
#
# cmocka binaries report "[  PASSED  ] n test(s)." etc.; shell tests (tests/
# tools/lib.sh) report "RESULT passed=n failed=n skipped=n".
pass=0 fail=0 skip=0 bad=""
out=$(mktemp)
for t in "$@"; do
    case "$t" in
        *.sh) sh "$t" >"$out" 2>&1; rc=$? ;;
        *) "$t" >"$out" 2>&1; rc=$? ;;
    esac
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^RESULT passed=\([0-9]*\).*/\1/p' "$out" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^RESULT.*failed=\([0-9]*\).*/\1/p' "$out" | tail -1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p; s/^RESULT.*skipped=\([0-9]*\).*/\1/p' "$out" | tail -1)
    p=${p:-0} f=${f:-0} s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or exited non-zero
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then f=1; fi  # ran nothing
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
    if [ "$f" -ne 0 ]; then
        bad="$bad $t"
        echo "FAIL $t (exit $rc)"
        sed 's/^/    /' "$out" | tail -40
    else
        echo "ok   $t: $p passed${s:+, $s skipped}" | sed 's/, 0 skipped//'
        grep -h '^SKIP' "$out" | sed 's/^/    /'
    fi
done
rm -f "$out"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
