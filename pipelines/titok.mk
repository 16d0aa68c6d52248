# titok.mk - TiTok: the 1D tokenizer, trained from the VQGAN teacher.
#
#   make titok-stage1   proxy-code training: images -> 32 tokens -> the teacher's
#                       8x8 codes (cross-entropy + the quantizer's losses);
#                       TITOK_AUG=1 mirrors images, codes on the fly;
#                       runs/titok1-$(DATA)/
#   make titok-stage2   encoder and quantizer frozen; the decoder, the teacher's
#                       codebook and pixel decoder trained on pixels with
#                       L2 + GAN (upstream weights scaled); runs/titok2-$(DATA)/
#   make tokens-1d      the data set through the stage-1 encoder and quantizer:
#                       32 ids per image with labels (MaskGIT's training set;
#                       the first TOKENS_TRAIN training images, 20480)
# Each evaluates on the test set (eval.tsv; recon.png for stage 2).
TITOK1_STEPS ?= $(if $(QUICK),10,250)
TITOK2_STEPS ?= $(if $(QUICK),10,200)
TITOK_CKPT   ?= $(if $(QUICK),5,100)
TITOK_BATCH  ?= 32
TITOK1_LR    ?= 5e-4
TITOK2_LR    ?= 2e-4
TITOK1_RUN   := runs/titok1-$(RUN_SUFFIX)
TITOK2_RUN   := runs/titok2-$(RUN_SUFFIX)
TITOK1_LOSS  ?= ce
# TITOK_AUG=1: random horizontal flips in stage 1, the teacher's proxy codes
# computed on the fly (tz feed --hflip | teacher encode | vq | TiTok)
TITOK_AUG    ?=
# upstream stage 2: L2 1.0, perceptual 0.1, GAN 0.01
TITOK2_LOSS  ?= mse perceptual:0.1 gan:0.01
TITOK_ENV = TEACHER=$(VQGAN_RUN) DATA_TRAIN=$(VQGAN_TRAIN) DATA_TEST=$(VQGAN_TEST) CHANNELS=$(VQGAN_CH) \
	BATCH=$(TITOK_BATCH) CKPT_EVERY=$(TITOK_CKPT) SEED=11 THREADS=$(THREADS) \
	BIN=$(abspath $(BINDIR)) PYTHON=$(PYTHON)

.PHONY: titok-stage1 titok-stage2 tokens-1d
titok-stage1: $(TITOK1_RUN)/done
titok-stage2: $(TITOK2_RUN)/done

# the recipes read the images as well as the teacher's tokens (stage 1 with
# TITOK_AUG runs the teacher itself): each named, so a changed data set retrains
$(TITOK1_RUN)/done: $(VQGAN_RUN)/tokens-train.tz $(VQGAN_RUN)/tokens-test.tz $(VQGAN_RUN)/done \
		$(VQGAN_TRAIN) $(VQGAN_TEST) pipelines/titok.sh pipelines/train.sh | all
	$(TITOK_ENV) STAGE=1 RUN=$(TITOK1_RUN) STEPS=$(TITOK1_STEPS) LR=$(TITOK1_LR) AUG=$(TITOK_AUG) \
	WARMUP=$$(($(TITOK1_STEPS) / 20)) LOSSES="$(TITOK1_LOSS)" sh pipelines/titok.sh
	touch $@

$(TITOK2_RUN)/done: $(TITOK1_RUN)/done $(VQGAN_RUN)/done $(PERCEP) $(VQGAN_TRAIN) $(VQGAN_TEST) \
		pipelines/titok.sh pipelines/train.sh | all
	$(TITOK_ENV) STAGE=2 RUN=$(TITOK2_RUN) S1=$(TITOK1_RUN) STEPS=$(TITOK2_STEPS) LR=$(TITOK2_LR) \
	WARMUP=$$(($(TITOK2_STEPS) / 20)) LOSSES="$(TITOK2_LOSS) --perceptual $(PERCEP)" \
	GAN_START=$$(($(TITOK2_STEPS) * 3 / 4)) \
	sh pipelines/titok.sh
	touch $@

tokens-1d: $(TITOK1_RUN)/tokens-train.tz $(TITOK1_RUN)/tokens-test.tz

# the first TOKENS_TRAIN training images (config.mk; MaskGIT's demo run sees
# 300 x 64 samples, and TiTok's encoder is the slow part of this target)
$(TITOK1_RUN)/tokens-%.tz: $(TITOK1_RUN)/done
	$(TOKENS_SOURCE) | \
	    $(BINDIR)/encode -w $(TITOK1_RUN)/encode.ema.safetensors | \
	    $(BINDIR)/vq -w $(TITOK1_RUN)/vq.ema.safetensors | $(TOKENS_KEEP) -o $@
