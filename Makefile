# One-command entry points (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-slow lint format bench clean compat-regrtest

# (Re)install into the venv whenever the package or its C sources change.
$(VENV)/.installed: pyproject.toml setup.py giltrace-autostart.pth $(wildcard csrc/*.c csrc/*.h) giltrace/_build_native.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/giltrace demo

test: setup
	$(BIN)/python -m pytest -q

# The minutes-long checks `make test` leaves out (tests marked slow: every pyenv CPython, 2.7 grids, soaks).
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# CPython's own threading tests, untraced vs GILTRACE, on every pyenv 3.9/3.11/3.12/3.13 (a few minutes).
compat-regrtest: setup
	$(BIN)/python tests/compat/regrtest.py

# Lint (ruff: errors, not style) and formatting checks (ruff format, clang-format for csrc/).
lint: setup
	$(BIN)/ruff check giltrace tests benchmarks examples
	$(BIN)/ruff format --check giltrace tests benchmarks examples
	$(BIN)/clang-format --dry-run -Werror csrc/*.c csrc/*.h

format: setup
	$(BIN)/ruff format giltrace tests benchmarks examples
	$(BIN)/clang-format -i csrc/*.c csrc/*.h

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info giltrace/_native*.so giltrace/_native.c giltrace/_native.o
