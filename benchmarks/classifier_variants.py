"""Attention variants at equal parameters on Fashion-MNIST: several seeds, resumable for hours.

Every variant is the same ResNet-20-style network (small stem, 3 stages x 3 basic blocks,
28x28 grayscale in, dropout 0.2), without attention (`plain`) or with one attention type:

- `se`, `cbam`, `spatial`: gate the residual branch of every block (SENet, CBAM);
- `nonlocal`: a non-local block after stages 2 and 3 (14x14, 7x7), as Wang et al. place them;
- `self`: relative-position self-attention instead of the second 3x3 convolution in stage 3
  (BoTNet).

Equal parameters: the plain network at widths (16, 32, 64) sets the budget; every other variant
scales these widths by the one factor (each width a multiple of 4 and at least 16) whose
parameter count is closest to it, and a variant more than `--tolerance` away is flagged.

Recipe (that of the shipped `classifier_fashion`, `scripts/long_runs.sh classifier_fashion`):
batch 128, AdamW (weight decay 0.05), peak learning rate 2e-3 after 500 warm-up steps, cosine
decay, label smoothing 0.1, random erasing 0.5, horizontal flips and pad-and-crop. Training uses
`train[:54000]`; model selection uses the 6,000 training items held out as `train[54000:]`
(evaluated after every epoch); the test split is evaluated once, at the end of each run.

Every run is one `keras-attn train classifier ...` in its own folder under `--runs`
(`<variant>_seed<s>`), which backs up every 10 minutes and resumes; the driver skips finished
runs, so the same command resumes the whole benchmark after an interruption or in the next
session. Training images/s come from each run's `history.csv` (steps/s x batch, median over
epochs): CPU timings move with the machine's load, compare rows of one machine.

Run (6 variants x 2 seeds x 10 epochs; hours on a 2-core CPU):
    python benchmarks/classifier_variants.py --runs runs/fashion_variants \
        --json runs/fashion_variants/results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attn.models import registry  # noqa: E402

PRESET = "classifier_fashion"
BASE_WIDTHS = (16, 32, 64)
DEPTHS = (3, 3, 3)
VARIANTS = {  # name -> --attention (one entry per stage where they differ)
    "plain": "none",
    "se": "se",
    "cbam": "cbam",
    "spatial": "spatial",
    "nonlocal": "none,nonlocal,nonlocal",
    "self": "none,none,self",
}
WIDTH_MULTIPLE = 4
MIN_WIDTH = 16  # oneDNN crashes on stride-2 convolution gradients below 16 channels
FACTORS = np.round(np.arange(0.5, 2.0001, 0.01), 2)
RECIPE = (
    "--batch-size 128 --learning-rate 2e-3 --warmup-steps 500 --weight-decay 0.05 "
    "--label-smoothing 0.1 --random-erasing 0.5"
)


def _attention(spec: str):
    stages = [None if a == "none" else a for a in spec.split(",")]
    return stages[0] if len(stages) == 1 else tuple(stages)


def params(variant: str, widths: tuple[int, ...]) -> int:
    model = registry.build_model(
        PRESET, attention=_attention(VARIANTS[variant]), widths=widths, depths=DEPTHS
    )
    count = model.count_params()
    keras.backend.clear_session()
    return count


def scaled_widths(factor: float) -> tuple[int, ...]:
    return tuple(
        max(MIN_WIDTH, int(round(w * factor / WIDTH_MULTIPLE)) * WIDTH_MULTIPLE)
        for w in BASE_WIDTHS
    )


def match_widths(variant: str, budget: int) -> tuple[tuple[int, ...], int]:
    """The scaled widths whose parameter count is closest to `budget`, and that count
    (bisection: counts grow with the factor)."""
    candidates = list(dict.fromkeys(scaled_widths(f) for f in FACTORS))
    counts: dict[int, int] = {}

    def count(index: int) -> int:
        if index not in counts:
            counts[index] = params(variant, candidates[index])
        return counts[index]

    low, high = 0, len(candidates) - 1
    while low < high:
        middle = (low + high) // 2
        if count(middle) >= budget:
            high = middle
        else:
            low = middle + 1
    best = min((i for i in (low - 1, low) if i >= 0), key=lambda i: abs(count(i) - budget))
    return candidates[best], count(best)


def command(variant: str, widths, seed: int, args: argparse.Namespace, output) -> list[str]:
    argv = [
        *("train", "classifier", "--model", PRESET, "--dataset", args.dataset),
        *("--image-size", str(args.image_size), "--epochs", str(args.epochs)),
        *("--train-split", args.train_split, "--val-split", args.val_split),
        *("--attention", VARIANTS[variant], "--widths", ",".join(map(str, widths))),
        *("--depths", ",".join(map(str, DEPTHS)), "--seed", str(seed)),
        *shlex.split(args.recipe),
        *("--output", str(output), "--verbose", "2"),
    ]
    if args.steps_per_epoch:
        argv += ["--steps-per-epoch", str(args.steps_per_epoch)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    return argv


def run(variant: str, widths, seed: int, args: argparse.Namespace) -> dict:
    """Trains (or resumes, or just reads) one run; returns its metrics.json."""
    output = pathlib.Path(args.runs) / f"{variant}_seed{seed}"
    metrics = output / "metrics.json"
    if metrics.exists() and json.loads(metrics.read_text()).get("epochs_run_this_call") is not None:
        done = json.loads(metrics.read_text())
        if done["epochs"] == args.epochs:
            return done
    output.mkdir(parents=True, exist_ok=True)
    argv = command(variant, widths, seed, args, output)
    (output / "command.txt").write_text("keras-attn " + shlex.join(argv) + "\n")
    print(f"[{variant} seed {seed}] keras-attn {shlex.join(argv)}", file=sys.stderr, flush=True)
    with open(output / "train.log", "a") as log:
        subprocess.run(
            [sys.executable, "-m", "keras_attn_cli", *argv], stdout=log, stderr=log, check=True
        )
    return json.loads(metrics.read_text())


def history(folder: pathlib.Path) -> list[dict]:
    with open(folder / "history.csv") as handle:
        return list(csv.DictReader(handle))


def summarise(variant, widths, count, budget, runs, folders, args) -> dict:
    val = [float(history(f)[-1]["val_accuracy"]) for f in folders]
    test = [r["test_accuracy"] for r in runs]
    speeds = [
        float(row["steps_per_s"]) * r["batch_size"]
        for f, r in zip(folders, runs, strict=True)
        for row in history(f)
        if row.get("steps_per_s")
    ]
    return {
        "variant": variant,
        "attention": VARIANTS[variant],
        "widths": list(widths),
        "params": count,
        "params_vs_plain": count / budget - 1,
        "within_tolerance": abs(count / budget - 1) <= args.tolerance,
        "seeds": args.seeds,
        "val_accuracy": val,
        "test_accuracy": test,
        "train_images_per_s": statistics.median(speeds) if speeds else None,
        "runs": [str(f) for f in folders],
    }


def _mean_std(values) -> str:
    mean = 100 * statistics.mean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} +- {std:.2f}"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| variant | widths | params | val accuracy % (selection) | test accuracy % | "
        "train img/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        flag = "" if row["within_tolerance"] else " (outside tolerance)"
        speed = row["train_images_per_s"]
        lines.append(
            f"| {row['variant']} | {','.join(map(str, row['widths']))} | {row['params']:,} "
            f"({100 * row['params_vs_plain']:+.1f} %){flag} | {_mean_std(row['val_accuracy'])} | "
            f"{_mean_std(row['test_accuracy'])} | {speed:.0f} |"
            if speed
            else f"| {row['variant']} | ... | ... | ... | ... | ... |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--runs", required=True, help="folder of the runs (resumes)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass")
    parser.add_argument("--dataset", default="fashion_mnist", help="tfds dataset")
    parser.add_argument("--image-size", type=int, default=28, help="input side")
    parser.add_argument("--train-split", default="train[:54000]", help="training items")
    parser.add_argument("--val-split", default="train[54000:]", help="selection items")
    parser.add_argument("--data-dir", help="tfds data directory")
    parser.add_argument("--recipe", default=RECIPE, help="the other train flags")
    parser.add_argument("--tolerance", type=float, default=0.1, help="parameter tolerance")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    budget = params("plain", BASE_WIDTHS)
    rows = []
    for variant in args.variants.split(","):
        widths, count = (
            (BASE_WIDTHS, budget) if variant == "plain" else match_widths(variant, budget)
        )
        runs = [run(variant, widths, seed, args) for seed in args.seeds]
        folders = [pathlib.Path(args.runs) / f"{variant}_seed{seed}" for seed in args.seeds]
        rows.append(summarise(variant, widths, count, budget, runs, folders, args))
        print(markdown_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    table = markdown_table(rows)
    print(table)
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(
            json.dumps({"budget_params": budget, "recipe": args.recipe, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
