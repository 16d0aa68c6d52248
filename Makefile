# tokpipe - TiTok and MaskGIT as small Unix tools over compressed tensor streams.
#
#   make deps       install what is missing (Debian, apt-get as root)
#   make            build lib/ into libtokpipe.a and every tool into bin/
#   make test       unit, gradient, PyTorch-reference and tool tests, then the
#                   same suite again under ASan+UBSan
#   make bench      benchmarks, written to bench/results.md
#   make soak       the long run: RSS over 10x the demo's steps, valgrind (bench/soak.md)
#   make demo       the whole chain at tiny size (pipelines/)
#   make install PREFIX=/usr/local
#
# Files are found by pattern so that adding one needs no edit here:
#   lib/*.c -> libtokpipe.a, tools/X.c -> bin/X, tests/unit/test_X.c ->
#   $(BUILD)/tests/test_X, tests/tools/X.sh, tests/reference/X.py.

PREFIX   ?= /usr/local
CC       ?= cc
SAN      ?=
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# The OpenMP build of OpenBLAS: BLAS and our own loops share one thread pool.
BLAS_INC := /usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIB := /usr/lib/$(MULTIARCH)/openblas-openmp

ifeq ($(SAN),1)
BUILD    ?= build-san
BINDIR   ?= $(BUILD)/bin
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
BUILD    ?= build
BINDIR   ?= bin
SANFLAGS :=
endif

PKGS     := libzstd libpng libarchive jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
# Vector code for our own loops where the CPU has AVX2 and FMA (x86-64-v3, the
# Haswell level; valgrind runs it, AVX-512 it does not): 5-7% of a VQGAN step.
# The build is for this machine; `make ARCH_FLAGS=` builds for any x86-64.
ARCH_FLAGS ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && \
                $(CC) -march=x86-64-v3 -E -x c /dev/null >/dev/null 2>&1 && echo -march=x86-64-v3)
# Messages are cut to fixed buffers on purpose; clang has no such warning.
NO_TRUNC_WARN := $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
# -fno-trapping-math: we never read the floating-point exception flags, and
# without it gcc keeps a loop scalar rather than compute both sides of a
# select (vmath.h's expf and erff); values are unchanged. -fno-math-errno: we
# never read errno after a math call, and sqrtf's errno kept AdamW's loop
# scalar (a square root is correctly rounded either way).
CFLAGS   += $(ARCH_FLAGS) -fno-trapping-math -fno-math-errno -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(NO_TRUNC_WARN) -fopenmp -Ilib \
            -I$(BLAS_INC) $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += -fopenmp $(SANFLAGS) -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB)
LDLIBS   += $(PKG_LIBS) -lopenblas -lm

LIB_SRC   := $(sort $(wildcard lib/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libtokpipe.a
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TOOLS     := $(TOOL_SRC:tools/%.c=$(BINDIR)/%)
TEST_SRC  := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH     := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TESTS     := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_TESTS := $(filter-out tests/tools/lib.sh,$(sort $(wildcard tests/tools/*.sh)))
REF_PY    := $(sort $(wildcard tests/reference/ref_*.py))
REF_DIR   := build/ref
# Debian's interpreter has python3-torch; the first python3 on PATH may not.
PYTHON    ?= /usr/bin/python3

.PHONY: all deps test test-fast test-san check-ref bench soak demo install clean fuzz
.DEFAULT_GOAL := all
# keep objects of tests and tools (intermediates of pattern chains)
.SECONDARY:

all: $(LIB) $(TOOLS)

# The register tiles' inner loops (115 bytes in linear_tile.c) each on a
# 64-byte boundary: 40 bytes past one, a loop spanned three of the core's
# 64-byte code windows instead of two, and a 1D sampling run's records took
# 8% longer (bench/levers.md, session 18). Padding only: the same results.
TILE_OBJ := $(addprefix $(BUILD)/lib/,linear_tile.o conv2d_tile.o attention_tile.o)
$(TILE_OBJ): CFLAGS += -falign-loops=64

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/%: $(BUILD)/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

-include $(LIB_OBJ:.o=.d) $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%.d) $(TEST_SRC:%.c=$(BUILD)/%.d) \
         $(BENCH_SRC:%.c=$(BUILD)/%.d)

deps:
	@sh tests/deps.sh

# PyTorch reference fixtures: each tests/reference/ref_X.py writes $(REF_DIR)/X*.safetensors.
$(REF_DIR)/.stamp: $(REF_PY) tests/reference/stio.py
	@mkdir -p $(REF_DIR)
	@if $(PYTHON) -c 'import torch, numpy' 2>/dev/null; then \
	    for f in $(REF_PY); do \
	        OMP_NUM_THREADS=1 $(PYTHON) $$f $(REF_DIR) || exit 1; \
	    done; \
	else echo "reference: python3-torch not installed: PyTorch reference checks will be skipped"; fi
	@touch $@

test-fast: all $(TESTS) $(REF_DIR)/.stamp
	@TP_BIN=$(abspath $(BINDIR)) TP_REF_DIR=$(abspath $(REF_DIR)) PYTHON=$(PYTHON) \
	    sh tests/run.sh $(TESTS) $(TOOL_TESTS)

test-san:
	@$(MAKE) --no-print-directory SAN=1 test-fast

test: deps
	@$(MAKE) --no-print-directory test-fast
	@$(MAKE) --no-print-directory test-san
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# Fuzzing in `make test` is brief; `make fuzz FUZZ_SECONDS=600` goes longer.
TEST_FUZZ_SECONDS ?= 4

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

bench: deps all $(BENCH)
	@BENCH_BIN=$(BUILD)/bench sh bench/run.sh

# the long run of issue 8 (bench/soak.sh): RSS over FACTOR x the demo's steps,
# and memcheck, for every pipeline of the demo; 4-5 hours on 2 cores at the
# default factor. Writes bench/soak.md.
SOAK_FACTOR    ?= 10
SOAK_PIPELINES ?= vqgan maskgit-2d titok1 titok2 maskgit-1d
soak: deps all
	sh bench/soak.sh $(SOAK_FACTOR) $(SOAK_PIPELINES) > bench/soak.md.tmp
	mv bench/soak.md.tmp bench/soak.md

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf build build-san bin

# pipelines, in the order their variables build on each other
include pipelines/config.mk pipelines/data.mk pipelines/percep.mk pipelines/vqgan.mk pipelines/titok.mk \
        pipelines/maskgit.mk
-include $(filter-out $(addprefix pipelines/,config.mk data.mk percep.mk vqgan.mk titok.mk maskgit.mk),$(wildcard pipelines/*.mk))
