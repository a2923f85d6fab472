"""benchmarks/stereo_flow.py: the ground-truth sign, each method's flow convention, a tiny run."""

import json
import pathlib

import numpy as np
import pytest

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIFT = 3  # the right view sees the scene 3 px further right: left(y, x) = right(y, x - 3)


@pytest.fixture(scope="module")
def benchmark():
    return load_script(ROOT / "benchmarks" / "stereo_flow.py", "benchmark_stereo_flow")


@pytest.fixture(scope="module")
def shifted_pair():
    """A real photo crop and the same crop 3 px to the right: true left->right flow (-3, 0)."""
    from skimage import data

    camera = data.camera().astype("float32") / 255
    y, x = 200, 200
    left = camera[y : y + 128, x : x + 128]
    right = camera[y : y + 128, x + SHIFT : x + SHIFT + 128]
    return left, right


def test_ground_truth_flow_warps_right_onto_left(benchmark):
    left, right, disparity = benchmark.load_pair()
    truth, valid = benchmark.ground_truth_flow(disparity)
    assert 0.85 < valid.mean() < 0.99 and np.isinf(disparity[~valid]).all()  # not NaN
    assert (truth[valid][:, 0] < 0).all() and (truth[..., 1] == 0).all()
    cols = np.arange(left.shape[1])[None, :]
    # compare only where both the true and the sign-flipped match land inside the image
    inside = valid & (cols - np.abs(truth[..., 0]) >= 0) & (cols + np.abs(truth[..., 0]) <= 740)
    errors = {
        name: np.abs(benchmark.warp_backward(right, flow) - left)[inside].mean()
        for name, flow in {"truth": truth, "zero": 0 * truth, "flipped": -truth}.items()
    }
    assert errors["truth"] < 0.3 * errors["zero"]
    assert errors["truth"] < 0.3 * errors["flipped"]


def test_warp_backward_convention(benchmark, shifted_pair):
    left, right = shifted_pair
    flow = np.zeros((*left.shape, 2), "float32")
    flow[..., 0] = -SHIFT
    np.testing.assert_allclose(benchmark.warp_backward(right, flow)[:, SHIFT:], left[:, SHIFT:])


def check_shift(flow, tolerance):
    centre = np.asarray(flow)[8:-8, 8:-8]
    assert flow.shape == (128, 128, 2)
    assert abs(np.median(centre[..., 0]) + SHIFT) < tolerance
    assert abs(np.median(centre[..., 1])) < tolerance


def test_identity_and_tvl1_conventions(benchmark, shifted_pair):
    assert not benchmark.identity(*shifted_pair).any()
    check_shift(benchmark.tvl1(*shifted_pair), 0.1)


@pytest.mark.parametrize("name", ["dis", "farneback", "sift_ransac"])
def test_opencv_conventions(benchmark, shifted_pair, name):
    pytest.importorskip("cv2")
    estimate = benchmark.build_methods([name])[name]
    check_shift(estimate(*shifted_pair), 0.2)
    assert not getattr(estimate, "failures", [])


def test_homography_flow(benchmark):
    homography = np.array([[1, 0, -3.0], [0, 1, 2.0], [0, 0, 1]])
    flow = benchmark.homography_flow(homography, (4, 5))
    np.testing.assert_allclose(flow[..., 0], -3.0)
    np.testing.assert_allclose(flow[..., 1], 2.0)


def test_shipped_aligner_convention(benchmark, shifted_pair):
    estimate = benchmark.build_methods(["aligner_homography"])["aligner_homography"]
    check_shift(estimate(*shifted_pair), 0.3)


def test_model_label(benchmark):
    assert benchmark.model_label("saved_models/aligner_flow/model.keras") == "aligner_flow"
    assert benchmark.model_label("runs/flow_try.keras") == "flow_try"


def test_missing_cv2_is_skipped_with_a_note(benchmark, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    methods = benchmark.build_methods(["identity", "dis", "sift_ransac"])
    assert list(methods) == ["identity"]
    assert "skipping dis, sift_ransac" in capsys.readouterr().out


def test_main_writes_json_and_tvl1_beats_identity(benchmark, tmp_path, capsys):
    out = tmp_path / "stereo.json"
    assert (
        benchmark.main(["--crops", "2", "--methods", "identity", "tvl1", "--json", str(out)]) == 0
    )
    table = capsys.readouterr().out
    assert "| method | mean EPE (px) | median EPE (px) | bad>3px (%) | ms/pair |" in table
    payload = json.loads(out.read_text())
    assert payload["protocol"]["crops"] == 2 and len(payload["protocol"]["corners_yx"]) == 2
    results = payload["results"]
    assert list(results) == ["identity", "tvl1"]
    for row in results.values():
        assert set(row) >= {"mean_epe_px", "median_epe_px", "bad_3px_percent", "ms_per_pair"}
        assert row["pixels"] >= 2 * 0.9 * 128 * 128 and 0 <= row["bad_3px_percent"] <= 100
    assert results["identity"]["bad_3px_percent"] == 100.0  # every disparity here is > 7 px
    assert results["tvl1"]["mean_epe_px"] < results["identity"]["mean_epe_px"]


def test_downscaled_pair_keeps_the_ground_truth(benchmark):
    """--downscale 2: half the size, half the disparity, and the truth still warps right onto
    left far better than zero flow."""
    full = benchmark.load_pair()
    left, right, disparity = benchmark.load_pair(2)
    assert left.shape == right.shape == disparity.shape == (250, 370)
    truth, valid = benchmark.ground_truth_flow(disparity)
    assert np.median(disparity[valid]) == pytest.approx(
        np.median(full[2][np.isfinite(full[2])]) / 2, rel=0.05
    )
    cols = np.arange(left.shape[1])[None, :]
    inside = valid & (cols + truth[..., 0] >= 0)
    error = np.abs(benchmark.warp_backward(right, truth) - left)[inside].mean()
    assert error < 0.3 * np.abs(right - left)[inside].mean()


def test_figure_draws_the_views_disparities_and_overlay(benchmark, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "stereo.png"
    argv = ["--crops", "2", "--methods", "identity", "dis", "--figure", str(out)]
    assert benchmark.main(argv) == 0
    assert f"wrote {out} (crop " in capsys.readouterr().out
    image = np.asarray(Image.open(out))
    assert image.shape[1] > 4 * image.shape[0] and image.std() > 10  # a row of panels
