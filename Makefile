# The book's commands. `make test` is what CI runs; `make book` builds the HTML book; `make lab` opens it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
NB_DIR := _build/notebooks
CHAPTERS := $(shell $(PYTHON) -c "import tomllib;print(' '.join(c['file'] for c in tomllib.load(open('book.toml','rb'))['chapters']))")
CELL_TIMEOUT ?= 1200

.PHONY: install test unit chapters notebooks book lab bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

notebooks: install
	@mkdir -p $(NB_DIR)
	@for f in $(CHAPTERS); do \
	  $(VENV)/bin/jupytext --quiet --to ipynb --output $(NB_DIR)/$${f%.py}.ipynb chapters/$$f || exit 1; \
	done

unit: install
	CL_BOOK_PROFILE=quick $(PY) -m pytest -q tests

chapters: notebooks
	CL_BOOK_PROFILE=quick $(PY) -m pytest -q --nbval-lax --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  --durations=0 $(NB_DIR)

test: unit chapters

book: install
	$(PY) scripts/build_book.py

lab: install
	$(PY) scripts/lab_settings.py $(VENV)
	cd chapters && ../$(VENV)/bin/jupyter lab

bench: install
	$(PY) benchmarks/loop_overhead.py

clean:
	rm -rf _build
