"""The dense-flow figure."""

import matplotlib.image
import numpy as np
import pytest

from keras_attn import viz


def test_plot_flow_panels_errors_and_overlay(tmp_path, rng):
    fixed = rng.uniform(size=(24, 32)).astype("float32")
    moving = np.roll(fixed, 3, axis=1)
    truth = np.zeros((24, 32, 2), "float32")
    truth[..., 0] = 3.0
    valid = np.ones((24, 32), bool)
    valid[:, :4] = False
    off = truth + np.array([1.0, 0.0], "float32")  # 1 px off everywhere
    path = tmp_path / "figures" / "flow.png"
    figure = viz.plot_flow(
        fixed, moving, {"exact": truth, "off": off}, path, truth=truth, valid=valid, warped=fixed
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:3] == ["fixed", "moving", "true disparity -u (px)"]
    assert titles[3] == "exact: -u\nmean EPE 0.00 px" and titles[4] == "off: -u\nmean EPE 1.00 px"
    assert "moving warped by off" in titles[5]
    shown = np.ma.filled(figure.axes[2].images[0].get_array(), np.nan)
    assert np.isnan(shown[:, :4]).all() and np.allclose(shown[:, 4:], -3.0)  # unknown: blank
    overlay = figure.axes[5].images[0].get_array()
    assert np.allclose(overlay[..., 0], overlay[..., 1])  # warped == fixed: grey everywhere
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(path).ndim == 3


def test_plot_flow_without_truth_and_bad_inputs(rng):
    fixed = rng.uniform(size=(16, 16)).astype("float32")
    flow = np.zeros((16, 16, 2), "float32")
    figure = viz.plot_flow(fixed, fixed, {"zero": flow})
    assert [ax.get_title() for ax in figure.axes][:3] == ["fixed", "moving", "zero: -u (px)"]
    with pytest.raises(ValueError, match="same shape"):
        viz.plot_flow(fixed, fixed[:8], {"zero": flow})
    with pytest.raises(ValueError, match=r"flow 'zero' must be \(16, 16, 2\)"):
        viz.plot_flow(fixed, fixed, {"zero": flow[:8]})
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_flow(fixed, fixed, {})
