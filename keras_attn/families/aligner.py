"""The aligner family's entry of the registry (`keras_attn.families`)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

from keras_attn.families.base import (
    Family,
    Lazy,
    _takes_moving_and_fixed,
    _to_8bit,
    format_fixed,
    register,
)


def _detect_aligner(model) -> bool:
    if not _takes_moving_and_fixed(model):
        return False
    if isinstance(model.output, dict) and "homography" in model.output:
        return True
    raise ValueError(
        f"Model {model.name!r} takes moving and fixed images but has no 'homography' output "
        "(an aligner returns a dict with homography, flow and warped)."
    )


def _aligner_predict(loaded, format: str, input_name: str | None = None) -> Callable:
    """Two float32 batches `(moving, fixed)` in, a dict of float32 numpy outputs out."""
    import numpy as np

    def outputs(result) -> dict:
        return {name: np.asarray(result[name], "float32") for name in ALIGNER.output_names}

    if format == "keras":  # fixed-size inputs: a compiled graph, not slow eager calls
        return lambda moving, fixed: outputs(
            loaded.predict_on_batch({"moving": moving, "fixed": fixed})
        )
    if format == "saved_model":
        import tensorflow as tf

        signature = loaded.signatures["serving_default"]
        return lambda moving, fixed: outputs(
            signature(moving=tf.constant(moving, tf.float32), fixed=tf.constant(fixed, tf.float32))
        )
    return lambda moving, fixed: outputs(loaded(moving=moving, fixed=fixed))


def _evaluate_aligner(
    predictor, dataset: str, split: str, *, data_dir=None, progress=None, pairs_per_image=20, **_
) -> dict:
    """Corner errors of the aligner and of the identity on held-out DeTone pairs."""
    from keras_attn.training import evaluation

    runner = progress(predictor, None, "batch") if progress else predictor
    height, width, channels = predictor.input_shape
    if height != width:
        raise ValueError(f"The held-out pairs are square; the aligner takes {height}x{width}")
    if pairs_per_image < 1:
        raise ValueError(f"--pairs-per-image must be at least 1. Received: {pairs_per_image}")
    pairs = evaluation.held_out_alignment_pairs(
        height, channels, dataset, split, pairs_per_image=pairs_per_image, data_dir=data_dir
    )
    scores = evaluation.evaluate_aligner(runner, pairs, batch_size=8)
    identity = evaluation.evaluate_aligner(None, pairs)
    return {
        "max_shift_px": evaluation.ALIGNMENT_MAX_SHIFT,
        "seed": evaluation.ALIGNMENT_SEED,
        "pairs_per_image": pairs_per_image,
        **scores.as_dict(),
        "identity": identity.summary,
    }


# One protocol for aligners everywhere: median, share over 10 px and AUC@5 lead, the mean after.
ALIGNMENT_ROWS = {
    "median_corner_error_px": "median corner error (px)",
    "over_10px_percent": "pairs over 10 px (%)",
    "auc_5px": "AUC @ 5 px",
    "auc_3px": "AUC @ 3 px",
    "auc_10px": "AUC @ 10 px",
    "mean_corner_error_px": "mean corner error (px)",
}


def _print_aligner(result: dict) -> None:
    print(
        f"{result['model']}: {result['pairs']} DeTone pairs from {result['dataset']} "
        f"{result['split']} (corners shifted up to {result['max_shift_px']:g} px, seed "
        f"{result['seed']})"
    )
    print(f"  {'':<26} {'model':>9} {'identity':>9}")
    for key, label in ALIGNMENT_ROWS.items():
        print(f"  {label:<26} {result[key]:>9.3f} {result['identity'][key]:>9.3f}")
    if result["non_finite"]:
        print(f"  {result['non_finite']} non-finite homographies counted as the identity")


def _check_aligner_inputs(paths: list) -> None:
    if len(paths) != 2:
        raise ValueError(
            f"an aligner takes exactly two images, MOVING then FIXED. Received "
            f"{len(paths)}: {' '.join(paths)}"
        )


def _predict_aligner(predictor, inputs, images: dict, output, *, refine=False, **_) -> None:
    """Aligns MOVING onto FIXED: `<moving-stem>_warped.png` and `<moving-stem>_homography.json`,
    and for a dense-flow aligner also `<moving-stem>_flow.npy` (float32 `(H, W, 2)` on the fixed
    grid; a homography aligner's flow is the homography's, see the JSON's convention)."""
    import numpy as np

    from keras_attn._io import atomic_path
    from keras_attn.models.aligner import FLOW_CONVENTION, HOMOGRAPHY_CONVENTION, align
    from keras_attn.models.aligner_tasks import has_dense_flow
    from keras_attn.utils.images import write_png

    _check_aligner_inputs(inputs)
    moving_path, fixed_path = inputs
    result = align(predictor, images[moving_path], images[fixed_path], refine=refine)
    stem = pathlib.Path(moving_path).stem
    write_png(output / f"{stem}_warped.png", _to_8bit(result["warped"]))
    record = {
        "moving": moving_path,
        "fixed": fixed_path,
        "model": predictor.source,
        "moving_size": list(images[moving_path].shape[:2]),
        "fixed_size": list(images[fixed_path].shape[:2]),
        "working_size": list(predictor.input_shape[:2]),
        "homography": result["homography"].astype("float64").tolist(),
        "convention": HOMOGRAPHY_CONVENTION,
    }
    written = [output / f"{stem}_warped.png"]
    if has_dense_flow(predictor):
        flow_path = output / f"{stem}_flow.npy"
        with atomic_path(flow_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, result["flow"].astype("float32"))
        record.update(flow=flow_path.name, flow_convention=FLOW_CONVENTION)
        written.append(flow_path)
    target = output / f"{stem}_homography.json"
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    written.append(target)
    height, width = images[moving_path].shape[:2]
    corners = np.array(
        [[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]]
    )
    mapped = corners @ result["homography"].astype("float64").T
    shift = np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - corners[:, :2], axis=1).mean()
    matrix = np.array2string(result["homography"], precision=3, suppress_small=True, separator=",")
    print(
        f"{moving_path} -> {fixed_path}: homography {' '.join(matrix.split())} (corners move "
        f"{shift:.1f} px on average); wrote {', '.join(str(path) for path in written)}"
    )


def _aligner_metric(metrics: dict) -> str:
    text = (
        f"median corner error {format_fixed(metrics.get('median_corner_error_px'), 2, ' px')}, "
        f"{format_fixed(metrics.get('over_10px_percent'), 1, ' %')} over 10 px, "
        f"AUC@5 {format_fixed(metrics.get('auc_5px'), 3)}; "
        f"mean {format_fixed(metrics.get('mean_corner_error_px'), 2, ' px')}"
    )
    if "flow" in metrics:  # a dense-flow aligner: its flow on the same pairs with depth
        flow = metrics["flow"]
        text += (
            f"; flow on pairs with depth: mean EPE "
            f"{format_fixed(flow.get('mean_epe_px'), 2, ' px')}"
        )
    return text


def _aligner_calibration(input_shape, **_) -> list:
    raise ValueError(
        "Aligners are not quantised to int8: the warp samples at coordinates computed in "
        "the graph, and quantised coordinates break it. Use float32 or float16."
    )


ALIGNER = register(
    Family(
        name="aligner",
        title="homography/flow aligner",
        detect=_detect_aligner,
        output_names=("homography", "flow", "warped"),
        default_dataset=("bundled_photos", "validation"),
        make_predict=_aligner_predict,
        evaluate=_evaluate_aligner,
        print_evaluation=_print_aligner,
        writes_next_to_input=True,
        check_predict_inputs=_check_aligner_inputs,
        predict_files=_predict_aligner,
        held_out_metric=_aligner_metric,
        calibration_data=_aligner_calibration,
        demo_figure=Lazy("keras_attn.demo:_alignment"),
        task_helper=Lazy("keras_attn.models:align"),
    )
)
