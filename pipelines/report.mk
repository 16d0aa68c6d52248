# report.mk - the demo's report (issue 7): the metric tables, grids, curves,
# configuration and times of the whole chain, as Markdown and as HTML that
# opens from disk.
#
#   make report [DATA=...] [QUICK=1]
#       scores the held-out reconstructions and the samples with the
#       evaluation classifier (Frechet distances, class accuracy of samples:
#       REPORT_DIR/eval.tsv), then writes REPORT_DIR/report.md and report.html
#       with their images in REPORT_DIR/img/. It needs the trained chain of
#       both token kinds; `make demo` makes everything in order.
REPORT_DIR    := runs/demo$(if $(filter-out fmnist,$(DATA)),-$(DATA))$(if $(QUICK),-quick)
MG1_RUN       := runs/maskgit-1d-$(RUN_SUFFIX)
MG2_RUN       := runs/maskgit-2d-$(RUN_SUFFIX)
REPORT_SAMPLE := sample-all-s$(STEPS)-g$(GUIDANCE)
REPORT_SCORES := $(VQGAN_RUN)/done $(TITOK2_RUN)/done $(MG1_RUN)/$(REPORT_SAMPLE)/samples.png \
                 $(MG2_RUN)/$(REPORT_SAMPLE)/samples.png $(CLS_RUN)/done

.PHONY: report
report: $(REPORT_DIR)/report.html

# one line per score: NAME STREAM FIELD [LABEL]
$(REPORT_DIR)/eval.tsv: $(REPORT_SCORES)
	@mkdir -p $(REPORT_DIR)
	@printf '%s\n' "rfd_vqgan $(VQGAN_RUN)/test-recon.tz recon" \
	    "rfd_titok $(TITOK2_RUN)/test-recon.tz recon" \
	    "rfd_titok_argmax $(TITOK2_RUN)/test-argmax.tz argmax" \
	    "rfd_titok_soft $(TITOK2_RUN)/test-soft.tz soft" \
	    "gfd_1d $(MG1_RUN)/$(REPORT_SAMPLE)/samples.tz recon label $(DATA_TRAIN)" \
	    "gfd_2d $(MG2_RUN)/$(REPORT_SAMPLE)/samples.tz recon label $(DATA_TRAIN)" | \
	while read -r name stream field label floor; do \
	    STREAM=$$stream FIELD=$$field LABEL=$$label FLOOR=$$floor $(CLS_SCORE) | \
	    sed "s/^fd\t/$$name\t/; s/^acc\t/class_acc_$${name#gfd_}\t/; s/^fd_floor\t/$${name}_floor\t/" || exit 1; \
	done > $@.tmp
	@awk -F'\t' '$$1 == "fd_train_test" { print "fd_test_train\t" $$2 }' $(CLS_RUN)/eval.tsv >> $@.tmp
	@mv $@.tmp $@
	@echo "report: scores in $@"

$(REPORT_DIR)/report.html: $(REPORT_DIR)/eval.tsv pipelines/report.sh
	OUT=$(REPORT_DIR) DATA=$(DATA) DATA_TRAIN=$(DATA_TRAIN) DATA_TEST=$(DATA_TEST) VQGAN_RUN=$(VQGAN_RUN) TITOK1_RUN=$(TITOK1_RUN) \
	TITOK2_RUN=$(TITOK2_RUN) MG1_RUN=$(MG1_RUN) MG2_RUN=$(MG2_RUN) SAMPLE1=$(MG1_RUN)/$(REPORT_SAMPLE) \
	SAMPLE2=$(MG2_RUN)/$(REPORT_SAMPLE) EDIT=$(EDIT_ROOT) EVAL=$(REPORT_DIR)/eval.tsv CLS_RUN=$(CLS_RUN) \
	PATH=$(abspath $(BINDIR)):$$PATH sh pipelines/report.sh
