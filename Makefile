# The README contract: `make demo` and `make test`, each bootstrapping .venv on its own.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every third-party version is pinned in requirements.lock (resolved by uv: `make lock`); pyproject.toml
# keeps only lower bounds. pip installs with the lock as constraints, so a fresh machine gets what CI tested.
LOCK := requirements.lock
# pytest-xdist workers: one per core (the e2e tests start their own servers and subprocesses per worker).
WORKERS ?= auto

.PHONY: demo test test-fast lint lock golden bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml sandbox/pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools says an editable install of a mapped layout uses an import finder; that is the design here.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -c $(LOCK) -e ./sandbox -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/healthsync demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(WORKERS)

# Everything but the end-to-end and sandbox-writeback suites (marked `slow`): the loop while editing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(WORKERS) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

# Re-resolve requirements.lock from pyproject.toml (needs the package index). uv because it resolves the
# project's self-referencing extras and the in-repo sandbox distribution in one step, in about a second.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--no-emit-package healthsync-sandbox --no-header -o $(LOCK)

# Re-record the golden scoring fixtures (tests/scoring/golden/*.json) after an intended scoring change;
# review the diff before committing it.
golden: $(STAMP)
	HEALTHSYNC_RECORD_GOLDEN=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/scoring/test_golden_portfolio.py

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info sandbox/*.egg-info
