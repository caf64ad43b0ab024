# One-command entry points (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test bench clean

# (Re)install into the venv whenever the package or its C sources change.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h) giltrace/_build_native.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/giltrace demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info giltrace/_native*.so giltrace/_native.c giltrace/_native.o
