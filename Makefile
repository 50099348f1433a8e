# Set-up and everyday commands. Two environments at the repo root:
#   .venv/        runtime: core + FHE backends (Python 3.10 on Debian 12, see scripts/find_python.sh)
#   .venv-train/  training/export: torch 2.13.0 CPU + exporters (Python 3.11)
# Each is (re)built only when a pyproject.toml or a set-up script is newer than its stamp.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := setup

RUNTIME := .venv/.cryptoface-installed
TRAIN   := .venv-train/.cryptoface-installed
SETUP_SCRIPTS := scripts/setup_venv.sh scripts/find_python.sh

.PHONY: setup demo test test-slow bench clean-venvs clean-cache help

help:
	@echo "make demo        set up .venv/.venv-train if needed, run the encrypted demo"
	@echo "make test        set up if needed, run the default test suites of both environments"
	@echo "make test-slow   the same suites, slow tests only"
	@echo "make bench       primitive benchmark on every backend (cryptoface bench primitives)"
	@echo "make setup       only create/update both environments (the default goal)"
	@echo "make clean-venvs remove .venv and .venv-train (the Pyfhel wheel cache stays)"
	@echo "make clean-cache remove ~/.cache/cryptoface (next set-up rebuilds Pyfhel, ~4 min)"

setup: $(RUNTIME) $(TRAIN)

# wildcard: a backend whose pyproject.toml appears later triggers a reinstall.
$(RUNTIME): $(wildcard pyproject.toml backends/*/pyproject.toml) $(SETUP_SCRIPTS) scripts/build_pyfhel_wheel.sh
	scripts/setup_venv.sh runtime
	touch $@

$(TRAIN): $(wildcard pyproject.toml exporters/pyproject.toml) $(SETUP_SCRIPTS)
	scripts/setup_venv.sh train
	touch $@

demo: setup
	@test -x .venv/bin/cryptoface || { echo "no .venv/bin/cryptoface: the core defines no console script yet" >&2; exit 1; }
	.venv/bin/cryptoface demo

test: setup
	scripts/run_tests.sh "not slow"

test-slow: setup
	scripts/run_tests.sh slow

bench: $(RUNTIME)
	.venv/bin/cryptoface bench primitives

clean-venvs:
	rm -rf .venv .venv-train

clean-cache:
	rm -rf "$${CRYPTOFACE_CACHE:-$$HOME/.cache/cryptoface}"
