"""keras_attn.export: SavedModel and TFLite (fp32, fp16, dynamic, int8), checked after reload."""

from keras_attn.export.saved_model import export_saved_model
from keras_attn.export.tflite import (
    TFLiteModel,
    TFLiteReport,
    available_cores,
    check_value_range,
    export_tflite,
    run_tflite,
    sample_inputs,
)

__all__ = [
    "TFLiteModel",
    "TFLiteReport",
    "available_cores",
    "check_value_range",
    "export_saved_model",
    "export_tflite",
    "run_tflite",
    "sample_inputs",
]
