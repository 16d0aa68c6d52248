# vqgan.mk - the 2D teacher: MaskGIT-VQGAN trained end to end through the tools.
#
#   make vqgan [DATA=fmnist|emoji] [VQGAN_STEPS=N] [QUICK=1]
#       trains vqgan-tiny in stream mode (tz feed | encode | vq | decode | loss),
#       AdamW warmup + cosine, EMA, checkpoints every VQGAN_CKPT steps, resumes
#       after a kill; writes runs/vqgan-$(DATA)/: weights (+ .ema), log.tsv,
#       loss.png, recon.png (test images over reconstructions), eval.tsv (test
#       MSE, PSNR, SSIM, codebook usage and perplexity).
#   make tokens-2d
#       the data set through the trained encoder and vq: 8x8 ids per image
#       with labels, runs/vqgan-$(DATA)/tokens-{train,test}.tz (of the
#       training set, the first TOKENS_TRAIN images: config.mk)
VQGAN_TRAIN := $(DATA_TRAIN)
VQGAN_TEST  := $(DATA_TEST)
VQGAN_CH    := $(DATA_CH)
VQGAN_STEPS ?= $(if $(QUICK),10,400)
VQGAN_CKPT  ?= $(if $(QUICK),5,100)
VQGAN_BATCH ?= 32
VQGAN_LR    ?= 5e-4
VQGAN_RUN   := runs/vqgan-$(RUN_SUFFIX)
# L2 + adversarial for the last quarter at 0.01 (TiTok stage 2's weight: 0.1 (MaskGIT's VQGAN)
# took the test MSE from 0.0095 to 0.06 within 200 steps here)
VQGAN_LOSS  ?= mse perceptual:0.1 gan:0.01
VQGAN_GAN_START ?= $$(($(VQGAN_STEPS) * 3 / 4))
# the L2-normalised quantizer (TiTok's) against codebook collapse: upstream's
# plain one used 25 of 1024 codes on 512 test images after 300 steps here,
# l2=1 454, and reconstructed better (bench/results.md)
VQGAN_VQ    ?= --set l2=1
.PHONY: vqgan tokens-2d
vqgan: $(VQGAN_RUN)/done

$(VQGAN_RUN)/done: $(VQGAN_TRAIN) $(VQGAN_TEST) $(PERCEP) pipelines/vqgan.sh pipelines/lib.sh | all
	RUN=$(VQGAN_RUN) DATA_TRAIN=$(VQGAN_TRAIN) DATA_TEST=$(VQGAN_TEST) CHANNELS=$(VQGAN_CH) \
	STEPS=$(VQGAN_STEPS) BATCH=$(VQGAN_BATCH) LR=$(VQGAN_LR) WARMUP=$$(($(VQGAN_STEPS) / 20)) \
	CKPT_EVERY=$(VQGAN_CKPT) SEED=1 LOSSES="$(VQGAN_LOSS) --perceptual $(PERCEP)" GAN_START=$(VQGAN_GAN_START) \
	THREADS=$(THREADS) BIN=$(abspath $(BINDIR)) VQ_SET="$(VQGAN_VQ)" \
	PYTHON=$(PYTHON) sh pipelines/vqgan.sh
	touch $@

tokens-2d: $(VQGAN_RUN)/tokens-train.tz $(VQGAN_RUN)/tokens-test.tz

# the images a tokens-%.tz target encodes: the test set, or the first
# TOKENS_TRAIN training images
TOKENS_SOURCE = $(BINDIR)/tz $(if $(and $(filter train,$*),$(TOKENS_TRAIN)),head --samples $(TOKENS_TRAIN),cat) \
	$(if $(filter train,$*),$(VQGAN_TRAIN),$(VQGAN_TEST))
# ... and what a token file keeps: the ids and labels, not the quantizer's
# per-batch statistics (a MaskGIT run's log would show them as its own)
TOKENS_KEEP = $(BINDIR)/tz pick ids,label | $(BINDIR)/tz meta --delete loss.vq_commit --delete loss.vq_codebook \
	--delete vq.used --delete vq.perplexity
$(VQGAN_RUN)/tokens-%.tz: $(VQGAN_RUN)/done
	$(TOKENS_SOURCE) | $(BINDIR)/encode -w $(VQGAN_RUN)/encode.ema.safetensors | \
	    $(BINDIR)/vq -w $(VQGAN_RUN)/vq.ema.safetensors | $(TOKENS_KEEP) -o $@
