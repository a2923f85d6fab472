import keras
import pytest

from keras_attn import layers
from keras_attn.layers.registry import attention_name


@pytest.mark.parametrize(
    "name, cls",
    [
        ("se", layers.SqueezeExcite),
        ("cbam", layers.CBAM),
        ("spatial", layers.SpatialAttention),
        ("nonlocal", layers.NonLocal2D),
        ("self", layers.SelfAttention2D),
        ("SE", layers.SqueezeExcite),
    ],
)
def test_names(name, cls):
    assert layers.get_attention(name) is cls


def test_none_and_class_pass_through():
    assert layers.get_attention(None) is None
    assert layers.get_attention(layers.CBAM) is layers.CBAM


@pytest.mark.parametrize("bad", ["squeeze", "", 3, keras.layers.Dense(2)])
def test_unknown_names_list_the_valid_ones(bad):
    with pytest.raises(ValueError, match=r"Valid names: \['cbam', 'nonlocal', 'se', 'self', "):
        layers.get_attention(bad)


def test_every_public_layer_is_serialisable_under_the_package_name():
    for name in layers.__all__:
        obj = getattr(layers, name)
        if isinstance(obj, type):
            assert keras.saving.get_registered_name(obj) == f"keras_attn>{name}"


def test_importing_the_layers_needs_neither_tfds_nor_the_data_package(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys, keras, keras_attn.layers\n"
        "print(sorted(m for m in ('tensorflow_datasets', 'keras_attn.data', 'keras_attn.viz',"
        " 'keras_attn.export') if m in sys.modules))\n"
        "import keras_attn\n"
        "model = keras.saving.load_model(sys.argv[1])  # registered by `import keras_attn`\n"
        "print(model.name, 'keras_attn.data' in sys.modules)\n"
    )
    import keras_attn

    path = tmp_path / "m.keras"
    keras_attn.models.build_model("sr_tiny_x2").save(path)
    result = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.splitlines() == ["[]", "sr_tiny_x2 False"]


def test_attention_name_is_the_registry_name_or_the_class_name():
    for name, cls in layers.ATTENTION_LAYERS.items():
        assert attention_name(cls) == name
    assert attention_name(keras.layers.Dense) == "dense"
