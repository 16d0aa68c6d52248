# fuzz.mk - libFuzzer targets under ASan+UBSan (clang).
#   make fuzz [FUZZ_SECONDS=60]   fuzz every target for FUZZ_SECONDS each;
#                                 prints executions and findings; a crash
#                                 fails and leaves the input in build-fuzz/
# Seeds are generated (tests/fuzz/mkseeds.c); regression inputs found by
# fuzzing live in tests/fuzz/regress/TARGET/ and are replayed by `make test`.
FUZZ_SECONDS ?= 20
FUZZ_DIR     := build-fuzz
FUZZ_CC      := clang
FUZZ_FLAGS   := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Ilib -I$(BLAS_INC) $(PKG_CFLAGS)
FUZZ_LIBSRC  := lib/err.c lib/io.c lib/st.c lib/tz.c
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBSRC) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIBSRC) $(PKG_LIBS) -lm

$(FUZZ_DIR)/seeds/.stamp: tests/fuzz/mkseeds.c $(FUZZ_LIBSRC)
	@mkdir -p $(FUZZ_DIR)/seeds/tz $(FUZZ_DIR)/seeds/st
	$(CC) $(CFLAGS) -o $(FUZZ_DIR)/mkseeds $< $(FUZZ_LIBSRC) $(PKG_LIBS) -lm
	$(FUZZ_DIR)/mkseeds $(FUZZ_DIR)/seeds/tz $(FUZZ_DIR)/seeds/st
	@touch $@

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%) $(FUZZ_DIR)/seeds/.stamp
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t tests/fuzz/regress/$$t; \
	    echo "fuzz $$t: $(FUZZ_SECONDS)s"; \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	        -artifact_prefix=$(FUZZ_DIR)/crash-$$t- $(FUZZ_DIR)/corpus/$$t \
	        $(FUZZ_DIR)/seeds/$$t tests/fuzz/regress/$$t 2>$(FUZZ_DIR)/$$t.log; rc=$$?; \
	    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' $(FUZZ_DIR)/$$t.log | tail -1; \
	    if [ $$rc -ne 0 ]; then tail -30 $(FUZZ_DIR)/$$t.log; echo "fuzz $$t: FAILED"; exit 1; fi; \
	done

# Replay seeds and regression inputs (no mutation): part of the test suite.
fuzz-replay: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%) $(FUZZ_DIR)/seeds/.stamp
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p tests/fuzz/regress/$$t; \
	    $(FUZZ_DIR)/fuzz_$$t -runs=0 $(FUZZ_DIR)/seeds/$$t tests/fuzz/regress/$$t >$(FUZZ_DIR)/$$t.replay.log 2>&1 \
	        || { tail -20 $(FUZZ_DIR)/$$t.replay.log; exit 1; }; \
	done; echo "fuzz-replay: $(FUZZ_TARGETS) OK"

.PHONY: fuzz fuzz-replay
