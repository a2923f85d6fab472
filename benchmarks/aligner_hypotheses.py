"""Global hypotheses of the aligner: corner errors of one trained aligner rebuilt with K = 1, 2, ...

The same weights (`--source`, default the shipped `aligner_homography`) in the same architecture
with `hypotheses=K` (`keras_attn.layers.hypotheses`: the robust global shift plus the K - 1
strongest other peaks of the shift votes, each refined by the local iterations, the one whose
warp correlates best with the fixed image kept): nothing is trained, so every difference comes
from the search. Held-out DeTone pairs (`keras_attn.training.evaluation.held_out_alignment_pairs`,
seed 1234, corners shifted up to 32 px) on

- the bundled photos held out from training (5 photos, `--pairs-per-image` each), without and
  with an independent lighting change of each patch (`photometric=1.0`), as in
  `benchmarks/aligner.py`;
- the photo collection's validation tiles (`keras-attn data fetch-photos`; photos none of the
  aligners trained on), `--collection-pairs-per-image` per tile; skipped when not fetched.

Reported: median corner error, % of pairs over 10 px, AUC@5, mean, and seconds per pair of Keras
`predict` at batch 20 (indicative: the CPU may be shared); and "best of K > 10 px", the % of
pairs where none of the K refined hypotheses is within 10 px (what a perfect choice among them
would still fail): the failures above it are the choice's, the rest the hypotheses'.

Run:
    python benchmarks/aligner_hypotheses.py --hypotheses 1 2 4 6 8
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn.layers.homography_outputs import HomographyOutputs  # noqa: E402
from keras_attn.models.aligner import aligner  # noqa: E402
from keras_attn.training.evaluation import (  # noqa: E402
    corner_error,
    corner_error_summary,
    held_out_alignment_pairs,
)
from keras_attn.utils.model_io import load_keras_model  # noqa: E402

DEFAULT_SOURCE = "saved_models/aligner_homography/model.keras"


def with_hypotheses(source, hypotheses: int):
    """The aligner `source` rebuilt with `hypotheses` global hypotheses, same weights."""
    config = source.get_config()
    layers = {layer["name"]: layer["config"] for layer in config["layers"]}
    name = source.name
    shape = tuple(source.inputs[0].shape[1:])
    levels = [
        (layers[f"{name}_iter{i}_update"]["stride"], layers[f"{name}_iter{i}_match"]["radius"])
        for i in range(1, len(config["layers"]))
        if f"{name}_iter{i}_update" in layers
    ]
    encoder = source.get_layer(f"{name}_encoder")
    widths = [encoder.get_layer(f"{name}_encoder_stem_conv").filters] + [
        encoder.get_layer(f"{name}_encoder_stage{i}_features").filters for i in (1, 2, 3)
    ]
    dense = any(layer.name.endswith("_flow_match") for layer in source.layers)
    head = "flow" if dense else "homography"
    model = aligner(
        shape, head, widths=tuple(widths), levels=tuple(levels), hypotheses=hypotheses, name=name
    )
    model.set_weights(source.get_weights())
    return model


def condition_pairs(
    shape, pairs_per_image: int, collection_pairs_per_image: int, data_dir=None
) -> dict:
    size, channels = shape[0], shape[-1]
    bundled = {"pairs_per_image": pairs_per_image, "data_dir": data_dir}
    sets = {
        "bundled rho 32": held_out_alignment_pairs(size, channels, **bundled),
        "bundled rho 32 + light": held_out_alignment_pairs(
            size, channels, photometric=1.0, **bundled
        ),
    }
    try:
        sets["collection rho 32"] = held_out_alignment_pairs(
            size,
            channels,
            "photo_collection",
            pairs_per_image=collection_pairs_per_image,
            data_dir=data_dir,
        )
    except Exception as error:  # the collection is fetched separately
        print(f"photo collection skipped: {str(error).splitlines()[0]}")
    return sets


def with_every_hypothesis(model):
    """`model` with one more output, `every`: the `(B * K, 3, 3)` refined hypotheses that
    `SelectHypothesis` chooses from (the estimate itself when there is one hypothesis)."""
    select = [layer for layer in model.layers if layer.name == f"{model.name}_select"]
    every = select[0].input[2] if select else model.get_layer(f"{model.name}_homography_flow").input
    return keras.Model(model.inputs, {**model.output, "every": every})


def score(model, pairs) -> dict:
    moving = np.stack([pair.moving for pair in pairs])
    fixed = np.stack([pair.fixed for pair in pairs])
    start = time.perf_counter()
    out = model.predict({"moving": moving, "fixed": fixed}, batch_size=20, verbose=0)
    seconds = (time.perf_counter() - start) / len(pairs)
    size = moving.shape[1]
    errors = [
        corner_error(h, p.corners, size) for h, p in zip(out["homography"], pairs, strict=True)
    ]
    # the published moving->fixed pixel homography of every hypothesis, and the best of them
    every, _ = HomographyOutputs((size, size))(out["every"])
    every = np.asarray(every).reshape(len(pairs), -1, 3, 3)
    best = [
        min(corner_error(h, p.corners, size) for h in hs)
        for hs, p in zip(every, pairs, strict=True)
    ]
    return {
        **corner_error_summary(errors),
        "best_of_k_over_10px_percent": float(np.mean(np.array(best) > 10) * 100),
        "pairs": len(pairs),
        "s_per_pair": seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="a trained aligner .keras")
    parser.add_argument("--hypotheses", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    parser.add_argument("--pairs-per-image", type=int, default=40)
    parser.add_argument("--collection-pairs-per-image", type=int, default=2)
    parser.add_argument("--data-dir", help="tfds data directory (default: tfds's own)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.hypotheses) < 1:
        parser.error(f"--hypotheses must be positive. Received: {args.hypotheses}")
    try:
        source = load_keras_model(args.source, argument="--source")
    except ValueError as error:
        parser.exit(2, f"aligner_hypotheses.py: error: {error}\n")
    sets = condition_pairs(
        tuple(source.inputs[0].shape[1:]),
        args.pairs_per_image,
        args.collection_pairs_per_image,
        args.data_dir,
    )
    results = {}
    columns = "median px | > 10 px | best of K > 10 px | AUC@5 | mean px | s/pair"
    print(f"| K | condition | pairs | {columns} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in args.hypotheses:
        model = with_every_hypothesis(with_hypotheses(source, k))
        for label, pairs in sets.items():
            r = results.setdefault(str(k), {})[label] = score(model, pairs)
            print(
                f"| {k} | {label} | {r['pairs']} | {r['median_corner_error_px']:.3f} | "
                f"{r['over_10px_percent']:.1f} % | {r['best_of_k_over_10px_percent']:.1f} % | "
                f"{r['auc_5px']:.3f} | {r['mean_corner_error_px']:.2f} | {r['s_per_pair']:.3f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
