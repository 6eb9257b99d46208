PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench soak lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tidings migrate
	$(BIN)/tidings serve

# The suite runs in TEST_WORKERS pytest-xdist processes (each its own session: its own
# databases, SMTP server and ports); worksteal hands the slow files' tests to idle workers.
# PYTEST_ARGS='-n0 tests/x.py' or '-p no:xdist tests/x.py' runs in one process.
TEST_WORKERS ?= 3
XDIST = $(if $(findstring no:xdist,$(PYTEST_ARGS)),,-n $(TEST_WORKERS) --dist worksteal)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m soak --run-soak tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/mypy app

clean:
	rm -rf $(VENV) var
