# The two commands a new machine needs: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev install-teacher lint clean

# MediaPipe for `stagepose data label`, without its declared dependencies (see pyproject.toml, extra teacher).
MEDIAPIPE := mediapipe==0.10.21

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,ndi,teacher]'
	$(BIN)/python -m pip install -q --no-deps $(MEDIAPIPE)
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-teacher: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[teacher]'
	$(BIN)/python -m pip install -q --no-deps $(MEDIAPIPE)

demo: $(VENV)/.installed
	$(BIN)/stagepose live --show show_configs/demo.yaml

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check stagepose tests
	$(BIN)/mypy stagepose

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
