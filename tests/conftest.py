"""Test-wide setup: quiet TensorFlow, deterministic seeds, float32 policy restored per test;
the fixtures that tests in several modules share (data folders, held-out pairs). Plain helper
functions live in `tests/helpers.py`."""

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


# --------------------------------------------------------------------------- shared data


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory):
    """A tfds data directory with `bundled_photos` prepared (the photos shipped in installed
    packages; nothing is downloaded)."""
    from keras_attn import data

    directory = tmp_path_factory.mktemp("tfds")
    data.BundledPhotos(data_dir=str(directory)).download_and_prepare()
    return str(directory)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A tfds data directory with `bundled_digits` prepared (scikit-learn's 8x8 scans)."""
    from keras_attn.data import digits

    directory = tmp_path_factory.mktemp("tfds_digits")
    digits.BundledDigits(data_dir=str(directory)).download_and_prepare()
    return str(directory)


@pytest.fixture(scope="module")
def aligner_pairs(photos_dir):
    """2 held-out DeTone pairs per validation photo (10), 64x64 grayscale: `aligner_tiny`'s
    input size."""
    from keras_attn.training import evaluation

    return evaluation.held_out_alignment_pairs(64, 1, pairs_per_image=2, data_dir=photos_dir)


# --------------------------------------------------------------------------- shared models


@pytest.fixture(scope="module")
def tiny_aligner(tmp_path_factory):
    """(model, path of its .keras file): an untrained `aligner_tiny` with fixed weights."""
    from keras_attn import models

    keras.utils.set_random_seed(0)
    model = models.build_model("aligner_tiny")
    path = tmp_path_factory.mktemp("aligner") / "aligner_tiny.keras"
    model.save(path)
    return model, path


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
        if item.nodeid in listed or item.nodeid.split("::")[0] in listed:
            item.add_marker(pytest.mark.slow)
