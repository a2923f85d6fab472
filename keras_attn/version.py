"""The package version, defined in one place (read by setup.py and keras_attn.__version__)."""

__version__ = "0.1.0"
