# lib.sh - sourced by tool tests (tests/tools/*.sh).
#
#   ok  "what" cmd...              the command must exit 0
#   bad "what" CODE cmd...         must exit CODE with exactly one line on
#                                  stderr, starting "tool: ", and nothing on stdout
#   eq  "what" GOT WANT            strings must be equal
#   no_file "what" PATH            PATH must not exist (no partial output)
#   has "what" TEXT                the last command's stderr must contain TEXT
#   done_tests                     prints the RESULT line; exit status
# Runs in a fresh temporary directory ($T); tools come from $TP_BIN.
set -u
: "${TP_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/bin}"
PATH="$TP_BIN:$PATH"
PYTHON=${PYTHON:-/usr/bin/python3}
REF_PY="$(cd "$(dirname "$0")/../reference" && pwd)"
PIPELINES="$(cd "$(dirname "$0")/../../pipelines" && pwd)"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
_pass=0 _fail=0 _skip=0

_ok() { _pass=$((_pass + 1)); echo "ok - $1"; }
_no() { _fail=$((_fail + 1)); echo "not ok - $1: $2"; }

ok() {
    what=$1; shift
    if "$@" >"$T/.out" 2>"$T/.err"; then _ok "$what"
    else _no "$what" "exit $? : $(head -c 300 "$T/.err")"; fi
}

bad() {
    what=$1 code=$2; shift 2
    "$@" >"$T/.out" 2>"$T/.err"; rc=$?
    lines=$(wc -l <"$T/.err")
    tool=$(basename "$1")
    if [ "$rc" -ne "$code" ]; then _no "$what" "exit $rc, want $code; stderr: $(head -c 300 "$T/.err")"
    elif [ -s "$T/.out" ] && [ "$code" -ne 0 ]; then _no "$what" "wrote to stdout on failure"
    elif [ "$code" -eq 1 ] && [ "$lines" -ne 1 ]; then _no "$what" "stderr has $lines lines: $(head -c 300 "$T/.err")"
    elif ! head -1 "$T/.err" | grep -q "^$tool: "; then _no "$what" "stderr not '$tool: ...': $(head -c 200 "$T/.err")"
    else _ok "$what"; fi
}

eq() {
    if [ "$2" = "$3" ]; then _ok "$1"; else _no "$1" "got '$2' want '$3'"; fi
}

no_file() {
    if [ -e "$2" ] || ls "$(dirname "$2")"/.*.tmp.* >/dev/null 2>&1; then _no "$1" "$2 (or a temporary) exists"
    else _ok "$1"; fi
}

has() {
    if grep -q -- "$2" "$T/.err"; then _ok "$1"; else _no "$1" "stderr: $(head -c 300 "$T/.err")"; fi
}

skip_test() { _skip=$((_skip + 1)); echo "SKIP $1"; }

done_tests() {
    echo "RESULT passed=$_pass failed=$_fail skipped=$_skip"
    [ "$_fail" -eq 0 ]
}
