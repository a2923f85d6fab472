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

Run (6 variants x 2 seeds x 10 epochs, seed 0 of every variant first; hours on a 2-core CPU):
    python benchmarks/classifier_variants.py --runs runs/fashion_variants \
        --record benchmarks/results/fashion_variants --json runs/fashion_variants/results.json

`--record` keeps one small JSON per finished run (its command, metrics.json and history.csv), and
the first seed's trained model without optimizer state (`<variant>_seed0.keras`), in a tracked
folder, so the benchmark carries over to a machine where `runs/` is gone; `--no-train`
prints the table of the runs finished so far.
"""

from __future__ import annotations

import argparse
import csv
import functools
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

from keras_attn._io import atomic_path  # noqa: E402
from keras_attn.models import registry  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from complexity import closest_to_budget  # noqa: E402  (benchmarks/complexity.py)

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


@functools.cache  # the width search asks again for the same counts on every main() call
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
    return closest_to_budget(candidates, lambda widths: params(variant, widths), budget)


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


def _record(args: argparse.Namespace, variant: str, seed: int) -> pathlib.Path | None:
    return pathlib.Path(args.record) / f"{variant}_seed{seed}.json" if args.record else None


def history(folder: pathlib.Path) -> list[dict]:
    with open(folder / "history.csv") as handle:
        return list(csv.DictReader(handle))


def run(variant: str, widths, seed: int, args: argparse.Namespace) -> dict | None:
    """Trains (or resumes, or just reads) one run; returns its record (command, metrics.json and
    history.csv rows), also written to `--record` when given. With `--no-train`, None for a run
    that has not finished."""
    record = _record(args, variant, seed)
    if record is not None and record.exists():
        done = json.loads(record.read_text())
        if done["metrics"]["epochs"] == args.epochs:
            return done
    output = pathlib.Path(args.runs) / f"{variant}_seed{seed}"
    metrics = output / "metrics.json"
    finished = (
        metrics.exists()
        and json.loads(metrics.read_text()).get("epochs_run_this_call") is not None
        and json.loads(metrics.read_text())["epochs"] == args.epochs
    )
    if not finished:
        if args.no_train:
            return None
        output.mkdir(parents=True, exist_ok=True)
        argv = command(variant, widths, seed, args, output)
        (output / "command.txt").write_text("keras-attn " + shlex.join(argv) + "\n")
        print(f"[{variant} seed {seed}] keras-attn {shlex.join(argv)}", file=sys.stderr, flush=True)
        with open(output / "train.log", "a") as log:
            subprocess.run(
                [sys.executable, "-m", "keras_attn_cli", *argv], stdout=log, stderr=log, check=True
            )
    done = {
        "command": (output / "command.txt").read_text().strip(),
        "metrics": json.loads(metrics.read_text()),
        "history": history(output),
    }
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        if seed == args.seeds[0]:
            keep_model(output, record.with_suffix(".keras"))
        with atomic_path(record) as tmp:
            tmp.write_text(json.dumps(done, indent=1) + "\n")
    return done


def keep_model(run_folder: pathlib.Path, target: pathlib.Path) -> None:
    """Saves the run's trained model without its optimizer state at `target` (about 1 MB; the
    variant maps figure, `benchmarks/variant_maps.py`, reads the first seed's)."""
    if target.exists():
        return
    model = keras.saving.load_model(run_folder / "model.keras", compile=False)
    with atomic_path(target, suffix=".keras") as tmp:
        model.save(tmp)
    keras.backend.clear_session()


def summarise(variant, widths, count, budget, records, args) -> dict:
    records = [r for r in records if r is not None]
    val = [float(r["history"][-1]["val_accuracy"]) for r in records]
    test = [r["metrics"]["test_accuracy"] for r in records]
    speeds = [
        float(row["steps_per_s"]) * r["metrics"]["batch_size"]
        for r in records
        for row in r["history"]
        if row.get("steps_per_s")
    ]
    return {
        "variant": variant,
        "attention": VARIANTS[variant],
        "widths": list(widths),
        "params": count,
        "params_vs_plain": count / budget - 1,
        "within_tolerance": abs(count / budget - 1) <= args.tolerance,
        "seeds": [s for s, r in zip(args.seeds, records, strict=False) if r is not None],
        "val_accuracy": val,
        "test_accuracy": test,
        "train_images_per_s": statistics.median(speeds) if speeds else None,
        "commands": [r["command"] for r in records],
    }


def _mean_std(values) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (one seed)"
    return f"{100 * statistics.mean(values):.2f} +- {100 * statistics.stdev(values):.2f}"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| variant | widths | params | val accuracy % (selection) | test accuracy % | "
        "train img/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        flag = "" if row["within_tolerance"] else " (outside tolerance)"
        speed = row["train_images_per_s"]
        head = (
            f"| {row['variant']} | {','.join(map(str, row['widths']))} | {row['params']:,} "
            f"({100 * row['params_vs_plain']:+.1f} %){flag} | "
        )
        lines.append(
            head + f"{_mean_std(row['val_accuracy'])} | {_mean_std(row['test_accuracy'])} | "
            f"{speed:.0f} |"
            if row["test_accuracy"]
            else head + "not finished | not finished | |"
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
    parser.add_argument(
        "--record",
        help="folder of one JSON per finished run (command, metrics, history); finished runs "
        "recorded there are not trained again, so a tracked folder carries the benchmark across "
        "machines",
    )
    parser.add_argument(
        "--no-train", action="store_true", help="only report the runs that have finished"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    budget = params("plain", BASE_WIDTHS)
    variants = args.variants.split(",")
    widths = {
        v: (BASE_WIDTHS, budget) if v == "plain" else match_widths(v, budget) for v in variants
    }
    # Seed-major: every variant has one finished seed before any has two.
    records = {(v, seed): run(v, widths[v][0], seed, args) for seed in args.seeds for v in variants}
    rows = [
        summarise(v, *widths[v], budget, [records[v, s] for s in args.seeds], args)
        for v in variants
    ]
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
