"""keras_attn.viz: attention maps, Grad-CAM and figures (matplotlib, imported when plotting)."""

from keras_attn.viz.attention import attention_maps
from keras_attn.viz.flow import plot_flow
from keras_attn.viz.grad_cam import grad_cam
from keras_attn.viz.plots import (
    checkerboard,
    plot_alignment,
    plot_attention,
    plot_super_resolution,
)

__all__ = [
    "attention_maps",
    "checkerboard",
    "grad_cam",
    "plot_alignment",
    "plot_attention",
    "plot_flow",
    "plot_super_resolution",
]
