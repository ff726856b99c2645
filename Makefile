# The book's commands. `make test` is what CI runs; `make book` builds the HTML book; `make lab` opens it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VENV_DIR := $(abspath $(VENV))
PY := $(VENV_DIR)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CELL_TIMEOUT ?= 1200
# glibc, for the 224-px CPU runs of the smoke run: keep freed memory for reuse instead of mapping and unmapping every
# large tensor, which otherwise costs a fifth of a CNN step in page faults (EfficientNet-Lite0, batch 20, one thread:
# 14.6 s -> 11.6 s, system time 2.4 s -> 0.1 s). Allocation only: no number changes. Other C libraries ignore it.
BIG_TENSOR_MALLOC := MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824
# What every executed notebook sees: this tree's cl_lib first, inline figures, widgets drawn as plain images.
KERNEL_ENV := PYTHONPATH=$(CURDIR) MPLBACKEND=module://matplotlib_inline.backend_inline CL_BOOK_STATIC=1
NBVAL := $(PY) -m pytest -q -p scripts.nbcapture --nbval-lax --nbval-cell-timeout=$(CELL_TIMEOUT) --durations=0

.PHONY: install test unit chapters crosscheck crosscheck-ci doctor smoke solutions notebooks book book-test site lab warm full-report bench clean

install: $(VENV_DIR)/.installed

$(VENV_DIR)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_DIR)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test,book]"
	touch $@

# jupytext: chapters/*.py -> _build/notebooks/<variant>/*.ipynb, each stamped with the key of what it runs
notebooks: install
	CL_BOOK_PROFILE=quick $(PY) scripts/book.py notebooks

unit: install
	CL_BOOK_PROFILE=quick $(PY) -m pytest -q tests --ignore=tests/browser

# every chapter under nbval (quick); the executed notebooks are kept for the book (no second run)
chapters: install
	CL_BOOK_PROFILE=quick $(PY) scripts/book.py notebooks
	CL_BOOK_PROFILE=quick CL_BOOK_CAPTURE=_build/executed/quick $(KERNEL_ENV) $(NBVAL) _build/notebooks/quick/[0-9]*.ipynb

# Verdicts must not depend on the CPU: ATen and oneDNN pick their float paths by instruction set. Rerun chapters
# under another kernel set in a fresh run cache (decoded images, which no torch kernel touches, are shared), then
# compare every claim's verdict with what `make chapters` recorded. The other kernel set: on an AVX-512 machine,
# AVX2 for ATen and oneDNN (what an AVX2 laptop runs); elsewhere ATen's portable kernels, oneDNN as it is. (Capping
# oneDNN at SSE4.1 as well doubles a CNN step, 15 steps of EfficientNet-Lite0 at 64 px: 4.7 s default, 6.3 s ATen
# portable, 9.3 s both; ATen's portable kernels alone move the weights as far from the default run as both do.)
# CROSSCHECK_ENV overrides it, e.g. CROSSCHECK_ENV="ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41".
CROSSCHECK ?= 00_setting 01_pretrainers 02_dkvb 03_ada 04_confit 05_cold_fusion 06_comparison 07_text_comparison
CROSS := $(CURDIR)/_build/crosscheck
crosscheck: install
	CL_BOOK_PROFILE=quick $(PY) scripts/book.py notebooks
	rm -rf $(CROSS) && mkdir -p $(CROSS)/cache
	cache="$${CL_BOOK_CACHE:-data/cache}"; if [ -d "$$cache/decoded" ]; then ln -s "$$(cd "$$cache/decoded" && pwd)" $(CROSS)/cache/decoded; fi
	isa=$$($(PY) -c "import torch; print(torch.backends.cpu.get_cpu_capability())"); \
	env="$${CROSSCHECK_ENV:-$$(if [ "$$isa" = AVX512 ]; then echo ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2; \
	  else echo ATEN_CPU_CAPABILITY=default; fi)}"; echo "crosscheck kernels: $$env (default here: $$isa)"; \
	env CL_BOOK_PROFILE=quick CL_BOOK_CACHE=$(CROSS)/cache CL_BOOK_BUILD=$(CROSS) $$env $(KERNEL_ENV) \
	  $(NBVAL) $(CROSSCHECK:%=_build/notebooks/quick/%.ipynb) || true
	$(PY) scripts/crosscheck.py _build/results $(CROSS)/results $(CROSSCHECK)

# the exercises' worked solutions (quick), also kept for the book
solutions: install
	CL_BOOK_PROFILE=quick $(PY) scripts/book.py notebooks --solutions
	CL_BOOK_PROFILE=quick CL_BOOK_CAPTURE=_build/executed/quick $(KERNEL_ENV) $(NBVAL) \
	  _build/notebooks/quick/solutions-*.ipynb

# every path of the paper-scale profile, with data, epochs and steps capped (book.toml [profiles.full.*.smoke]).
# Two chapters at a time, each kernel on one core (a chapter's runs then go one after the other in its process),
# so that no chapter's serial stretch leaves the other core idle. Chapters are handed out in this order, the longest
# (measured) first; the glob adds any other, and pytest drops its second mention of those listed.
SMOKE_ORDER := 04_confit 01_pretrainers 06_comparison 00_setting 05_cold_fusion 02_dkvb 03_ada 07_text_comparison
smoke: install
	CL_BOOK_PROFILE=full CL_BOOK_SMOKE=1 $(PY) scripts/book.py notebooks
	CL_BOOK_PROFILE=full CL_BOOK_SMOKE=1 CL_BOOK_CAPTURE=_build/executed/full-smoke OMP_NUM_THREADS=1 $(BIG_TENSOR_MALLOC) $(KERNEL_ENV) \
	  $(NBVAL) -n 2 --dist loadfile --no-loadscope-reorder \
	  $(SMOKE_ORDER:%=_build/notebooks/full-smoke/%.ipynb) _build/notebooks/full-smoke/[0-9]*.ipynb

# the site from what `chapters` executed (executes only what is missing or stale), then the browser test
book-test: install
	CL_BOOK_PROFILE=quick $(PY) scripts/book.py execute
	CL_BOOK_PROFILE=quick $(PY) -m scripts.site
	CL_BOOK_PROFILE=quick $(PY) -m pytest -q tests/browser

# In make test, the crosscheck covers the chapters that fine-tune a CNN end to end, whose per-seed numbers move most
# between kernel sets (measured: up to 5 points in 00); `make crosscheck` covers every chapter (about 25 minutes).
CROSSCHECK_CI := 00_setting 04_confit
crosscheck-ci:
	$(MAKE) crosscheck CROSSCHECK="$(CROSSCHECK_CI)"

test: unit chapters crosscheck-ci solutions smoke book-test

book: install
	$(PY) scripts/book.py execute
	$(PY) -m scripts.site

# JupyterLab rooted at the repository (README, WORKSHOP and the chapters in reach), opening on chapters/.
# On a shared server: make lab LAB_ARGS="--ip=0.0.0.0 --no-browser" (then open the printed URL with its token).
LAB_ARGS ?=
lab: install
	$(PY) scripts/lab_settings.py $(VENV_DIR)
	$(KERNEL_ENV) CL_BOOK_STATIC=0 $(VENV_DIR)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.default_url=/lab/tree/chapters $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

# fill the caches (features, checkpoints, runs) before a workshop: every chapter once in the active profile
warm: install
	$(PY) scripts/book.py execute

# every chapter in `full` on a GPU machine: wall time, peak memory, every claim -> _build/full-report.md
full-report: install
	CL_BOOK_PROFILE=full $(PY) scripts/full_report.py

# one minute: is this machine ready (Python, torch, book.toml, data, offline weights, cache space, a kernel)?
doctor: install
	$(PY) scripts/doctor.py

bench: install
	$(PY) benchmarks/loop_overhead.py

clean:
	rm -rf _build
