"""
Title: Rebuild a trained aligner with the current builder's levels, without training
Description: loads a trained aligner `.keras`, builds the registry preset `--model` (its levels
are the builder's current `DEFAULT_LEVELS` unless the preset says otherwise), copies the weights
across with `keras_attn.models.weights.transfer_aligner_weights` (each refinement iteration from
the trained iteration at the same stride; an added iteration reuses the last one of its stride)
and writes `<output>/model.keras` and `<output>/metrics.json` atomically. The log keeps the
source's training log (steps, batch size, wall time) under `source_log`: a rebuilt model was
trained exactly as its source was, and `scripts/ship_model.py --training-log` reads it.

This is how the shipped `aligner_homography` went from 4 to 5 levels (a wide +-24 px stride-4
search after the global shift) with the weights of its 30-epoch run: nothing is learned here,
so every number of the rebuilt model must be measured again (`scripts/ship_model.py`,
`benchmarks/aligner.py`).

Run:
    python scripts/rebuild_aligner.py --source runs/aligner_homography/model.keras \
        --output runs/aligner_homography_5levels
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn import models  # noqa: E402
from keras_attn._io import atomic_path  # noqa: E402
from keras_attn.models.weights import transfer_aligner_weights  # noqa: E402
from keras_attn.training.aligner_recipe import load_aligner  # noqa: E402
from keras_attn.training.fit import save_model_atomic  # noqa: E402


def rebuild(source: str, model: str, output: str, command: str) -> dict:
    """Writes `output/model.keras` (preset `model` with the weights of `source`) and its log."""
    if models.registry.get_spec(model).family != "aligner":
        raise ValueError(
            f"--model must be an aligner ({models.list_models('aligner')}). Received: {model!r}"
        )
    trained = load_aligner(source, "--source")
    path = pathlib.Path(source)
    target = models.build_model(model)
    skipped = transfer_aligner_weights(trained, target)
    out = pathlib.Path(output)
    out.mkdir(parents=True, exist_ok=True)
    save_model_atomic(target, out / "model.keras")
    source_log_path = path.parent / "metrics.json"
    source_log = json.loads(source_log_path.read_text()) if source_log_path.exists() else {}
    log = {
        "model": model,
        "command": command,
        "rebuilt_from": str(path),
        "not_transferred": skipped,
        "params": int(target.count_params()),
        # what ship_model.py reads for the card's training section: the source's training
        "steps": source_log.get("steps"),
        "batch_size": source_log.get("batch_size"),
        "wall_time_s_this_call": source_log.get("wall_time_s_this_call"),
        "source_log": source_log,
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(log, indent=1))
    return log


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="the trained aligner .keras")
    parser.add_argument("--model", default="aligner_homography", help="aligner preset to build")
    parser.add_argument("--output", required=True, help="folder for model.keras and metrics.json")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", "scripts/rebuild_aligner.py", *map(shlex.quote, given)])
    try:
        log = rebuild(args.source, args.model, args.output, command)
    except ValueError as error:
        parser.exit(2, f"rebuild_aligner.py: error: {error}\n")
    print(json.dumps({k: log[k] for k in ("model", "rebuilt_from", "not_transferred", "params")}))


if __name__ == "__main__":
    main()
