# The two set-up commands of the README:  `make demo`  and  `make test`.
# Both create .venv with the interpreter in $(PYTHON), install torch first (pinned: an unpinned
# torch pulls several GB of CUDA packages on a machine without one), then ecgprobe itself.
# GPU users: make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test venv lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	$(PIP) install $(TORCH)

demo: venv
	$(PIP) install -e ".[openecg]"
	$(BIN)/ecgprobe demo

test: venv
	$(PIP) install -e ".[test,openecg]"
	$(BIN)/python -m pytest

lint: venv
	$(PIP) install -e ".[dev]"
	$(BIN)/ruff check .
