# Two commands do everything on a fresh machine: `make demo` and `make test`.
# `make test` runs `lint` first: ruff, mypy --strict, and the import-linter layers (pyproject.toml),
# then every test, spread over TEST_WORKERS processes (pytest-xdist; tests/conftest.py).
# `make check` is the edit loop: `lint` and the tests not marked `integration` (no Azurite,
# no child process), over two workers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: setup demo test check lint typecheck clean

# Worker processes for `make test`: more than the cores, as many tests wait on Azurite,
# the simulator's latency or a child process. Bytecode is cached (the tree ignores it) so
# that each worker and each child process does not compile the code again.
TEST_WORKERS ?= 4
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

setup: $(STAMP) node_modules/.installed $(CHECKOV_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

demo: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(PYTEST) -q -n $(TEST_WORKERS)

check: setup lint
	$(PYTEST) -q -m "not integration" -n 2

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache

# checkov in its own venv: its pins conflict with requirements-dev.txt.
$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# Scale benchmark (bench/): 100,000 users through the real sync, then a 10,000-user
# write-back run, a 1,000-user write-back create run and a 10,000-user calendar run;
# figures in bench/out/.
.PHONY: bench
bench: setup
	$(BIN)/python -m bench.run --users 100000 --groups 20 --latency-ms 20
	$(BIN)/python -m bench.writeback --users 10000 --latency-ms 20
	$(BIN)/python -m bench.writeback_create --users 1000 --latency-ms 20
	$(BIN)/python -m bench.calendars --users 10000 --latency-ms 20

# requirements.txt is the lock of pyproject.toml's dependencies (the whole
# resolved set, so Azure's remote build installs exactly what the tests ran
# with). Regenerate after changing a dependency, with Python 3.11 (the runtime's),
# then `make setup`. pip-tools in its own venv: it is not a dependency of the app.
LOCK_VENV := .venv-lock
.PHONY: lock
lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip-tools==7.6.2
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --strip-extras \
	  --no-emit-index-url --no-emit-trusted-host --no-emit-find-links \
	  --output-file requirements.txt pyproject.toml
