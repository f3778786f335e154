# The two commands a new machine needs: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev install-teacher install-onnx-only lint clean

# MediaPipe for `stagepose data label`, without its declared dependencies (see pyproject.toml, extra teacher).
MEDIAPIPE := mediapipe==0.10.21

# TORCH=cpu (`make demo TORCH=cpu`): PyTorch's CPU build, without the CUDA libraries that the default Linux
# wheel pulls in, for machines without an NVIDIA GPU. The version is pyproject.toml's pin.
TORCH ?=
TORCH_PIN := $(shell sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)
TORCH_FIRST = $(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install -q '$(TORCH_PIN)' \
	--index-url https://download.pytorch.org/whl/cpu)
# What a show needs without PyTorch (ONNX models only): pyproject's dependencies less PyTorch and the export tools.
EXPORT_ONLY := torch onnx onnxscript onnxconverter-common
SHOW_DEPS = $(BIN)/python -c 'import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print(" ".join(d for d in deps["dependencies"] if re.match(r"[\w.-]+", d).group() not in "$(EXPORT_ONLY)".split()))'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(TORCH_FIRST)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(TORCH_FIRST)
	$(BIN)/python -m pip install -q -e '.[dev,ndi,teacher]'
	$(BIN)/python -m pip install -q --no-deps $(MEDIAPIPE)
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
# live, check, probe, replay and osc-monitor with an ONNX model (no train, eval, export or torch backend)
install-onnx-only: | $(BIN)/python
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip install -q $$($(SHOW_DEPS))
install-teacher: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[teacher]'
	$(BIN)/python -m pip install -q --no-deps $(MEDIAPIPE)

# The clip (60 fps, 1.7 s) loops; DURATION seconds of it (`make demo DURATION=60`). Measured on a 2-core CPU with
# nothing else running: 35-44 fps processed, latency p50/p95 34-41 / 51-70 ms (README, "Live").
# MONITOR=1 also serves the monitor page at http://127.0.0.1:8090/ (docs/monitor.md).
DURATION ?= 20
MONITOR ?=
demo: $(VENV)/.installed
	$(BIN)/stagepose live --show show_configs/demo.yaml --duration $(DURATION) $(if $(MONITOR),--monitor)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check stagepose tests
	$(BIN)/mypy stagepose

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
