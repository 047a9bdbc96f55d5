# pgraft developer entry points. `make test` is what CI runs (via .ci/run).
#
# The virtualenv is built from Debian's /usr/bin/python3 when it exists: the Raft node
# runs as the `postgres` OS user, which cannot execute an interpreter under /root
# (pyenv). PYTHON can be overridden.

PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV   ?= .venv
PY      = $(VENV)/bin/python
SEEDS  ?= 200
STEPS  ?= 2000
DURATION ?= 600
SEED   ?= 1
PYTEST_ARGS ?=

.PHONY: setup lint test test-all sim soak chaos bench-core bench-cluster bench-pg \
        extension install installcheck demo clean

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.stamp

lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

# Builds and installs the extension and the node's virtualenv when this machine can
# (root with PostgreSQL's server headers); the PostgreSQL tests need both.
install: setup
	@if [ "$$(id -u)" = 0 ] && command -v pg_config >/dev/null 2>&1; then \
	  bash scripts/install-node-venv.sh && $(MAKE) -C extension && $(MAKE) -C extension install; \
	else echo "install: needs root and pg_config; skipped"; fi

test: setup lint install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup install
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

sim: setup
	$(PY) -m pgraft.sim --seeds $(SEEDS) --steps $(STEPS)

soak: setup
	$(PY) -m pgraft.sim --seeds 10000 --steps $(STEPS) --jobs 2

chaos: setup
	$(PY) -m pgraft.chaos --duration $(DURATION) --seed $(SEED)

bench-core: setup
	$(PY) -m pgraft.bench core

bench-cluster: setup
	$(PY) -m pgraft.bench cluster

bench-pg: setup install
	$(PY) -m pgraft.bench pg

extension:
	$(MAKE) -C extension

installcheck: install
	bash extension/test/run-installcheck.sh

demo:
	bash scripts/demo-cluster.sh

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
	-$(MAKE) -C extension clean
