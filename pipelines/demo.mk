# demo.mk - `make demo`: the whole chain at tiny size on the default data set.
# Each stage is a target with its inputs as prerequisites, so a second
# `make demo` does nothing and deleting one output redoes what depends on it.
#   packages, build -> data sets -> perceptual network -> VQGAN teacher ->
#   2D tokens -> TiTok stage 1 -> 1D tokens -> TiTok stage 2 -> MaskGIT on
#   the 1D tokens -> samples of every class; the evaluation classifier;
#   MaskGIT on the 2D tokens -> its samples, inpainting, outpainting and
#   editing; the report (runs/demo/report.md and report.html)
# QUICK=1 runs the same chain with a few steps of each on a data subset (CI).
# The 2D MaskGIT and the editing run in a second make (TOKENS=2d), since the
# sampling targets follow TOKENS.
DEMO_EDIT_CLASS ?= 1
.PHONY: demo demo-chain
demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory demo-chain

demo-chain: $(DATA_TRAIN) $(DATA_TEST) vqgan tokens-2d titok-stage1 tokens-1d titok-stage2 maskgit sample classifier
	@$(MAKE) --no-print-directory TOKENS=2d maskgit sample inpaint outpaint
	@$(MAKE) --no-print-directory TOKENS=2d edit CLASS=$(DEMO_EDIT_CLASS)
	@$(MAKE) --no-print-directory report
	@echo "demo: done; the report is $(REPORT_DIR)/report.html (and report.md)"
