#!/bin/sh
# Install the Debian packages tokpipe needs, if any are missing.
# Used by `make deps` (and so by `make test` and `make demo`).
set -e
PKGS="build-essential pkg-config zstd libzstd-dev libpng-dev libopenblas-openmp-dev
libarchive-dev libjansson-dev libcmocka-dev python3-torch python3-numpy
dataset-fashion-mnist clang npm gnuplot-nox chromium valgrind"
missing=
for p in $PKGS; do
    # node from another source (nodesource) brings its own npm and conflicts
    # with Debian's package: any working npm will do
    case "$p" in npm) command -v npm >/dev/null 2>&1 && continue ;; esac
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$s" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
if [ -z "$missing" ]; then
    echo "deps: all installed"
    exit 0
fi
echo "deps: installing:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "deps: not root and no sudo; install as root:$missing" >&2; exit 1; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
