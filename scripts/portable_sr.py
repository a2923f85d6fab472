"""
Title: Train a super-resolution preset with Keras alone, on any backend (JAX on a GPU machine)
Description: `keras-attn train sr` reads its photos through tf.data. This script trains the same
preset with the same loss, optimiser, learning-rate schedule, crops and degradation from plain
image files, with Keras, numpy and Pillow only, so it runs where TensorFlow is not installed:
a GPU machine with JAX. The run folder it writes has the layout of `keras-attn train sr`
(`backup/`, `history.csv`, `model.keras`, `metrics.json`, `command.txt`): rerunning the same
`train` command resumes it, and `model.keras` loads under TensorFlow for evaluation, export and
`scripts/ship_model.py`.

Three steps:

    # 1. here (TensorFlow): the training photos as files, and manifest.json
    python scripts/portable_sr.py pack --dataset bundled_photos+photo_collection \
        --output packs/sr_photos
    # 2. on the other machine (any backend), resumable; the pack and the run folder travel
    KERAS_BACKEND=jax python scripts/portable_sr.py train --pack packs/sr_photos \
        --model sr_hq --scale 2 --epochs 30 --steps-per-epoch 1000 --learning-rate 5e-4 \
        --output runs/sr_x2_hq_jax
    # 3. here (TensorFlow): validation PSNR-Y / SSIM-Y on the dataset's validation tiles (the
    #    numbers `keras-attn train sr` logs), added to the run's metrics.json
    python scripts/portable_sr.py finish --run runs/sr_x2_hq_jax

What matches `keras-attn train sr` and what does not:
- the same: the model (`build_model(f"{model}_x{scale}")`), Charbonnier loss, Adam with linear
  warm-up and cosine decay to 1 % (`keras_attn.training.schedule`), the run folder and its
  backups every `--checkpoint-minutes`, 96-pixel crops with random flips and 90-degree turns,
  and the LR: antialiased bicubic downscale, clipped (`keras.ops.image.resize`, which is
  `tf.image.resize` under TensorFlow: the test checks they are equal).
- not bit for bit: the crops are drawn by numpy from whole photos (weighted by pixels; `--mix
  equal` picks each dataset equally often first) instead of tf.data's shuffled 512-pixel
  tiles, and another backend's resize kernel differs from TensorFlow's in the last digits.
- the pack holds the photo collection's (or a `folder:` dataset's) original files of the split,
  so it stays small (13 MB for the collection); other tfds datasets are written as PNG.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import pathlib
import re
import shlex
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:  # a machine without the package installed runs this from a copy of the repository
    import keras_attn  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers, losses and metrics)
from keras_attn.models import registry  # noqa: E402
from keras_attn.training.losses import get_loss  # noqa: E402
from keras_attn.training.metrics import PSNRY, SSIMY  # noqa: E402
from keras_attn.training.run_folder import announce_position, fit_resumable  # noqa: E402
from keras_attn.training.schedule import TrainConfig, make_optimizer  # noqa: E402
from keras_attn.utils.images import read_rgb  # noqa: E402

MANIFEST = "manifest.json"
MIXES = ("pixels", "equal")  # as keras_attn.data.super_resolution.MIXES (that module needs TF)


# --------------------------------------------------------------------------- pack (TensorFlow)


def pack(
    dataset: str, output: str | os.PathLike, split: str = "train", data_dir: str | None = None
) -> pathlib.Path:
    """Writes the `split` images of `dataset` (names joined by `+`, as `keras-attn train sr
    --dataset` takes them) into `output`: one sub-folder per dataset and `manifest.json`.
    The folder appears whole or not at all; an existing `output` is an error."""
    from keras_attn._io import atomic_path
    from keras_attn.data import photo_folder
    from keras_attn.data import super_resolution as sr
    from keras_attn.utils.images import write_png

    output = pathlib.Path(output)
    if output.exists():
        raise ValueError(f"{output} already exists: pack into a new folder")
    manifest = {"dataset": dataset, "split": split, "datasets": []}
    with atomic_path(output, directory=True) as tmp:
        for index, name in enumerate(sr.dataset_names(dataset)):
            folder = photo_folder.source_folder(name)  # None: a tfds dataset
            sub = f"{index}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}"
            (tmp / sub).mkdir()
            files = []
            if folder is not None and split in ("train", "validation"):
                for path in photo_folder.split_files(folder)[split]:
                    shutil.copyfile(path, tmp / sub / path.name)  # the original bytes
                    files.append(f"{sub}/{path.name}")
            else:
                for number, image in enumerate(
                    sr.load_images(name, split, data_dir).as_numpy_iterator()
                ):
                    write_png(tmp / sub / f"{number:04d}.png", image)
                    files.append(f"{sub}/{number:04d}.png")
            if not files:
                raise ValueError(f"{name!r} has no images in split {split!r}")
            manifest["datasets"].append({"name": name, "files": files})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return output


# --------------------------------------------------------------------------- train (any backend)


def read_pack(folder: str | os.PathLike) -> tuple[dict, list[list[np.ndarray]]]:
    """The manifest and, per dataset, its images as uint8 `(H, W, 3)` arrays."""
    folder = pathlib.Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ValueError(f"{folder} is not a pack: it has no {MANIFEST} (make one with `pack`)")
    manifest = json.loads((folder / MANIFEST).read_text())
    images = [[read_rgb(folder / name) for name in part["files"]] for part in manifest["datasets"]]
    return manifest, images


def at_least(image: np.ndarray, size: int) -> np.ndarray:
    """Upsamples (bilinear) a uint8 image smaller than `size` on a side, as the tf.data pipeline
    does; larger ones pass."""
    height, width = image.shape[:2]
    factor = max(1.0, size / min(height, width))
    if factor == 1.0:
        return image
    new = (int(np.ceil(height * factor)), int(np.ceil(width * factor)))
    resized = keras.ops.image.resize(image.astype("float32"), new, interpolation="bilinear")
    return np.clip(np.round(keras.ops.convert_to_numpy(resized)), 0, 255).astype(np.uint8)


def bicubic_downscale(hr, scale: int):
    """LR from float HR batches in [0, 1]: antialiased bicubic resize, clipped to [0, 1] (on
    TensorFlow this is `keras_attn.data.super_resolution.bicubic_downscale`)."""
    height, width = hr.shape[-3] // scale, hr.shape[-2] // scale
    lr = keras.ops.image.resize(hr, (height, width), interpolation="bicubic", antialias=True)
    return keras.ops.clip(lr, 0.0, 1.0)


class CropSampler:
    """Random HR crops of a pack's images, flipped and turned, and their LR; batch `step` is a
    function of `(seed, step)` alone, so a resumed run draws what an uninterrupted one would.

    `mix="pixels"`: a crop comes from an image chosen in proportion to its pixels, over all the
    datasets; `"equal"`: each dataset equally often, then an image by its pixels within it.
    """

    def __init__(self, images, *, scale, patch_size=96, batch_size=16, mix="pixels", seed=0):
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {list(MIXES)}. Received: mix={mix!r}")
        if patch_size % scale:
            raise ValueError(
                f"patch_size must be a multiple of scale. Received: {patch_size}, {scale}"
            )
        self.images = [[at_least(image, patch_size) for image in part] for part in images]
        self.flat = [image for part in self.images for image in part]
        pixels = [[image.shape[0] * image.shape[1] for image in part] for part in self.images]
        self.part_of = np.repeat(np.arange(len(pixels)), [len(p) for p in pixels])
        weights = np.concatenate([np.asarray(p, np.float64) for p in pixels])
        if mix == "equal":  # each dataset's images share 1 / (number of datasets)
            totals = np.array([sum(p) for p in pixels], np.float64)
            weights = weights / totals[self.part_of] / len(pixels)
        self.weights = weights / weights.sum()
        self.scale, self.patch_size, self.batch_size, self.seed = (
            scale,
            patch_size,
            batch_size,
            seed,
        )

    def hr_batch(self, step: int) -> np.ndarray:
        """`(batch, patch, patch, 3)` uint8 crops of batch `step`."""
        rng = np.random.default_rng([self.seed, step])
        size = self.patch_size
        crops = []
        for index in rng.choice(len(self.flat), size=self.batch_size, p=self.weights):
            image = self.flat[index]
            top = rng.integers(0, image.shape[0] - size + 1)
            left = rng.integers(0, image.shape[1] - size + 1)
            crop = image[top : top + size, left : left + size]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < 0.5:
                crop = crop[::-1]
            crops.append(np.rot90(crop, rng.integers(0, 4)))
        return np.stack(crops)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """`(lr, hr)` float32 in [0, 1] for batch `step`."""
        hr = self.hr_batch(step).astype(np.float32) / 255.0
        lr = keras.ops.convert_to_numpy(bicubic_downscale(hr, self.scale))
        return lr, hr

    def stream(self, step: int, ahead: int = 4):
        """Endless batches from global step `step` on (what `fit_resumable` asks for), made
        `ahead` batches in advance on a thread while the accelerator trains."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = collections.deque(
                pool.submit(self.batch, s) for s in range(step, step + ahead)
            )
            step += ahead
            while True:
                yield pending.popleft().result()
                pending.append(pool.submit(self.batch, step))
                step += 1


def device_name() -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: {jax.devices()[0].device_kind}"
    if backend == "torch":
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        return f"torch {torch.__version__}: {gpu}"
    return backend


def train(args: argparse.Namespace, command: str) -> dict:
    """Trains (or resumes) the run in `args.output`; writes its files; returns metrics.json."""
    manifest, images = read_pack(args.pack)  # a bad pack fails before anything is written
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "command.txt").write_text(command + "\n")
    sampler = CropSampler(
        images,
        scale=args.scale,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        mix=args.mix,
        seed=args.seed,
    )
    config = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        verbose=args.verbose,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    keras.utils.set_random_seed(args.seed)  # the initial weights, as `keras-attn train` seeds them
    model = registry.build_model(f"{args.model}_x{args.scale}")
    model.compile(
        optimizer=make_optimizer(config),
        loss=get_loss(args.loss),
        metrics=[PSNRY(border=args.scale), SSIMY(border=args.scale)],
    )
    done, _ = announce_position(output, config)
    start = time.monotonic()
    fit_resumable(model, sampler.stream, output_dir=output, config=config)
    metrics = {
        "model": model.name,
        "command": command,
        "dataset": manifest["dataset"],
        "train_split": manifest["split"],
        "val_split": "validation",
        "scale": args.scale,
        "params": model.count_params(),
        "epochs": args.epochs,
        "steps": config.total_steps,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "mix": args.mix,
        "loss": args.loss,
        "learning_rate": args.learning_rate,
        "backend": keras.backend.backend(),
        "device": device_name(),
        "epochs_run_this_call": max(0, args.epochs - done),
        "wall_time_s_this_call": round(time.monotonic() - start, 1),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


# --------------------------------------------------------------------------- finish (TensorFlow)


def finish(run: str | os.PathLike, data_dir: str | None = None) -> dict:
    """Measures a finished run's `model.keras` on its dataset's validation tiles, as
    `keras-attn train sr` does after training, and adds the numbers to its metrics.json."""
    from keras_attn import data
    from keras_attn.training import distribute, recipes

    run = pathlib.Path(run)
    if not (run / "model.keras").is_file() or not (run / "metrics.json").is_file():
        raise ValueError(f"{run} holds no finished run (model.keras and metrics.json)")
    metrics = json.loads((run / "metrics.json").read_text())
    model = keras.saving.load_model(run / "model.keras", compile=False)
    scale = metrics["scale"]
    validation = data.super_resolution_dataset(
        metrics["dataset"],
        "validation",
        scale,
        metrics["patch_size"],
        metrics["batch_size"],
        training=False,
        data_dir=data_dir,
    ).cache()
    baseline = recipes.bicubic_psnr(validation, scale)
    results = distribute.evaluate(
        model, validation, get_loss(metrics["loss"]), [PSNRY(border=scale), SSIMY(border=scale)]
    )
    metrics.update(
        val_psnr_y=float(results["psnr_y"]),
        val_ssim_y=float(results["ssim_y"]),
        bicubic_psnr_y=baseline,
        gain_over_bicubic_db=float(results["psnr_y"]) - baseline,
    )
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


# --------------------------------------------------------------------------- command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="the training photos as files (TensorFlow)")
    p.add_argument("--dataset", default="bundled_photos+photo_collection")
    p.add_argument("--split", default="train")
    p.add_argument("--output", required=True)
    p.add_argument("--data-dir", default=None, help="tfds data directory (default: tfds's own)")
    t = commands.add_parser("train", help="train or resume a run (any Keras backend)")
    t.add_argument("--pack", required=True)
    t.add_argument("--model", default="sr_fast", help="an SR preset: sr_fast, sr_hq, espcn_skip...")
    t.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps-per-epoch", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--patch-size", type=int, default=96)
    t.add_argument("--learning-rate", type=float, default=5e-4)
    t.add_argument("--warmup-steps", type=int, default=200)
    t.add_argument("--loss", default="charbonnier", choices=("charbonnier", "l1", "mse"))
    t.add_argument("--mix", default="pixels", choices=MIXES)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-minutes", type=float, default=10.0)
    t.add_argument("--verbose", type=int, default=2)
    t.add_argument("--output", required=True)
    f = commands.add_parser("finish", help="validation numbers into metrics.json (TensorFlow)")
    f.add_argument("--run", required=True)
    f.add_argument("--data-dir", default=None, help="tfds data directory (default: tfds's own)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "scripts/portable_sr.py", *argv])
    try:
        if args.command == "pack":
            print(f"wrote {pack(args.dataset, args.output, args.split, args.data_dir)}")
        elif args.command == "train":
            print(json.dumps(train(args, command), indent=1))
        else:
            print(json.dumps(finish(args.run, args.data_dir), indent=1))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
