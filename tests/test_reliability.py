"""Crashes and tiles: training killed with SIGKILL resumes, writers killed mid-way leave the
previous artefact, and tiled upscaling agrees with untiled.

Real processes are killed (`SIGKILL`, no cleanup handlers run), so these tests check what a
power cut or an out-of-memory kill would leave on disk, not what an exception leaves.
"""

import csv
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn import data, export, models, pretrained
from keras_attn.models.super_resolution import upscale
from keras_attn.training import fit

# Children print as they go (the parent reacts to their lines) and inherit the parent's nice.
CHILD_ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
CHILD_TIMEOUT_S = 240


def read_lines_until(process: subprocess.Popen, stop: str, on_line) -> bool:
    """Feeds the child's output lines to `on_line` until one starts with `stop` (True) or the
    output ends (False); a watchdog kills a child that hangs."""
    watchdog = threading.Timer(CHILD_TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            on_line(line)
            if line.startswith(stop):
                return True
        return False
    finally:
        watchdog.cancel()


# --------------------------------------------------------------------------- SIGKILL + resume

EPOCHS, STEPS_PER_EPOCH, LEARNING_RATE, WARMUP_STEPS = 4, 2, 1e-3, 200
KILL_AT_EPOCH = 3  # killed as epoch 3 begins: epochs 1-2 are in the backup


def train_command(output: pathlib.Path, data_dir: str) -> list[str]:
    """The tiny settings of tests/test_cli.py, for 4 epochs of 2 steps (about 20 s a run)."""
    return [
        *(sys.executable, "-m", "keras_attn", "train", "sr", "--model", "sr_tiny"),
        *("--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS_PER_EPOCH)),
        *("--learning-rate", str(LEARNING_RATE), "--warmup-steps", str(WARMUP_STEPS)),
        *("--batch-size", "4", "--patch-size", "48", "--val-split", "validation[:1]"),
        *("--data-dir", data_dir, "--verbose", "2", "--output", str(output)),
    ]


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory, photos_dir):
    """One run killed with SIGKILL in epoch 3 and run again; one uninterrupted run beside it
    (started at the same time, so the pair costs about two runs of wall time, not three)."""
    root = tmp_path_factory.mktemp("resume")
    killed, reference = root / "killed", root / "reference"
    state = {"completed_at_kill": None, "files_at_kill": None}

    def kill_at_epoch(line):
        if line.startswith(f"Epoch {KILL_AT_EPOCH}/"):
            state["completed_at_kill"] = fit.completed_epochs(killed)
            os.kill(first.pid, signal.SIGKILL)
            state["files_at_kill"] = sorted(p.name for p in killed.iterdir())

    with open(root / "reference.log", "w") as log:
        uninterrupted = subprocess.Popen(
            train_command(reference, photos_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=CHILD_ENV,
        )
        first = subprocess.Popen(
            train_command(killed, photos_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=CHILD_ENV,
        )
        read_lines_until(first, f"Epoch {KILL_AT_EPOCH}/", kill_at_epoch)
        first.wait()
        first.stdout.close()
        resumed = subprocess.run(
            train_command(killed, photos_dir),
            capture_output=True,
            text=True,
            env=CHILD_ENV,
            timeout=CHILD_TIMEOUT_S,
        )
        uninterrupted.wait(timeout=CHILD_TIMEOUT_S)
    return types.SimpleNamespace(
        killed=killed,
        reference=reference,
        first_returncode=first.returncode,
        resumed=resumed,
        reference_returncode=uninterrupted.returncode,
        **state,
    )


def history(output: pathlib.Path) -> list[dict]:
    with open(output / "history.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_sigkilled_training_resumes_from_its_last_backup(training_runs):
    runs = training_runs
    assert runs.first_returncode == -signal.SIGKILL
    # Killed inside epoch 3 with epochs 1-2 backed up, before any final file was written.
    assert runs.completed_at_kill == KILL_AT_EPOCH - 1
    assert "model.keras" not in runs.files_at_kill and "metrics.json" not in runs.files_at_kill

    assert runs.resumed.returncode == 0, runs.resumed.stderr[-2000:]
    resumed_from = re.search(r"Resuming from epoch (\d+)", runs.resumed.stdout)
    assert resumed_from, runs.resumed.stdout[-2000:]
    assert int(resumed_from.group(1)) == KILL_AT_EPOCH >= 2

    model = keras.saving.load_model(runs.killed / "model.keras")  # compiled: optimizer too
    # The optimizer state came back with the weights: 2 restored epochs + 2 new ones.
    assert int(model.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    upscaled = np.asarray(model(np.zeros((1, 8, 8, 3), "float32")))
    assert upscaled.shape == (1, 16, 16, 3)
    metrics = json.loads((runs.killed / "metrics.json").read_text())
    assert metrics["epochs_run_this_call"] == EPOCHS - KILL_AT_EPOCH + 1
    assert metrics["steps"] == EPOCHS * STEPS_PER_EPOCH

    # One log row per epoch, none repeated or lost across the kill; the rows written before it
    # equal the uninterrupted run's (measured: bitwise, the runs are deterministic up to the
    # kill; compared to 1e-6 so that a change of thread scheduling cannot fail the test).
    rows, reference_rows = history(runs.killed), history(runs.reference)
    assert [int(row["epoch"]) for row in rows] == list(range(EPOCHS))
    for row, reference_row in zip(rows[: KILL_AT_EPOCH - 1], reference_rows, strict=False):
        assert row.keys() == reference_row.keys()
        for key, value in row.items():
            if key in ("wall_time", "steps_per_s"):  # clock readings, not results
                continue
            assert float(value) == pytest.approx(float(reference_row[key]), rel=1e-6), key


def adam_step_bound(steps: range) -> float:
    """Largest change of one weight over `steps` Adam steps of the recipe's schedule.

    Adam moves a weight by at most lr_t * (1 - beta_1) / sqrt(1 - beta_2) per step when
    1 - beta_1 > sqrt(1 - beta_2) (Kingma & Ba 2015, section 2.1): 3.16 lr_t for Keras's
    beta_1 = 0.9, beta_2 = 0.999.
    """
    config = fit.TrainConfig(
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        learning_rate=LEARNING_RATE,
        warmup_steps=WARMUP_STEPS,
    )
    schedule = fit.learning_rate_schedule(config)
    return sum(float(schedule(step)) for step in steps) * 0.1 / np.sqrt(0.001)


@pytest.mark.slow
def test_resumed_run_matches_an_uninterrupted_run_within_noise(training_runs):
    """Resuming restores weights, optimizer and epoch, but Keras's BackupAndRestore does not
    restore the position in the tf.data stream: after the resume, epochs 3-4 train on the
    stream's first batches again, while the uninterrupted run trains on batches 5-8. So the two
    final models are not bitwise equal. Measured here: max |weight difference| 3.0e-3 (weights
    up to 0.19), max |output difference| 0.02 and mean 0.008 on [0, 1] pixels, and 0.02 dB of
    held-out PSNR-Y. Tolerances: both runs start the last 4 steps from the same restored state,
    so no weight can differ by more than twice the Adam step bound over those steps (0.02);
    held-out PSNR-Y within 0.1 dB (5x the measured gap; one step of this run moves it ~0.05 dB).
    """
    runs = training_runs
    assert runs.reference_returncode == 0 and runs.resumed.returncode == 0
    resumed = keras.saving.load_model(runs.killed / "model.keras", compile=False)
    reference = keras.saving.load_model(runs.reference / "model.keras", compile=False)
    post_resume = range((KILL_AT_EPOCH - 1) * STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH)
    bound = 2 * adam_step_bound(post_resume)
    for mine, theirs in zip(resumed.weights, reference.weights, strict=True):
        difference = np.abs(np.asarray(mine) - np.asarray(theirs)).max()
        assert difference <= bound, (mine.path, difference, bound)
    final, reference_final = history(runs.killed)[-1], history(runs.reference)[-1]
    assert abs(float(final["val_psnr_y"]) - float(reference_final["val_psnr_y"])) < 0.1


@pytest.mark.slow
def test_resumed_run_is_bitwise_an_uninterrupted_run(training_runs):
    resumed = keras.saving.load_model(training_runs.killed / "model.keras", compile=False)
    reference = keras.saving.load_model(training_runs.reference / "model.keras", compile=False)
    for mine, theirs in zip(resumed.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


@pytest.fixture(scope="module")
def killed_mid_epoch(tmp_path_factory, photos_dir, training_runs):
    """The same run with a backup after every step (--checkpoint-minutes 1e-5), killed once its
    backup stands one step into epoch 2, then run again."""
    output = tmp_path_factory.mktemp("mid_epoch") / "run"
    command = [*train_command(output, photos_dir), "--checkpoint-minutes", "1e-5"]
    metadata = output / "backup" / "training_metadata.json"
    first = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=CHILD_ENV
    )
    position, deadline = None, time.monotonic() + CHILD_TIMEOUT_S
    while first.poll() is None and time.monotonic() < deadline:
        try:
            position = json.loads(metadata.read_text())
        except (OSError, ValueError):
            position = None
        if position == {"epoch": 1, "batch": 1}:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    first.wait(timeout=CHILD_TIMEOUT_S)
    at_kill = json.loads(metadata.read_text())
    resumed = subprocess.run(
        command, capture_output=True, text=True, env=CHILD_ENV, timeout=CHILD_TIMEOUT_S
    )
    return types.SimpleNamespace(
        output=output, first_returncode=first.returncode, at_kill=at_kill, resumed=resumed
    )


@pytest.mark.slow
def test_killed_mid_epoch_resumes_at_the_step_and_matches_bitwise(killed_mid_epoch, training_runs):
    runs = killed_mid_epoch
    assert runs.first_returncode == -signal.SIGKILL
    # killed part-way: one step into epoch 2 (the backup may have moved on by a step or two)
    assert runs.at_kill["epoch"] == 1 and runs.at_kill["batch"] >= 1 or runs.at_kill["epoch"] > 1
    assert runs.resumed.returncode == 0, runs.resumed.stderr[-2000:]
    resumed_at = re.search(r"Resuming from epoch (\d+)(, step (\d+))?", runs.resumed.stdout)
    assert resumed_at, runs.resumed.stdout[-2000:]
    if runs.at_kill["batch"]:
        assert resumed_at.group(3) == str(runs.at_kill["batch"] + 1)
    model = keras.saving.load_model(runs.output / "model.keras")
    assert int(model.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH  # no step run twice
    assert [int(row["epoch"]) for row in history(runs.output)] == list(range(EPOCHS))
    reference = keras.saving.load_model(training_runs.reference / "model.keras", compile=False)
    for mine, theirs in zip(model.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


# --------------------------------------------------------------------------- atomic writers

OLD_SEED, NEW_SEED = 0, 1
CARD = {"family": "sr", "task": "test", "key_metric": "psnr_y_db", "metrics": {"psnr_y_db": 1}}

# The child starts five writes of a *new* model over the previous artefacts, each paused at
# the worst moment: the new content half written to the temporary sibling (files truncated,
# the SavedModel's variables/ not yet there, the package without its card), the rename into
# place not done. A paused write starts the next one from inside itself, so all five are in
# progress on one stack when the parent kills the child once.
WRITER_CHILD = """
import contextlib, os, pathlib, shutil, sys, time
import keras
import numpy as np
from keras_attn import _io, export, models
from keras_attn.export import package, saved_model, tflite
from keras_attn.training import fit, run_folder

root = pathlib.Path(sys.argv[1])
keras.utils.set_random_seed(1234)  # as seeded_sr_model in the parent
model = models.build_model("sr_tiny_x2")
conv = model.get_layer("sr_tiny_x2_upsample_conv")
conv.kernel.assign(np.random.default_rng(%(seed)d).normal(scale=0.05, size=conv.kernel.shape))
card = %(card)r

def pause(stage, temporary):
    print("PAUSED", stage, temporary, flush=True)
    if stages:
        stages.pop(0)()
    print("ALL PAUSED", flush=True)
    time.sleep(600)

pause_at = {root / "sm": "saved_model", root / "m.tflite": "tflite", root / "model.keras": "keras"}

@contextlib.contextmanager
def pausing_atomic_path(path, *args, **kwargs):
    with _io.atomic_path(path, *args, **kwargs) as tmp:
        yield tmp
        if pathlib.Path(path) in pause_at:  # written; cut it short as a crash would
            if tmp.is_dir():
                shutil.rmtree(tmp / "variables")
            else:
                os.truncate(tmp, tmp.stat().st_size // 2)
            pause(pause_at[pathlib.Path(path)], tmp)

for module in (saved_model, tflite, run_folder):
    module.atomic_path = pausing_atomic_path

original_export_tflite = package.export_tflite
def export_tflite(model, path, *args, **kwargs):
    report = original_export_tflite(model, path, *args, **kwargs)
    pause("package", pathlib.Path(path).parent)  # model.keras, saved_model/, model.tflite
    return report
package.export_tflite = export_tflite

original_exchange = _io._exchange
def exchange(a, b):
    swapped = original_exchange(a, b)
    if pathlib.Path(b) == root / "swap_sm":  # swapped; the old folder is not yet deleted
        pause("between_renames", pathlib.Path(a))
    return swapped
_io._exchange = exchange

stages = [
    lambda: export.export_tflite(model, root / "m.tflite", output_names=["upscaled"]),
    lambda: fit.save_model_atomic(model, root / "model.keras"),
    lambda: package.package_model(model, "sr_tiny", root / "catalogue", card=card,
                                  quantizations=()),
    lambda: export.export_saved_model(model, root / "swap_sm", output_names=["upscaled"]),
]
sys.stdin.readline()  # the parent has written the previous artefacts
export.export_saved_model(model, root / "sm", output_names=["upscaled"])
"""


def seeded_sr_model(seed: int) -> keras.Model:
    """sr_tiny_x2 with a random upsampler, so models of different seeds give different outputs."""
    keras.utils.set_random_seed(1234)
    model = models.build_model("sr_tiny_x2")
    conv = model.get_layer("sr_tiny_x2_upsample_conv")
    conv.kernel.assign(np.random.default_rng(seed).normal(scale=0.05, size=conv.kernel.shape))
    return model


def snapshot(path: pathlib.Path) -> dict:
    """Relative path -> bytes of every file under `path` (or of `path` itself)."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def interrupted_writes(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER_CHILD % {"seed": NEW_SEED, "card": CARD}, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=CHILD_ENV,
    )
    # The previous artefacts, written while the child imports TensorFlow.
    old = seeded_sr_model(OLD_SEED)
    export.export_saved_model(old, root / "sm", output_names=["upscaled"])
    shutil.copytree(root / "sm", root / "swap_sm")
    export.export_tflite(
        old, root / "m.tflite", output_names=["upscaled"], saved_model_dir=root / "sm"
    )
    fit.save_model_atomic(old, root / "model.keras")
    pretrained.package_model(old, "sr_tiny", root / "catalogue", card=CARD, quantizations=())
    artefacts = ("sm", "swap_sm", "m.tflite", "model.keras", "catalogue/sr_tiny")
    before = {name: snapshot(root / name) for name in artefacts}

    paused, log = {}, []

    def on_line(line):
        log.append(line)
        if line.startswith("PAUSED "):
            _, stage, temporary = line.split(maxsplit=2)
            temporary = pathlib.Path(temporary.strip())
            paused[stage] = (temporary, temporary.exists())
        elif line.startswith("ALL PAUSED"):
            os.kill(child.pid, signal.SIGKILL)

    child.stdin.write("go\n")
    child.stdin.flush()
    read_lines_until(child, "ALL PAUSED", on_line)
    child.wait()
    child.stdout.close()
    x = np.random.default_rng(7).uniform(size=(1, 12, 10, 3)).astype("float32")
    return types.SimpleNamespace(
        root=root,
        before=before,
        paused=paused,
        returncode=child.returncode,
        log="".join(log),
        x=x,
        old_output=np.asarray(old(x)),
        new_output=np.asarray(seeded_sr_model(NEW_SEED)(x)),
    )


def assert_killed_mid_write(writes, stage: str) -> None:
    assert writes.returncode == -signal.SIGKILL, writes.log[-3000:]
    assert stage in writes.paused, writes.log[-3000:]
    temporary, existed = writes.paused[stage]
    assert existed and temporary.name.startswith("."), (stage, temporary)
    # The old and the new model are told apart by their outputs.
    assert np.abs(writes.new_output - writes.old_output).max() > 1e-3


@pytest.mark.slow
def test_killed_saved_model_export_keeps_the_previous_folder(interrupted_writes):
    writes = interrupted_writes
    assert_killed_mid_write(writes, "saved_model")
    assert snapshot(writes.root / "sm") == writes.before["sm"]
    signature = tf.saved_model.load(str(writes.root / "sm")).signatures["serving_default"]
    served = signature(image=tf.constant(writes.x))["upscaled"].numpy()
    np.testing.assert_allclose(served, writes.old_output, atol=1e-6)


@pytest.mark.slow
def test_killed_tflite_export_keeps_the_previous_file(interrupted_writes):
    writes = interrupted_writes
    assert_killed_mid_write(writes, "tflite")
    assert snapshot(writes.root / "m.tflite") == writes.before["m.tflite"]
    upscaled = export.TFLiteModel(writes.root / "m.tflite")(image=writes.x)["upscaled"]
    np.testing.assert_allclose(upscaled, writes.old_output, atol=1e-4)


@pytest.mark.slow
def test_killed_save_model_atomic_keeps_the_previous_file(interrupted_writes):
    writes = interrupted_writes
    assert_killed_mid_write(writes, "keras")
    assert snapshot(writes.root / "model.keras") == writes.before["model.keras"]
    model = keras.saving.load_model(writes.root / "model.keras", compile=False)
    np.testing.assert_allclose(np.asarray(model(writes.x)), writes.old_output, atol=1e-6)


@pytest.mark.slow
def test_killed_package_model_keeps_the_previous_folder(interrupted_writes):
    writes = interrupted_writes
    assert_killed_mid_write(writes, "package")
    catalogue = writes.root / "catalogue"
    assert snapshot(catalogue / "sr_tiny") == writes.before["catalogue/sr_tiny"]
    # Every sha256 in the card still matches, and the leftover temporary folder (hidden) is
    # not taken for a model.
    model = pretrained.load("sr_tiny", root=catalogue)
    np.testing.assert_allclose(np.asarray(model(writes.x)), writes.old_output, atol=1e-6)
    assert [entry["name"] for entry in pretrained.list_models(root=catalogue)] == ["sr_tiny"]
    assert any(p.name.startswith(".sr_tiny.tmp") for p in catalogue.iterdir())


@pytest.mark.slow
def test_killed_during_the_folder_swap_keeps_a_complete_model_at_the_path(interrupted_writes):
    """Replacing a folder is one renameat2(RENAME_EXCHANGE): killed right after it (before the
    old copy is deleted), the path holds the complete new SavedModel; before it, the old one
    (the other tests). There is no moment with nothing, or half of something, at the path."""
    writes = interrupted_writes
    assert_killed_mid_write(writes, "between_renames")
    path = writes.root / "swap_sm"
    assert path.is_dir(), sorted(p.name for p in writes.root.iterdir())
    assert snapshot(path) != writes.before["swap_sm"]  # the new export, complete
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert "upscaled" in served.structured_outputs


# --------------------------------------------------------------------------- tiled upscale


def test_tiled_upscale_of_a_photo_agrees_with_untiled():
    """The shipped sr_x2 on a 96x96 crop of a real photo, tiles of 48 overlapping by 8.

    Tiles differ from the whole image where their receptive field was cut (the model sees 21
    LR pixels around each pixel) and because every SqueezeExcite gate pools over its tile, not
    the image; the feathered blend hides most of it. Measured on this crop: max |diff| 8.1e-3,
    mean 1.1e-4 (float pixels in [0, 1]; at most 2 levels in uint8). Tolerances: max 0.02
    (5 levels), mean 5e-4; a tile placed one pixel off or blended without normalising the weights
    gives differences of 0.05 or more.
    """
    model = pretrained.load("sr_x2")
    tile_shapes = []

    def counting_model(batch):
        tile_shapes.append(tuple(batch.shape[1:3]))
        return model(batch)

    crop = data.load_photo("astronaut")[100:196, 180:276]
    image = crop.astype("float32") / 255.0
    untiled = upscale(model, image)
    tiled = upscale(counting_model, image, tile=48, overlap=8)
    # Tiles start at 0, 40 and 48 on each axis: 9 tiles of 48x48 (after one 8x8 scale probe).
    assert tile_shapes.count((48, 48)) == 9 and max(tile_shapes) == (48, 48)
    difference = np.abs(tiled - untiled)
    assert tiled.shape == untiled.shape == (192, 192, 3)
    assert difference.max() < 0.02 and difference.mean() < 5e-4, (
        difference.max(),
        difference.mean(),
    )
