"""Test-wide setup: quiet TensorFlow, deterministic seeds, float32 policy restored per test."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


_SLOW_TESTS = pathlib.Path(__file__).with_name("slow_tests.txt")


def pytest_collection_modifyitems(config, items):
    """Marks the tests listed in `slow_tests.txt` as `slow` (measured, see
    `tests/update_slow_tests.py`), so `pytest -m "not slow"` (`make test-fast`) leaves them out.
    `make test` and CI run every test."""
    listed = {
        line.strip()
        for line in _SLOW_TESTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for item in items:
        if item.nodeid in listed:
            item.add_marker(pytest.mark.slow)
