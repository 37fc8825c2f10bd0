# The project's two commands: `make repro` (set up, run the pipeline) and `make test`.
# Both create .venv on first use; nothing needs to be installed beforehand but python3.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test setup setup-test bench clean

repro: setup
	$(BIN)/dvc repro

test: setup-test
	$(BIN)/python -m pytest

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed

bench: setup
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_predict.py

clean:
	rm -rf $(VENV)
