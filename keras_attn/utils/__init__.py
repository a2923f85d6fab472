"""Helpers shared by the whole package, each written once.

- `keras_attn.utils.images`: image files in and out, and checks and conversions of numpy images;
- `keras_attn.utils.model_io`: `load_keras_model` (one-line errors) and `single_output`;
- `keras_attn.utils.errors`: `one_line(error)`, how every command-line error is printed.

Weight transfer between models of different shapes is `keras_attn.models.weights`.
"""
