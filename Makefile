# The README's commands. Everything installs into .venv from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned here (pyproject's torch extra only asks for a range): on these machines
# torch==2.13.0 is a local CPU wheel, while an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
JOBS ?= 2

BASE_STAMP  := $(VENV)/.installed-base
TORCH_STAMP := $(VENV)/.installed-torch

.PHONY: install install-torch reproduce reproduce-full figures-readme docs neural bench-neural test test-thorough bench check check-seeds lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,dask,parquet]'
	touch $@

$(TORCH_STAMP): $(BASE_STAMP)
	$(BIN)/python -m pip install -q '$(TORCH_PIN)'
	$(BIN)/python -m pip install -q -e '.[torch,peft,language]'
	touch $@

install: $(BASE_STAMP)

install-torch: $(TORCH_STAMP)

## make reproduce: quick reproduction of every synthetic table and figure (< 5 min on 2 cores)
reproduce: $(TORCH_STAMP)
	$(BIN)/lowrank-theory reproduce --quick --jobs $(JOBS)

## make reproduce-full: the paper-size settings
reproduce-full: $(TORCH_STAMP)
	$(BIN)/lowrank-theory reproduce --full --jobs $(JOBS)

## make test: the whole suite (installs the torch extra so the torch tests run too)
test: $(TORCH_STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --hypothesis-profile=ci

## make test-thorough: the property-test files (those with @given tests) with the thorough
## profile, 20x the examples of make test's
PROPERTY_TESTS := $(shell grep -l "^@given" tests/*.py tests/*/*.py)
test-thorough: $(TORCH_STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --hypothesis-profile=thorough $(PROPERTY_TESTS)

## make figures-readme: quick run, then copy the README's PNGs into figures/generated/
figures-readme: $(TORCH_STAMP)
	$(BIN)/lowrank-theory reproduce --quick --jobs $(JOBS) --publish

## make docs: regenerate docs/sweeps.md and docs/figures.md from the config classes and figures
docs: $(BASE_STAMP)
	$(BIN)/lowrank-theory describe --docs docs

## make neural: the torch experiments at CPU size (resumable), then their figures
NEURAL_CPU := results/neural/cpu
neural: $(TORCH_STAMP)
	for e in shallow vision language; do $(BIN)/lowrank-theory neural --experiment $$e --size cpu --out $(NEURAL_CPU) || exit 1; done
	$(BIN)/python -m lowrank_theory.figures.neural $(NEURAL_CPU)/neural_shallow.csv $(NEURAL_CPU)/neural_vision.csv $(NEURAL_CPU)/neural_language.csv --out results/neural/figures

## make bench-neural: steps/s of the neural backend (batched vs one model, CUDA graphs vs eager)
bench-neural: $(TORCH_STAMP)
	$(BIN)/python benchmarks/bench_neural.py

check: $(BASE_STAMP)
	$(BIN)/lowrank-theory check

## make check-seeds: every check on seeds 0-99, JOBS seeds at a time; exit 1 names a failing seed
check-seeds: $(BASE_STAMP)
	$(BIN)/lowrank-theory check --seeds 100 --jobs $(JOBS)

bench: $(BASE_STAMP)
	$(BIN)/python benchmarks/bench_linear.py

lint: $(BASE_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
