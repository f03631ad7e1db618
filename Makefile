# musicgym: two commands do the whole set-up on a fresh machine.
#   make demo   create .venv, install, fetch the Glicol reference engine, run the demo
#   make test   the same set-up, then the whole test suite
#   make bench  the same set-up, then the benchmarks (ratios printed and written to benchmarks/results/)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,music,plot,train,live,rllib
# The real Glicol engine (npm glicol@0.4.0) is installed here; musicgym reads the same variable.
MUSICGYM_GLICOL_DIR ?= $(HOME)/.cache/musicgym/glicol
export MUSICGYM_GLICOL_DIR
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint clean

setup: $(VENV)/.installed $(MUSICGYM_GLICOL_DIR)/node_modules/glicol/glicol_wasm.wasm

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch (a wheel on this machine kind; a plain `torch` would pull CUDA)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

$(MUSICGYM_GLICOL_DIR)/node_modules/glicol/glicol_wasm.wasm:
	mkdir -p "$(MUSICGYM_GLICOL_DIR)"
	npm install --silent --no-audit --no-fund --prefix "$(MUSICGYM_GLICOL_DIR)" glicol@0.4.0
	test -f "$@"

demo: setup
	$(PY) -m musicgym demo

test: setup
	$(PY) -m pytest -n 2 $(PYTEST_ARGS) tests

# RL-Musician 0.4.6, the composition benchmark's peer, in a venv of its own (its env needs
# setuptools < 81 for pkg_resources); if it cannot install, its columns say "not run".
RLM_VENV := .venv-rlm

$(RLM_VENV)/.installed:
	$(PYTHON) -m venv $(RLM_VENV)
	$(RLM_VENV)/bin/python -m pip install --quiet rl-musician==0.4.6 'setuptools<81' \
		&& touch $@ || echo "warning: rl-musician==0.4.6 did not install; its columns will say 'not run'"

bench: setup $(RLM_VENV)/.installed
	MUSICGYM_RLM_PYTHON=$(CURDIR)/$(RLM_VENV)/bin/python $(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/lint-imports --no-logo --no-cache

clean:
	rm -rf $(VENV) $(RLM_VENV) out build *.egg-info
