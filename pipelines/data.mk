# data.mk - the default datasets as .tz streams (DESIGN.md section 7).
#
#   make data     data/fmnist-train.tz  60000 x [1,32,32] + label, 235 records
#                 data/fmnist-test.tz   10000 x [1,32,32] + label,  40 records
#                 data/emoji.tz          3781 x [3,32,32] + label,  15 records
#
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (`make deps`), read
# from its gzipped IDX files and padded 28 -> 32 with zeros. The emoji are
# the 64x64 RGBA PNGs under img/google/64/ of the npm package
# emoji-datasource-google, read by img2patch straight from the `npm pack`
# tarball, composited on white, area-resized to 32x32 and labelled with the
# 9 categories of its categories.json (Component, 5 skin-tone and hair
# swatches, left out); the mapping is in img2patch(1). Their order is
# shuffled (seed 0), since the package lists them category by category.
#
# Every target is a real file whose prerequisites are its inputs and this
# file, so a second `make data` does nothing. img2patch is an order-only
# prerequisite: a rebuilt library does not remake the datasets
# (`make data-clean data` does).

FMNIST_DIR    ?= /usr/share/datasets/fashion-mnist
EMOJI_VERSION ?= 16.0.0
EMOJI_TGZ     := data/emoji-datasource-google-$(EMOJI_VERSION).tgz
DATA_BATCH    ?= 256
IMG2PATCH     := $(BINDIR)/img2patch

.PHONY: data data-clean
data: data/fmnist-train.tz data/fmnist-test.tz data/emoji.tz

# $(1): train or t10k (Debian's file prefix)
define fmnist_rule
	@mkdir -p $(@D)
	$(IMG2PATCH) -b $(DATA_BATCH) --pad 2 --labels $(FMNIST_DIR)/$(1)-labels-idx1-ubyte.gz \
	    $(FMNIST_DIR)/$(1)-images-idx3-ubyte.gz -o $@
endef

data/fmnist-train.tz: $(FMNIST_DIR)/train-images-idx3-ubyte.gz \
                      $(FMNIST_DIR)/train-labels-idx1-ubyte.gz pipelines/data.mk | $(IMG2PATCH)
	$(call fmnist_rule,train)

data/fmnist-test.tz: $(FMNIST_DIR)/t10k-images-idx3-ubyte.gz \
                     $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz pipelines/data.mk | $(IMG2PATCH)
	$(call fmnist_rule,t10k)

# npm pack fetches into a temporary directory; the rename makes the tarball
# appear whole or not at all. npm checks the registry's integrity hash.
$(EMOJI_TGZ):
	@mkdir -p $(@D)
	@rm -rf $(@D)/.npm-pack.tmp && mkdir $(@D)/.npm-pack.tmp
	npm pack --silent --pack-destination $(@D)/.npm-pack.tmp \
	    emoji-datasource-google@$(EMOJI_VERSION) >/dev/null
	mv $(@D)/.npm-pack.tmp/$(notdir $@) $@ && rmdir $(@D)/.npm-pack.tmp

# KEY<TAB>LABEL for img2patch --label-map: every Google 64px image (skin-tone
# variants take their base emoji's category), label = index of its category
# in categories.json without Component.
define EMOJI_LABELS_PY
import json, sys, tarfile
tgz = tarfile.open(sys.argv[1])
read = lambda name: json.load(tgz.extractfile("package/" + name))
cats = [c for c in read("categories.json") if c != "Component"]
assert len(cats) == 9, cats
label = {c: i for i, c in enumerate(cats)}
rows = set()
for e in read("emoji.json"):
    if e["category"] not in label:
        continue
    for v in [e] + list(e.get("skin_variations", {}).values()):
        if v.get("has_img_google"):
            key = "package/img/google/64/" + v["image"][: -len(".png")]
            rows.add((key, label[e["category"]]))
for key, lab in sorted(rows):
    print("%s\t%d" % (key, lab))
endef
export EMOJI_LABELS_PY

data/emoji-labels.tsv: $(EMOJI_TGZ) pipelines/data.mk
	$(PYTHON) -c "$$EMOJI_LABELS_PY" $< > $@.tmp && mv $@.tmp $@

data/emoji.tz: $(EMOJI_TGZ) data/emoji-labels.tsv pipelines/data.mk | $(IMG2PATCH)
	$(IMG2PATCH) -b $(DATA_BATCH) --member 'package/img/google/64/*' \
	    --label-map data/emoji-labels.tsv --channels 3 --background 255,255,255 \
	    --size 32 --resize --resize-mode area --shuffle --seed 0 $< -o $@

# the subsets QUICK runs use (pipelines/config.mk); records of 256 images
data/$(DATA)-quick-train.tz: $(DATA_TRAIN_FULL) | $(BINDIR)/tz
	$(BINDIR)/tz head --samples 2048 $< -o $@
data/$(DATA)-quick-test.tz: $(DATA_TEST_FULL) | $(BINDIR)/tz
	$(BINDIR)/tz head --samples 256 $< -o $@
ifneq ($(TEST_SAMPLES),)
data/$(DATA)-test-$(TEST_SAMPLES).tz: $(DATA_TEST_FULL) | $(BINDIR)/tz
	$(BINDIR)/tz head --samples $(TEST_SAMPLES) $< -o $@
endif

data-clean:
	rm -f data/fmnist-train.tz data/fmnist-test.tz data/emoji.tz data/emoji-labels.tsv
