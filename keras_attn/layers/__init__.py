"""keras_attn.layers: attention layers for CNNs, written with keras.ops only."""

from keras_attn.layers.bilinear_upsampling_2d import BilinearUpsampling2D
from keras_attn.layers.cbam import CBAM
from keras_attn.layers.correlation_match_2d import CorrelationMatch2D
from keras_attn.layers.cross_attention_2d import CrossAttention2D
from keras_attn.layers.homography_flow import HomographyFlow
from keras_attn.layers.homography_outputs import HomographyOutputs
from keras_attn.layers.homography_update import HomographyUpdate
from keras_attn.layers.non_local_2d import NonLocal2D
from keras_attn.layers.pixel_shuffle import PixelShuffle
from keras_attn.layers.qkv_projection import QKVProjection
from keras_attn.layers.registry import ATTENTION_LAYERS, get_attention
from keras_attn.layers.self_attention_2d import SelfAttention2D
from keras_attn.layers.spatial_attention import SpatialAttention
from keras_attn.layers.squeeze_excite import SqueezeExcite
from keras_attn.layers.warp import Warp

__all__ = [
    "ATTENTION_LAYERS",
    "BilinearUpsampling2D",
    "CBAM",
    "CorrelationMatch2D",
    "CrossAttention2D",
    "HomographyFlow",
    "HomographyOutputs",
    "HomographyUpdate",
    "NonLocal2D",
    "PixelShuffle",
    "QKVProjection",
    "SelfAttention2D",
    "SpatialAttention",
    "SqueezeExcite",
    "Warp",
    "get_attention",
]
