# percep.mk - the perceptual loss's default network (no pretrained weights
# can be downloaded here): tokpipe-percep, a small conv net trained as a
# classifier on the data set's labels, its features compared LPIPS-style.
# Why, and what it does to reconstructions: bench/perceptual.md.
#   make percep     data/percep-$(DATA).safetensors (test accuracy in its metadata)
PERCEP_STEPS ?= $(if $(QUICK),20,600)
PERCEP       := data/percep-$(RUN_SUFFIX).safetensors

.PHONY: percep
percep: $(PERCEP)

$(PERCEP): $(DATA_TRAIN) $(DATA_TEST) | $(BUILD)/bench/perc_train
	$(BUILD)/bench/perc_train --steps $(PERCEP_STEPS) --test $(DATA_TEST) -j $(THREADS) $(DATA_TRAIN) $@
