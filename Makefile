# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
# PYTHON can be overridden (`make test PYTHON=python3.12`); the package needs Python >= 3.10.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=
# `make test` runs the tests in this many processes (pytest-xdist), a test file per process at a
# time (`--dist loadfile`: a module's expensive fixtures are built once); 0 runs them in this one.
TEST_WORKERS ?= 2

.PHONY: demo test test-fast lint benchmark clean

# Re-install only when the packaging changes; the package itself is installed editable.
$(BIN)/.installed: setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	# hub.load / hub.KerasLayer for the export tests, WITHOUT their dependency chain:
	# tensorflow-hub -> tf-keras -> the full `tensorflow` wheel, which would be installed over
	# tensorflow-cpu (same files). Both packages are pure Python on top of tensorflow-cpu.
	$(BIN)/python -m pip install --quiet --no-deps "tensorflow-hub==0.16.1" "tf-keras==2.21.0"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/keras-attn demo --output $(DEMO_DIR)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The tests that take under 2 s each (tests/slow_tests.txt lists the others): a few minutes.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check keras_attn keras_attn_cli.py tests examples benchmarks scripts
	$(BIN)/ruff format --check keras_attn keras_attn_cli.py tests examples benchmarks scripts

benchmark: $(BIN)/.installed
	$(BIN)/python benchmarks/attention.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info .pytest_cache
