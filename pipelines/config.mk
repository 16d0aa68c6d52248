# config.mk - what every pipeline shares (included first).
#   DATA=fmnist|emoji   the data set; QUICK=1 a few steps of everything (CI)
DATA        ?= fmnist
QUICK       ?=
ifeq ($(DATA),emoji)
DATA_TRAIN  := data/emoji.tz
DATA_TEST   := data/emoji.tz
DATA_CH     := 3
DATA_CLASSES := 9
else
DATA_TRAIN  := data/fmnist-train.tz
DATA_TEST   := data/fmnist-test.tz
DATA_CH     := 1
DATA_CLASSES := 10
endif
# The held-out figures use the first TEST_SAMPLES test images (Fashion-MNIST:
# 2000 of 10000, for the demo's budget: TiTok's evaluations, four decoders,
# took 6 minutes over all 10000 and 4 over 5000); TEST_SAMPLES= evaluates on
# the whole test set.
TEST_SAMPLES ?= $(if $(filter fmnist,$(DATA)),2000)
# TOKENS_TRAIN=N: make tokens-1d and tokens-2d encode only the first N training
# images (what the demo's TiTok and MaskGIT runs see; empty: all of them)
TOKENS_TRAIN ?= $(if $(QUICK),640,20480)
# QUICK runs use the first 2048 training and 256 test images
DATA_TRAIN_FULL := $(DATA_TRAIN)
DATA_TEST_FULL  := $(DATA_TEST)
ifneq ($(QUICK),)
DATA_TRAIN  := data/$(DATA)-quick-train.tz
DATA_TEST   := data/$(DATA)-quick-test.tz
else ifneq ($(TEST_SAMPLES),)
DATA_TEST   := data/$(DATA)-test-$(TEST_SAMPLES).tz
endif
RUN_SUFFIX  := $(DATA)$(if $(QUICK),-quick)
THREADS     ?= $(shell nproc)
# the stages of a pipeline take turns: spinning OpenMP threads would only
# steal the cores of the stage that works (ARCHITECTURE.md, OpenMP waiting)
export OMP_WAIT_POLICY = passive
