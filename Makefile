# `make demo`: set up .venv (first use) and run the main job on built-in defaults.
# `make test`: set up .venv (first use) and run ruff and the whole test suite.
# `make docs`: set up .venv (first use) and build the docs site into docs/_build/html
# (warnings are errors, every cross-reference must resolve).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# CPU torch first: the wheel is found locally; a bare `torch` would pull CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev,onnx,nir,nir-test,chip,docs]'
	# NeuroBench for tests/test_neurobench.py, without its audio/dataset dependencies
	# (snntorch, which it imports, comes with nir-test)
	$(BIN)/pip install --no-deps neurobench==2.3.0 tqdm
	# lava-nc/lava-dl declare Python <3.11 and pin an old CUDA torch: no deps here,
	# their real run-time needs come from pyproject.toml. See neuro/compat.py.
	$(BIN)/pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hybrid doctor
	$(BIN)/hybrid demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/sphinx-build -E -n -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build docs/api/generated
