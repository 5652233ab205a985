# The two set-up commands of the README:  `make demo`  and  `make test`.
# Both create .venv with the interpreter in $(PYTHON), install torch first (pinned: an unpinned
# torch pulls several GB of CUDA packages on a machine without one), then ecgprobe itself.
# GPU users: make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test venv lint bench system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	$(PIP) install $(TORCH)

demo: venv
	$(PIP) install -e ".[openecg]"
	$(BIN)/ecgprobe demo

# The report tests render HTML in headless Chromium and PDF pages with pdftoppm (Debian packages).
# Installed when possible (root + apt-get); otherwise those tests skip and say why.
system-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and poppler-utils for the report tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium poppler-utils >/dev/null) || echo "note: could not install them; browser/PDF tests will skip"; \
	else echo "note: install chromium and poppler-utils for the browser/PDF tests (they skip otherwise)"; fi

# The suite runs on every core (at most 4), a test file per worker (module fixtures stay shared).
test: venv system-deps
	$(PIP) install -e ".[test,openecg]"
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: venv
	$(PIP) install -e ".[dev]"
	$(BIN)/ruff check .

# The README's performance table: each benchmark script below runs its documented default
# workload (3 runs) and writes benchmarks/results/<figure>.json; make_table.py then rewrites the
# table between the bench-table markers of README.md from every JSON there. A part at a time:
#   make bench BENCH=startup        (or BENCH="startup probe"; BENCH_ARGS="--runs 5" is passed on)
# Run it on a quiet machine: the figures are wall-clock times.
#   make bench BENCH=report BENCH_ARGS=--reference   (the full report of each reference encoder)
BENCH ?= startup extract probe physiology robustness benchmark
BENCH_ARGS ?=

bench: venv
	$(PIP) install -e .
	@for b in $(BENCH); do \
	  echo "== benchmarks/bench_$$b.py $(BENCH_ARGS)"; \
	  $(BIN)/python benchmarks/bench_$$b.py $(BENCH_ARGS) || exit 1; \
	done
	$(BIN)/python benchmarks/make_table.py
