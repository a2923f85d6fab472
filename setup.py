"""Packaging for keras_attn.

TensorFlow is deliberately *not* a hard requirement: the right wheel depends on the machine
(`tensorflow-cpu` here and in CI, `tensorflow[and-cuda]` on a GPU box), and installing one over
the other leaves a broken mix. Pick it with an extra: `pip install -e ".[cpu]"` or `".[gpu]"`.

The shipped models travel inside the wheel: `saved_models/` of the repository is installed as the
package-data folder `keras_attn/saved_models/` (26 MB today, every format of every model), so
`pip install .` or a wheel lists and loads them offline, with their sha256 checked as in a checkout.
When the zoo outgrows a wheel (PyPI's default limit is 100 MB), the plan is a download into the
Keras cache checked against the card's sha256; until then, package data is the simplest path
that works offline.

`tensorflow-hub` sits in its own extra because it pulls `tf-keras`, which pulls the *full*
`tensorflow` wheel next to `tensorflow-cpu` (the same files installed twice; uninstalling either
breaks the other). Nothing in the library needs it; only the hub round-trip tests do.
"""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "keras_attn" / "version.py").read_text()
).group(1)

TF_VERSION = "2.21.*"

setup(
    name="keras-attn",
    version=VERSION,
    description="Attention layers and an attention model zoo for Keras 3 on TensorFlow.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=[*find_packages(include=["keras_attn", "keras_attn.*"]), "keras_attn.saved_models"],
    package_dir={"keras_attn.saved_models": "saved_models"},
    package_data={
        "keras_attn.saved_models": ["**/*"],
        # 256 Fashion-MNIST test images for the demo and the offline card check (MIT licence)
        "keras_attn.data": ["*.npz"],
    },
    include_package_data=False,
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.15.1,<3.16",
        "tensorflow-datasets>=4.9.10,<4.10",
        # tfds 4.9.10 imports it to prepare a GeneratorBasedBuilder but does not declare it.
        "importlib_resources>=6",
        "ai-edge-litert>=2.3.0,<2.4",
        "numpy>=1.26",
        "scikit-image>=0.24",
        "scikit-learn>=1.5",
        "matplotlib>=3.8",
        "pillow>=10",
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "hub": ["tensorflow-hub>=0.16.1"],
        # classical baselines of benchmarks/aligner.py (ECC, SIFT/ORB + RANSAC); headless: no GUI
        "bench": ["opencv-python-headless>=4.8"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",  # `make test` runs the suite on 2 workers
            "hypothesis>=6.100",
            "scipy>=1.11",
            "psutil>=5.9",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ruff>=0.6",
            # tests/test_portable_sr.py trains on the JAX backend (the layers and SR presets
            # on another Keras backend); jax 0.10 adds only jax + jaxlib to this environment
            # (its numpy, scipy and ml_dtypes needs are met by TensorFlow 2.21's)
            "jax>=0.10.2,<0.11",
        ],
    },
    py_modules=["keras_attn_cli"],  # the console script: answers --help without TensorFlow
    entry_points={"console_scripts": ["keras-attn=keras_attn_cli:main"]},
    license="Apache-2.0",
)
