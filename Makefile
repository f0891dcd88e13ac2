# loadgen — the original simulator's targets plus demo, test and bench.
# Every target that needs the virtual environment creates it first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOADGEN := $(BIN)/loadgen
STAMP := $(VENV)/.installed

# demo knobs
DEMO_SCALE ?= 1
DEMO_RATE ?= 50/s
DEMO_DURATION ?= 30s

.PHONY: install init seed stream reset counts check fmt lint docs clean demo test bench bench-pytest

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,debezium,metrics,report]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install loadgen with its dev tools

init: $(STAMP)  ## create the database, schema, indexes, triggers and lookup rows
	$(LOADGEN) init

seed: $(STAMP)  ## seed all tables with COPY (SCALE=1 by default)
	$(LOADGEN) seed --scale $(or $(SCALE),1)

stream: $(STAMP)  ## stream operations until Ctrl-C (RATE=200/min by default)
	$(LOADGEN) stream --rate $(or $(RATE),200/min)

reset: $(STAMP)  ## drop, recreate and seed
	$(LOADGEN) reset --yes

counts: $(STAMP)
	$(LOADGEN) counts

check: $(STAMP)
	$(LOADGEN) check

fmt: $(STAMP)
	$(BIN)/ruff format loadgen tests bench
	$(BIN)/ruff check --fix loadgen tests bench

lint: $(STAMP)  ## what CI checks besides the tests: ruff lint, ruff format, mypy
	$(BIN)/ruff check loadgen tests bench
	$(BIN)/ruff format --check loadgen tests bench
	$(BIN)/mypy loadgen

docs: $(STAMP)  ## regenerate docs/operations.md's operations table from the registry
	$(BIN)/python -m loadgen.ops.catalog docs/operations.md

demo: $(STAMP)  ## init + seed + 30 s stream + counts + check, on the configured or embedded server
	$(LOADGEN) init
	$(LOADGEN) seed --scale $(DEMO_SCALE) --append
	$(LOADGEN) stream --rate $(DEMO_RATE) --duration $(DEMO_DURATION)
	$(LOADGEN) counts
	$(LOADGEN) check
	@echo; echo "database: $$($(LOADGEN) db url 2>/dev/null || echo 'the one you configured (see: loadgen config show)')"
	@echo "look around with:  psql \"\$$($(LOADGEN) db url)\""

test: $(STAMP)  ## the test suite (LOADGEN_TEST_DSN, else an embedded server); PYTEST_ARGS adds pytest options
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Benchmarks print side-by-side tables (ours vs the reference, as ratios). They need a running
# server: BENCH_DSN (default postgresql://postgres@127.0.0.1:5432/test) and pgbench (PGBENCH).
bench: $(STAMP)  ## side-by-side benchmarks: datagen, seed vs the pg_restore-style ceiling/pgbench -i, stream vs pgbench, start-up, verify (CPU, and a real slot vs its raw read), capture
	$(BIN)/python bench/bench_datagen.py
	$(BIN)/python bench/bench_seed.py
	$(BIN)/python bench/bench_ops.py
	$(BIN)/python bench/bench_stream.py
	$(BIN)/python bench/bench_stream.py capacity4
	$(BIN)/python bench/bench_stream.py rate-high
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_verify_slot.py
	$(BIN)/python bench/bench_capture.py

bench-pytest: $(STAMP)  ## the same suites under pytest-benchmark (save/compare baselines)
	$(BIN)/pytest -q bench --benchmark-only --benchmark-columns=min,mean,ops

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
