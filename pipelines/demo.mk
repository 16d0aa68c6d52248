# demo.mk - `make demo`: the whole chain at tiny size on the default data set.
# Each stage is a target with its inputs as prerequisites, so a second
# `make demo` does nothing and deleting one output redoes what depends on it.
#   packages, build -> data sets -> perceptual network -> VQGAN teacher ->
#   2D tokens -> TiTok stage 1 -> 1D tokens -> TiTok stage 2 -> MaskGIT ->
#   samples of every class
# QUICK=1 runs the same chain with a few steps of each on a data subset (CI).
.PHONY: demo demo-chain
demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory demo-chain

demo-chain: $(DATA_TRAIN) $(DATA_TEST) vqgan tokens-2d titok-stage1 tokens-1d titok-stage2 maskgit sample
	@echo "demo: done; results in runs/*-$(RUN_SUFFIX)/ (eval.tsv, loss.png, recon.png, samples.png)"
