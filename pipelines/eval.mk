# eval.mk - the evaluation classifier (issue 7): a small ViT trained here on the
# data set's labels, whose features give FID-like Frechet distances and whose
# predictions give the accuracy of class-conditional samples.
#
#   make classifier [DATA=fmnist|emoji] [CLS_STEPS=N] [QUICK=1]
#       trains encode --arch vit-classifier (patch 8, width 128, 4 blocks) with
#       cross-entropy on the labels of $(DATA_TRAIN) in stream mode (resumes
#       after a kill); writes runs/classifier-$(RUN_SUFFIX)/: cls.safetensors
#       and cls.ema.safetensors (the model file the scores use), log.tsv,
#       loss.png, eval.tsv (test_acc, test_ce, fd_train_test) and
#       test.fd.safetensors (the real test set's feature statistics).
#   make fd-score STREAM=FILE [FIELD=recon] [LABEL=label]
#       prints the FD of STREAM's images against the real test set, the FD of
#       as many training images (fd_floor: what real images score at that
#       sample size) and, with LABEL, the classifier's accuracy against that
#       field: pipelines/eval.sh score, which recipes call directly with
#       CLASSIFIER=$(CLS_RUN) (FLOOR optional).
CLS_STEPS ?= $(if $(QUICK),10,1500)
CLS_CKPT  ?= $(if $(QUICK),5,500)
CLS_BATCH ?= 64
CLS_LR    ?= 1e-3
CLS_RUN   := runs/classifier-$(RUN_SUFFIX)
CLS_SCORE  = CLASSIFIER=$(CLS_RUN) THREADS=$(THREADS) BIN=$(abspath $(BINDIR)) sh pipelines/eval.sh score

.PHONY: classifier fd-score
classifier: $(CLS_RUN)/done

$(CLS_RUN)/done: $(DATA_TRAIN) $(DATA_TEST) pipelines/eval.sh pipelines/train.sh pipelines/lib.sh | all
	RUN=$(CLS_RUN) DATA_TRAIN=$(DATA_TRAIN) DATA_TEST=$(DATA_TEST) CHANNELS=$(DATA_CH) CLASSES=$(DATA_CLASSES) \
	STEPS=$(CLS_STEPS) BATCH=$(CLS_BATCH) LR=$(CLS_LR) WARMUP=$$(($(CLS_STEPS) / 20)) CKPT_EVERY=$(CLS_CKPT) \
	SEED=21 THREADS=$(THREADS) BIN=$(abspath $(BINDIR)) sh pipelines/eval.sh train
	touch $@

fd-score: $(CLS_RUN)/done
	@test -n "$(STREAM)" || { echo "fd-score: STREAM=FILE is required" >&2; exit 2; }
	@STREAM=$(STREAM) FIELD=$(or $(FIELD),recon) LABEL=$(LABEL) FLOOR=$(DATA_TRAIN) $(CLS_SCORE)
