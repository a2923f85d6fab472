"""The figures: attention panels, super-resolution comparisons, alignment checkerboards."""

import matplotlib.image
import numpy as np
import pytest

from keras_attn import viz
from tests.helpers import small_classifier


def read_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_plot_attention_writes_a_png(tmp_path, images):
    model = small_classifier(["cbam", "self"])
    pixels = [(2, 3), (12, 12)]
    maps = viz.attention_maps(model, images[:1], query_pixels=pixels)
    maps["grad_cam"] = np.linspace(0, 1, 256, dtype="float32").reshape(1, 16, 16)
    path = tmp_path / "figures" / "attention.png"
    figure = viz.plot_attention(images[0], maps, path, title="CBAM", query_pixels=pixels)
    # image + 2 channel bars + 1 spatial map + 2 query maps + Grad-CAM = 6 panels, 4 columns.
    assert len(figure.axes) == 8
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0] == "image"
    assert sum("[query" in title for title in titles) == 2
    bars = figure.axes[1]
    assert len(bars.patches) == 8  # one bar per channel of stage 1
    png = read_png(path)
    assert png.shape == (600, 1200, 4)
    assert png[..., :3].std() > 0.05
    assert sorted(p.name for p in path.parent.iterdir()) == ["attention.png"]


def test_plot_attention_limits_panels_and_checks_input(tmp_path, images):
    maps = {f"map{i}": np.full((2, 4, 4, 1), i / 10, "float32") for i in range(5)}
    figure = viz.plot_attention(images, maps, max_maps=2, index=1)
    assert "first 2 of 5 maps" in figure.get_suptitle()
    assert len(figure.axes) == 3
    with pytest.raises(ValueError, match="batched"):
        viz.plot_attention(images[0], {"gates": np.ones(8, "float32")})
    with pytest.raises(ValueError, match="index"):
        viz.plot_attention(images[0], maps, index=2)
    with pytest.raises(ValueError, match="image must be one image"):
        viz.plot_attention(images[0, 0, 0], maps)
    with pytest.raises(ValueError, match="max_maps"):
        viz.plot_attention(images[0], maps, max_maps=0)


def test_plot_super_resolution(tmp_path, rng):
    low_res = rng.uniform(size=(8, 10, 3)).astype("float32")
    reference = rng.uniform(size=(16, 20, 3)).astype("float32")
    path = tmp_path / "sr.png"
    figure = viz.plot_super_resolution(
        low_res, reference, reference, path, crop=(2, 4, 6, 8), labels=("bicubic", "x2", "HR")
    )
    assert len(figure.axes) == 6
    titles = [ax.get_title() for ax in figure.axes[:3]]
    assert titles[1] == "x2\ninf dB PSNR" and titles[2] == "HR"
    assert titles[0].startswith("bicubic\n") and titles[0].endswith(" dB PSNR")
    assert figure.axes[3].images[0].get_array().shape == (6, 8, 3)
    assert figure.axes[3].get_title() == "yellow box, enlarged"

    # the cards' protocol: PSNR-Y with the scale as border, the same number as the metric
    from keras_attn.training.metrics import psnr_y

    upscaled = np.clip(reference + 0.05 * rng.normal(size=reference.shape), 0, 1).astype("float32")
    scored = viz.plot_super_resolution(low_res, upscaled, reference, border=2)
    expected = float(psnr_y(reference[None], upscaled[None], border=2)[0])
    assert scored.axes[1].get_title() == f"ours\n{expected:.2f} dB PSNR-Y (2-px border)"
    assert read_png(path).shape == (800, 1200, 4)

    gray = viz.plot_super_resolution(low_res[..., 0], reference[..., 0])
    assert len(gray.axes) == 2
    with pytest.raises(ValueError, match="integer scale"):
        viz.plot_super_resolution(low_res, reference[:15])
    with pytest.raises(ValueError, match="crop"):
        viz.plot_super_resolution(low_res, reference, crop=(10, 10, 8, 8))
    with pytest.raises(ValueError, match="labels"):
        viz.plot_super_resolution(low_res, reference, labels=("a", "b"))


def test_checkerboard():
    a, b = np.zeros((4, 6), "float32"), np.ones((4, 6), "float32")
    expected = np.array(
        [
            [0, 0, 0, 1, 1, 1],
            [0, 0, 0, 1, 1, 1],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
        ],
        "float32",
    )
    np.testing.assert_array_equal(viz.checkerboard(a, b, tiles=2), expected)
    color = viz.checkerboard(np.zeros((4, 6, 3), "uint8"), np.full((4, 6, 3), 255, "uint8"), 2)
    assert color.dtype == np.uint8
    np.testing.assert_array_equal(color[..., 1], expected * 255)
    mixed = viz.checkerboard(np.full((4, 6), 255, "uint8"), np.zeros((4, 6), "float32"), 1)
    assert mixed.dtype == np.float32 and (mixed == 1.0).all()
    with pytest.raises(ValueError, match="same shape"):
        viz.checkerboard(a, b[:3], 2)
    with pytest.raises(ValueError, match="tiles"):
        viz.checkerboard(a, b, 5)


def test_plot_alignment(tmp_path, rng):
    fixed = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    moving = np.roll(fixed, 3, axis=1)
    path = tmp_path / "alignment.png"
    figure = viz.plot_alignment(moving, fixed, fixed, path, tiles=4)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:3] == ["moving", "fixed", "warped"]
    assert titles[4].endswith("MAE 0.0000") and not titles[3].endswith("MAE 0.0000")
    composite = figure.axes[3].images[0].get_array()
    np.testing.assert_allclose(composite, viz.checkerboard(fixed, moving, 4) / 255.0)
    assert read_png(path).shape == (600, 900, 4)
    with pytest.raises(ValueError, match="same shape"):
        viz.plot_alignment(moving, fixed, fixed[:16])
