"""tf.distribute: strategies by name, the custom loop, mirrored on logical CPUs, two workers.

The multi-device runs happen in child processes: a CPU is split into logical devices, and
multi-worker collectives are configured, only before TensorFlow starts.
"""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import keras_attn_cli as cli
from keras_attn.training import distribute
from tests.helpers import free_ports

CHILD_ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
CHILD_TIMEOUT_S = 300
REPO = pathlib.Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- strategies by name


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'.*default, mirrored"):
        distribute.make_strategy("horovod")


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}}', 'must be a JSON object with "cluster"'),
    ],
)
def test_malformed_tf_config_is_a_clear_error(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy("multiworker")


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(ValueError, match="--strategy tpu: no TPU found"):
        distribute.make_strategy("tpu")


def test_logical_cpus_after_start_is_a_clear_error():
    tf.constant(0)  # TensorFlow is initialised with one CPU device in this process
    with pytest.raises(ValueError, match="already initialised with 1"):
        distribute.configure_logical_cpus(3)


def test_default_strategy_keeps_model_fit():
    strategy = distribute.make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert not distribute.needs_custom_loop(strategy, jit_compile=False)
    assert not distribute.needs_custom_loop(strategy, jit_compile=True)
    assert distribute.is_chief(strategy)


def test_global_batch_must_divide_over_replicas():
    replicas4 = types.SimpleNamespace(num_replicas_in_sync=4)
    assert distribute.per_replica_batch_size(32, replicas4) == 8
    with pytest.raises(ValueError, match=r"global batch size \(10\).*replicas \(4\)"):
        distribute.per_replica_batch_size(10, replicas4)


def _strategy_of(task_type, task_id, cluster):
    resolver = types.SimpleNamespace(
        task_type=task_type,
        task_id=task_id,
        cluster_spec=lambda: tf.train.ClusterSpec(cluster),
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "task_type, task_id, cluster, chief",
    [
        ("worker", 0, {"worker": ["a:1", "b:1"]}, True),
        ("worker", 1, {"worker": ["a:1", "b:1"]}, False),
        ("chief", 0, {"chief": ["c:1"], "worker": ["a:1"]}, True),
        ("worker", 0, {"chief": ["c:1"], "worker": ["a:1"]}, False),
    ],
)
def test_chief_is_the_chief_task_or_worker_0(task_type, task_id, cluster, chief):
    assert distribute.is_chief(_strategy_of(task_type, task_id, cluster)) is chief


def test_evaluate_matches_model_evaluate():
    import keras

    from keras_attn.models.super_resolution import super_resolution
    from keras_attn.training.metrics import PSNRY

    rng = np.random.default_rng(0)
    lr = rng.uniform(size=(10, 8, 8, 3)).astype("float32")
    hr = rng.uniform(size=(10, 16, 16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((lr, hr)).batch(4)  # batches of 4, 4, 2
    model = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    model.compile(loss="mae", metrics=[PSNRY(border=2)])
    expected = model.evaluate(dataset, verbose=0, return_dict=True)
    got = distribute.evaluate(model, dataset, "mae", [PSNRY(border=2)])
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5)
    assert isinstance(distribute.as_loss(keras.losses.mean_absolute_error), keras.losses.Loss)


# --------------------------------------------------------------------------- mirrored


@pytest.fixture(scope="module")
def mirrored_runs():
    """tests/training/mirrored_runs.py: the same SR training under several strategies."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "training" / "mirrored_runs.py")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=CHILD_ENV,
        timeout=CHILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_splits_over_logical_cpus_and_takes_the_custom_loop(mirrored_runs):
    assert mirrored_runs["replicas"] == 2
    assert mirrored_runs["default"]["custom_loop"] is False
    assert mirrored_runs["mirrored"]["custom_loop"] is True
    for run in ("default", "mirrored", "mirrored_jit"):
        files = mirrored_runs[run]["files"]
        assert {"backup", "history.csv", "model.keras"} <= set(files), (run, files)


@pytest.mark.parametrize("run", ["mirrored", "mirrored_jit"])
def test_mirrored_training_reproduces_the_one_device_run(mirrored_runs, run):
    """Global batch 8 split 4 + 4 over two replicas takes the same steps as batch 8 on one
    device: same losses, validation metrics and weights (float32 summation order aside)."""
    reference, got = mirrored_runs["default"], mirrored_runs[run]
    assert got["history"].keys() == reference["history"].keys()
    for column, values in reference["history"].items():
        if column in TIMING_COLUMNS:
            continue
        np.testing.assert_allclose(got["history"][column], values, rtol=2e-4, err_msg=column)
    assert got["weights_sum"] == pytest.approx(reference["weights_sum"], rel=1e-5)


def test_mirrored_mixed_precision_trains_close_to_float32(mirrored_runs):
    reference, mixed = mirrored_runs["default"]["history"], mirrored_runs["mirrored_mixed"]
    assert np.all(np.isfinite(mixed["history"]["loss"]))
    np.testing.assert_allclose(mixed["history"]["loss"], reference["loss"], rtol=0.05)


def test_custom_loop_resumes_where_it_stopped(mirrored_runs):
    """The `mirrored` run stopped after epoch 1's backup; the same call ran epoch 2 only and
    still matches the uninterrupted one-device run (checked above)."""
    assert mirrored_runs["mirrored"]["epochs_this_call"] == 1
    assert len(mirrored_runs["mirrored"]["history"]["loss"]) == 2


# --------------------------------------------------------------------------- two workers


# Tiny runs of two families. No --verbose: the default progress bar reads a cross-worker metric
# every step, which must happen on every worker alike (a chief-only read put the workers'
# collectives out of step).
FAMILY_ARGS = {
    "sr": ("sr", "--model", "sr_tiny", "--patch-size", "32", "--val-split", "validation[:1]"),
    "classifier": ("classifier", "--image-size", "16", "--test-split", "test[:32]"),
}
TIMING_COLUMNS = ("wall_time", "steps_per_s")  # clock readings, not results


def _train_args(family, output, data_dir, *extra):
    return [
        *("train", *FAMILY_ARGS[family], "--batch-size", "8"),
        *("--epochs", "2", "--steps-per-epoch", "3"),
        *("--data-dir", data_dir, "--output", str(output), *extra),
    ]


def _history(folder):
    with open(folder / "history.csv") as handle:
        return list(csv.DictReader(handle))


def _start_workers(root, cluster, family, data_dir, *extra):
    """One `keras-attn train` process per worker, each writing to root/w{index}."""
    children = []
    for index in range(len(cluster["worker"])):
        env = {
            **CHILD_ENV,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        log = open(root / f"worker{index}.log", "a")
        command = [sys.executable, "-m", "keras_attn"]
        command += _train_args(
            family, root / f"w{index}", data_dir, "--strategy", "multiworker", *extra
        )
        children.append(
            (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        )
    return children


def _wait_all(children):
    try:
        return [child.wait(timeout=CHILD_TIMEOUT_S) for child, _ in children]
    finally:
        for child, log in children:
            child.kill()
            log.close()


@pytest.fixture(scope="module", params=sorted(FAMILY_ARGS))
def two_workers(request, tmp_path_factory, photos_dir, digits_dir):
    """`keras-attn train FAMILY --strategy multiworker` as two processes on localhost ports, each
    with its own --output (as on two machines: the chief alone writes the run), with the default
    verbosity, and a one-worker run beside (docs/scaling_out.md's commands)."""
    family = request.param
    data_dir = photos_dir if family == "sr" else digits_dir
    root = tmp_path_factory.mktemp(f"multiworker_{family}")
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    children = _start_workers(root, cluster, family, data_dir)
    codes = _wait_all(children)
    assert cli.main(_train_args(family, root / "single", data_dir, "--verbose", "0")) == 0
    logs = [(root / f"worker{index}.log").read_text() for index in range(2)]
    return types.SimpleNamespace(
        root=root, codes=codes, logs=logs, family=family, data_dir=data_dir, cluster=cluster
    )


def test_two_workers_exit_0_and_the_chief_writes_the_run(two_workers):
    assert two_workers.codes == [0, 0], [log[-2000:] for log in two_workers.logs]
    assert "MultiWorkerMirroredStrategy: 2 replica(s), worker 0 of 2 workers" in two_workers.logs[0]
    assert "worker 1 of 2 workers" in two_workers.logs[1]
    # the chief showed its progress bar (the default verbosity) and the other worker did not
    assert "3/3" in two_workers.logs[0] and "3/3" not in two_workers.logs[1]
    distributed = two_workers.root / "w0"
    assert sorted(p.name for p in distributed.iterdir()) == [
        "backup",
        "history.csv",
        "metrics.json",
        "model.keras",
    ]
    assert list((two_workers.root / "w1").iterdir()) == []  # worker 1 writes nothing
    assert json.loads((distributed / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    metrics = json.loads((distributed / "metrics.json").read_text())
    assert metrics["strategy"] == "multiworker" and metrics["replicas"] == 2
    # one row per epoch: worker 1 did not append its own
    assert len(_history(distributed)) == 2


def test_two_workers_match_one_worker_with_the_same_global_batch(two_workers):
    """Two workers with global batch 8 take the one-worker run's steps. SR (no batch norm): the
    same history to 1e-4. The classifier's batch norm normalises each replica's half batch, so
    its losses differ a little (measured: 0.4 % and 0.04 % in the two epochs); accuracies on 32
    test images move in steps of 3 %, so only the losses are compared, to 2 %."""
    distributed = _history(two_workers.root / "w0")
    single = _history(two_workers.root / "single")
    assert distributed[0].keys() == single[0].keys()
    if two_workers.family == "sr":
        columns, tolerance = set(single[0]) - set(TIMING_COLUMNS), 1e-4
    else:
        columns, tolerance = {"loss", "val_loss"}, 2e-2
    for got, expected in zip(distributed, single, strict=True):
        for column in columns:
            assert float(got[column]) == pytest.approx(float(expected[column]), rel=tolerance), (
                column
            )


def test_two_workers_resume_only_from_the_chief_backup(two_workers):
    """Restarted with one more epoch: with per-machine folders (worker 1's is empty) both workers
    stop with one clear line; with the chief's backup copied to worker 1, both resume."""
    if two_workers.family != "sr":
        pytest.skip("the check sits in the loop every family shares: one family is enough")
    root, ports = two_workers.root, free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    more = ("--epochs", "3")
    codes = _wait_all(_start_workers(root, cluster, "sr", two_workers.data_dir, *more))
    logs = [(root / f"worker{index}.log").read_text() for index in range(2)]
    assert codes[0] != 0 and codes[1] != 0
    for log in logs:
        assert "The workers resume from different backups" in log, log[-1500:]
    assert len(_history(root / "w0")) == 2  # nothing trained, nothing appended

    shutil.copytree(root / "w0" / "backup", root / "w1" / "backup")
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    codes = _wait_all(_start_workers(root, cluster, "sr", two_workers.data_dir, *more))
    assert codes == [0, 0], [(root / f"worker{i}.log").read_text()[-1500:] for i in range(2)]
    assert [int(row["epoch"]) for row in _history(root / "w0")] == [0, 1, 2]
