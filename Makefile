# Every target builds the virtual environment from the lock file first, so a fresh clone
# needs nothing but `make test` or `make demo`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv test lint typecheck layers tree unit demo bench crds lock image clean

# Re-running pip on an existing venv is idempotent, so a changed lock file updates it in place.
$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

# The whole suite: lint, strict type checks, then every test tier.
test: lint
	$(BIN)/pytest -q tests

unit: venv
	$(BIN)/pytest -q tests -m "not apiserver and not postgres"

lint: venv typecheck layers
	$(BIN)/ruff check jitgate operator webhook tests container plugins
	$(BIN)/ruff format --check jitgate operator webhook tests container plugins

# mypy and import-linter cannot follow setuptools' package-dir mapping in an editable install,
# so they read a symlinked tree shaped like the installed package.
tree: venv
	rm -rf .build/tree && mkdir -p .build/tree
	cp -rs $(CURDIR)/jitgate .build/tree/jitgate
	cp -rs $(CURDIR)/operator/src .build/tree/jitgate/operator
	cp -rs $(CURDIR)/webhook/src .build/tree/jitgate/webhook
	ln -s $(CURDIR)/tests .build/tree/tests

# The tests import their helpers as pytest's `pythonpath = ["tests"]` makes them importable.
typecheck: tree
	cd .build/tree && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p jitgate
	cd .build/tree && MYPYPATH=tests $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
		--explicit-package-bases tests

# The layer contracts in .importlinter.
layers: tree
	cd .build/tree && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports --no-cache \
		--config $(CURDIR)/.importlinter

demo: venv
	$(BIN)/jitgate demo

bench: venv
	$(BIN)/python -m tests.bench

# Regenerate the CRDs from jitgate/core/api.py, and the chart's copy of them.
crds: venv
	$(BIN)/jitgate crds --output-dir crds
	cp crds/*.yaml charts/jitgate/crds/

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install -q uv==0.13.8 --target .build/uv
	PYTHONPATH=.build/uv .build/uv/bin/uv pip compile pyproject.toml --all-extras \
		--python-version 3.11 --generate-hashes -o requirements.lock

# The image the chart runs: Docker where an engine answers, else buildah/podman on a base from a
# registry or from Debian's packages; prints its size and Python distributions.
image:
	container/build-image.sh

clean:
	rm -rf $(VENV) .build build *.egg-info
