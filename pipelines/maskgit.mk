# maskgit.mk - the generator, and sampling from it.
#
#   make maskgit [TOKENS=1d|2d]   train maskgit-tiny on TiTok's 32 tokens (1d,
#                                 default) or the VQGAN's 8x8 tokens (2d);
#                                 runs/maskgit-$(TOKENS)-$(DATA)/
#   make sample [CLASS=c] [N=n] [STEPS=8] [GUIDANCE=g] [TOKENS=...]
#                                 iterative decoding (STEPS rounds of transformer |
#                                 mask --sample, both started once: decode_loop in
#                                 lib.sh) from all-masked tokens of class c
#                                 (every class in turn without CLASS, the null
#                                 class with CLASS=null), then the tokenizer's
#                                 decoder: runs/.../samples.png and samples/*.png,
#                                 speed.tsv (images/s of the whole loop)
TOKENS        ?= 1d
MASKGIT_STEPS ?= $(if $(QUICK),10,$(if $(filter 2d,$(TOKENS)),200,300))
MASKGIT_CKPT  ?= $(if $(QUICK),5,100)
MASKGIT_BATCH ?= 64
MASKGIT_LR    ?= 5e-4
MASKGIT_RUN   := runs/maskgit-$(TOKENS)-$(RUN_SUFFIX)
ifeq ($(TOKENS),2d)
MASKGIT_TOK   := $(VQGAN_RUN)
MASKGIT_K     := 64
# sampled ids -> pixels: the teacher's codebook and decoder
SAMPLE_DECODE  = $(BINDIR)/vq -w $(VQGAN_RUN)/vq.ema.safetensors | $(BINDIR)/decode -w $(VQGAN_RUN)/decode.ema.safetensors
SAMPLE_INIT    = --grid 8
else
MASKGIT_TOK   := $(TITOK1_RUN)
MASKGIT_K     := 32
SAMPLE_DECODE  = $(BINDIR)/vq -w $(TITOK1_RUN)/vq.ema.safetensors | $(BINDIR)/decode -w $(TITOK2_RUN)/decode.ema.safetensors
SAMPLE_INIT    = --tokens 32
endif
N        ?= $(if $(QUICK),10,50)
STEPS    ?= 8
GUIDANCE ?= 2
CLASS    ?=
SAMPLE_CLASS = $(if $(CLASS),$(if $(filter null,$(CLASS)),--null,--class $(CLASS)),--classes $(DATA_CLASSES))
SAMPLE_DIR   = $(MASKGIT_RUN)/sample-$(if $(CLASS),$(CLASS),all)-s$(STEPS)-g$(GUIDANCE)

.PHONY: maskgit sample
maskgit: $(MASKGIT_RUN)/done

$(MASKGIT_RUN)/done: $(MASKGIT_TOK)/tokens-train.tz $(MASKGIT_TOK)/tokens-test.tz pipelines/maskgit.sh pipelines/train.sh | all
	RUN=$(MASKGIT_RUN) TOKENS_TRAIN=$(MASKGIT_TOK)/tokens-train.tz TOKENS_TEST=$(MASKGIT_TOK)/tokens-test.tz \
	K=$(MASKGIT_K) CLASSES=$(DATA_CLASSES) STEPS=$(MASKGIT_STEPS) BATCH=$(MASKGIT_BATCH) LR=$(MASKGIT_LR) \
	WARMUP=$$(($(MASKGIT_STEPS) / 20)) CKPT_EVERY=$(MASKGIT_CKPT) SEED=21 THREADS=$(THREADS) \
	BIN=$(abspath $(BINDIR)) sh pipelines/maskgit.sh
	touch $@

sample: $(SAMPLE_DIR)/samples.png

$(SAMPLE_DIR)/samples.png: $(MASKGIT_RUN)/done $(if $(filter 2d,$(TOKENS)),,$(TITOK2_RUN)/done)
	@mkdir -p $(SAMPLE_DIR)
	@date +%s.%N > $(SAMPLE_DIR)/.t0
	$(BINDIR)/mask --init-sample $(SAMPLE_INIT) --vocab 1024 -n $(N) $(SAMPLE_CLASS) --steps $(STEPS) \
	    --guidance $(GUIDANCE) -o $(SAMPLE_DIR)/ids-0.tz
	PATH=$(abspath $(BINDIR)):$$PATH && . pipelines/lib.sh && \
	    decode_loop $(SAMPLE_DIR)/ids-0.tz $(SAMPLE_DIR)/ids-$(STEPS).tz \
	    "-w $(MASKGIT_RUN)/transformer.ema.safetensors" "--seed 7"
	@rm -f $(SAMPLE_DIR)/ids-0.tz
	< $(SAMPLE_DIR)/ids-$(STEPS).tz $(SAMPLE_DECODE) > $(SAMPLE_DIR)/samples.tz
	@n=$$($(BINDIR)/tz info $(SAMPLE_DIR)/samples.tz | sed -n '1s/.* records, \([0-9]*\) samples.*/\1/p'); \
	    awk -v t0=$$(cat $(SAMPLE_DIR)/.t0) -v t1=$$(date +%s.%N) -v n=$$n 'BEGIN { \
	    printf "images\t%d\nseconds\t%.3f\nimages_per_s\t%.2f\nsteps\t$(STEPS)\nguidance\t$(GUIDANCE)\n", \
	    n, t1 - t0, n / (t1 - t0) }' > $(SAMPLE_DIR)/speed.tsv; rm -f $(SAMPLE_DIR)/.t0
	$(BINDIR)/patch2img -f recon -d $(SAMPLE_DIR)/png < $(SAMPLE_DIR)/samples.tz
	$(BINDIR)/patch2img -f recon --grid $@ --cols $(if $(CLASS),10,$(DATA_CLASSES)) < $(SAMPLE_DIR)/samples.tz
