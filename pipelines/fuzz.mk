# fuzz.mk - libFuzzer targets under ASan+UBSan (clang).
#   make fuzz [FUZZ_SECONDS=60]   fuzz every target for FUZZ_SECONDS each;
#                                 prints, per target, executions, corpus
#                                 growth and findings; a crash fails and
#                                 leaves the input in build-fuzz/crash-TARGET-*
# Targets (tests/fuzz/fuzz_TARGET.c): tz (stream reader), st (safetensors),
# png (PNG decoder), imgsrc (archives, WebDataset grouping, IDX), flags (the
# option parsers of every tool). The library is built once, instrumented,
# into build-fuzz/libtokpipe-fuzz.a; each target links what it uses.
# Seeds are generated (tests/fuzz/mkseeds.c, one directory per target);
# regression inputs found by fuzzing live in tests/fuzz/regress/TARGET/ and
# are replayed by `make test`.
FUZZ_SECONDS ?= 20
FUZZ_DIR     := build-fuzz
FUZZ_CC      := clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_COMMON  := -g -O1 -std=c11 -D_GNU_SOURCE -Ilib -I$(BLAS_INC) $(PKG_CFLAGS)
FUZZ_OFLAGS  := $(FUZZ_COMMON) -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_FLAGS   := $(FUZZ_COMMON) -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_LDLIBS  := $(PKG_LIBS) -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -lm
FUZZ_ALIB    := $(FUZZ_DIR)/libtokpipe-fuzz.a
FUZZ_LIBOBJ  := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

# The flags target runs each tool's main (renamed TOOL_main) up to the end
# of its option parsing: exit() and the first call after parsing are
# wrapped at link time (see fuzz_flags.c), so no source changes.
FUZZ_TOOLOBJ := $(TOOL_SRC:tools/%.c=$(FUZZ_DIR)/obj/tools/%.o)
FUZZ_WRAP    := exit cli_init tp_threads_set tzc_inputs tzc_out_open tzc_text_open \
                tz_reader_open_path progress_init io_mkdirs st_load
comma        := ,
FUZZ_LINK_flags := $(FUZZ_TOOLOBJ) $(addprefix -Wl$(comma)--wrap=,$(FUZZ_WRAP))

$(FUZZ_DIR)/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_OFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/obj/tools/%.o: tools/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_OFLAGS) -Dmain=$*_main -MMD -MP -c -o $@ $<

$(FUZZ_ALIB): $(FUZZ_LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

-include $(FUZZ_LIBOBJ:.o=.d) $(FUZZ_TOOLOBJ:.o=.d)

$(FUZZ_DIR)/fuzz_flags: $(FUZZ_TOOLOBJ)
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_ALIB) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LINK_$*) $(FUZZ_ALIB) $(FUZZ_LDLIBS)

$(FUZZ_DIR)/seeds/.stamp: tests/fuzz/mkseeds.c $(LIB)
	@rm -rf $(FUZZ_DIR)/seeds && mkdir -p $(FUZZ_DIR)/seeds
	$(CC) $(CFLAGS) $(LDFLAGS) -o $(FUZZ_DIR)/mkseeds $< $(LIB) $(LDLIBS)
	$(FUZZ_DIR)/mkseeds $(FUZZ_DIR)/seeds
	@touch $@

# Per-target libFuzzer flags: the flags target runs tools that print.
FUZZ_OPTS = $$(case $$t in flags) echo -close_fd_mask=3;; esac)

# One line per target: executions, corpus growth, findings (crash inputs;
# the prefix is absolute: fuzz_flags changes directory while it runs).
fuzz: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%) $(FUZZ_DIR)/seeds/.stamp
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t tests/fuzz/regress/$$t; \
	    c0=$$(ls $(FUZZ_DIR)/corpus/$$t | wc -l); \
	    $(FUZZ_DIR)/fuzz_$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	        -artifact_prefix=$(abspath $(FUZZ_DIR))/crash-$$t- $(FUZZ_DIR)/corpus/$$t \
	        $(FUZZ_DIR)/seeds/$$t tests/fuzz/regress/$$t 2>$(FUZZ_DIR)/$$t.log; rc=$$?; \
	    runs=$$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 executions in \2 s/p' $(FUZZ_DIR)/$$t.log | tail -1); \
	    cov=$$(grep -Eo 'cov: [0-9]+' $(FUZZ_DIR)/$$t.log | tail -1); \
	    c1=$$(ls $(FUZZ_DIR)/corpus/$$t | wc -l); \
	    if [ $$rc -eq 0 ]; then f=0; else f=1; fi; \
	    echo "fuzz $$t: $${runs:-no executions}, $$cov, corpus $$c0 -> $$c1, findings $$f"; \
	    if [ $$rc -ne 0 ]; then tail -30 $(FUZZ_DIR)/$$t.log; ls $(FUZZ_DIR)/crash-$$t-* 2>/dev/null; \
	        echo "fuzz $$t: FAILED (fix, then keep the input in tests/fuzz/regress/$$t/)"; exit 1; fi; \
	done

# Replay seeds and regression inputs (no mutation): part of the test suite.
fuzz-replay: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%) $(FUZZ_DIR)/seeds/.stamp
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p tests/fuzz/regress/$$t; \
	    $(FUZZ_DIR)/fuzz_$$t $(FUZZ_OPTS) -runs=0 $(FUZZ_DIR)/seeds/$$t tests/fuzz/regress/$$t >$(FUZZ_DIR)/$$t.replay.log 2>&1 \
	        || { tail -20 $(FUZZ_DIR)/$$t.replay.log; exit 1; }; \
	done; echo "fuzz-replay: $(FUZZ_TARGETS) OK"

.PHONY: fuzz fuzz-replay
