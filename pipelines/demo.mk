# demo.mk - `make demo`: the whole chain at tiny size on the default data set.
# Each stage is a target with its inputs as prerequisites, so a second
# `make demo` does nothing and deleting one output redoes what depends on it.
#   packages, build -> data sets -> perceptual network -> VQGAN teacher ->
#   2D tokens -> TiTok stage 1 -> 1D tokens -> TiTok stage 2 -> MaskGIT on
#   the 1D tokens -> samples of every class; the evaluation classifier;
#   MaskGIT on the 2D tokens -> its samples, inpainting, outpainting and
#   editing; the report (runs/demo/report.md and report.html)
# QUICK=1 runs the same chain with a few steps of each on a data subset (CI).
# Each stage is a make call of its own (the 2D ones with TOKENS=2d, since the
# sampling targets follow TOKENS), announced with the time so far and an
# estimate of the time left.
DEMO_EDIT_CLASS ?= 1
.PHONY: demo demo-chain
demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory demo-chain

# the stages in order: "what|make arguments|seconds it took in the measured
# default run" (pipelines/demo.sh prints the progress line and estimate)
DEMO_STAGES = \
	"data sets|$(DATA_TRAIN) $(DATA_TEST)|5" \
	"perceptual loss network|$(PERCEP)|65" \
	"VQGAN teacher|vqgan|257" \
	"2D tokens|tokens-2d|45" \
	"TiTok stage 1|titok-stage1|370" \
	"1D tokens|tokens-1d|130" \
	"TiTok stage 2|titok-stage2|377" \
	"MaskGIT on the 1D tokens|maskgit|234" \
	"1D samples of every class|sample|10" \
	"evaluation classifier|classifier|150" \
	"MaskGIT on the 2D tokens|TOKENS=2d maskgit|290" \
	"2D samples, inpainting, outpainting|TOKENS=2d sample inpaint outpaint|12" \
	"class-conditional editing|TOKENS=2d edit CLASS=$(DEMO_EDIT_CLASS)|5" \
	"report|report|8"
demo-chain:
	+@MAKE="$(MAKE)" sh pipelines/demo.sh $(DEMO_STAGES)
	@echo "demo: the report is $(REPORT_DIR)/report.html (and report.md)"
