# edit.mk - MaskGIT's editing on the VQGAN's 2D tokens (upstream.md C.5),
# with the 2D MaskGIT (runs/maskgit-2d-$(DATA), trained first if missing):
#
#   make inpaint  [IMAGE=file.png] [BOX=x,y,w,h] [SEED=s]
#       regenerate the box (grown by MaskGIT's 1-token margin) with each
#       image's own class; a PNG without a label gets the null class
#   make outpaint [IMAGE=file.png] [BOX=x,y,w,h] [SEED=s]
#       regenerate everything outside the box grown by the margin
#   make edit CLASS=c [IMAGE=file.png] [BOX=x,y,w,h] [SEED=s]
#       regenerate the box as class c (CLASS=null: the null class)
#
# Each encodes the images, masks the latent box, decodes with the JAX
# sampler from step 2 of 12, decodes to pixels and blends them over the
# input through the Gaussian-blurred mask (mask --composite). Without IMAGE:
# the first EDIT_N (8) test images. Default BOX: the centre box of half the
# side (8,8,16,16 at 32x32); for outpaint the centre quarter-side box, which
# the margin grows to the centre half, so the centre half is kept. Output:
# runs/edit-$(DATA)/KIND-SOURCE-bX-Y-W-H-sSEED/ grid.png (rows: input,
# masked input, raw decode, composite), png/*.png (composites), edit.tz,
# tokens.tz. Same settings, same bytes (at the same THREADS).
EDIT_MASKGIT := runs/maskgit-2d-$(RUN_SUFFIX)
EDIT_ROOT    := runs/edit-$(RUN_SUFFIX)
EDIT_SIZE    ?= 32
EDIT_N       ?= 8
EDIT_STEPS   ?= 12
EDIT_START   ?= 2
SEED         ?= 1
IMAGE        ?=
BOX          ?=
comma        := ,
EDIT_HALF    := $(shell expr $(EDIT_SIZE) / 4),$(shell expr $(EDIT_SIZE) / 4),$(shell expr $(EDIT_SIZE) / 2),$(shell expr $(EDIT_SIZE) / 2)
EDIT_QUARTER := $(shell expr $(EDIT_SIZE) \* 3 / 8),$(shell expr $(EDIT_SIZE) \* 3 / 8),$(shell expr $(EDIT_SIZE) / 4),$(shell expr $(EDIT_SIZE) / 4)
INPAINT_BOX  = $(or $(BOX),$(EDIT_HALF))
OUTPAINT_BOX = $(or $(BOX),$(EDIT_QUARTER))
EDIT_SRC     = $(if $(IMAGE),$(basename $(notdir $(patsubst %/,%,$(IMAGE)))),test$(EDIT_N))
EDIT_NAME    = $(EDIT_SRC)-b$(subst $(comma),-,$(1))-s$(SEED)
INPAINT_DIR  = $(EDIT_ROOT)/inpaint-$(call EDIT_NAME,$(INPAINT_BOX))
OUTPAINT_DIR = $(EDIT_ROOT)/outpaint-$(call EDIT_NAME,$(OUTPAINT_BOX))
EDIT_DIR     = $(EDIT_ROOT)/edit-c$(CLASS)-$(call EDIT_NAME,$(INPAINT_BOX))
EDIT_DEPS    = $(VQGAN_RUN)/done $(EDIT_MASKGIT)/done pipelines/edit.sh $(if $(IMAGE),$(IMAGE),$(DATA_TEST))
EDIT_BG      := $(if $(filter emoji,$(DATA)),255$(comma)255$(comma)255,0$(comma)0$(comma)0)

ifneq ($(filter edit,$(MAKECMDGOALS)),)
ifeq ($(CLASS),)
$(error make edit: CLASS=c (the target class, or null) is required)
endif
endif

# $(1) kind, $(2) output directory, $(3) box
EDIT_RUN = KIND=$(1) CLASS=$(CLASS) IMAGE="$(IMAGE)" DATA_TEST=$(DATA_TEST) N=$(EDIT_N) SIZE=$(EDIT_SIZE) \
	CHANNELS=$(DATA_CH) BACKGROUND=$(EDIT_BG) BOX=$(3) VOCAB=1024 VQGAN=$(VQGAN_RUN) MASKGIT=$(EDIT_MASKGIT) \
	STEPS=$(EDIT_STEPS) START=$(EDIT_START) SEED=$(SEED) THREADS=$(THREADS) BIN=$(abspath $(BINDIR)) \
	OUT=$(2) sh pipelines/edit.sh

.PHONY: inpaint outpaint edit
inpaint: $(INPAINT_DIR)/grid.png
outpaint: $(OUTPAINT_DIR)/grid.png
edit: $(EDIT_DIR)/grid.png

$(INPAINT_DIR)/grid.png: $(EDIT_DEPS) | all
	$(call EDIT_RUN,inpaint,$(INPAINT_DIR),$(INPAINT_BOX))
$(OUTPAINT_DIR)/grid.png: $(EDIT_DEPS) | all
	$(call EDIT_RUN,outpaint,$(OUTPAINT_DIR),$(OUTPAINT_BOX))
$(EDIT_DIR)/grid.png: $(EDIT_DEPS) | all
	$(call EDIT_RUN,edit,$(EDIT_DIR),$(INPAINT_BOX))

# maskgit.mk has the 2D run's rule only when TOKENS=2d: otherwise ask it.
# The sub-make always runs and checks the whole chain; done's time decides.
ifneq ($(TOKENS),2d)
.PHONY: edit-force
edit-force:
$(EDIT_MASKGIT)/done: edit-force
	@$(MAKE) --no-print-directory TOKENS=2d $@
endif
