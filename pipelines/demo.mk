# demo.mk - `make demo`: the whole chain at tiny size on the default data set.
# Each stage is a target with its inputs as prerequisites, so a second
# `make demo` does nothing and deleting one output redoes what depends on it.
# Today the chain is: packages, build, data sets (pipelines/data.mk); the
# model stages join it as they land (ARCHITECTURE.md, Status).
.PHONY: demo
demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data
