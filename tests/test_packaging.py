"""A non-editable install carries the shipped models: the wheel is built from a copy of the
repository's tracked files, installed into a folder of its own, and used from another folder."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from keras_attn import pretrained

REPO = pathlib.Path(__file__).resolve().parents[1]
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
CHILD_ENV.pop(pretrained.ENV_VAR, None)

USE_INSTALLED = """
import json, sys
import keras_attn
from keras_attn import pretrained
names = [m["name"] for m in pretrained.list_models()]
loaded = {}
for name in names:
    model = pretrained.load(name)  # sha256 of every file checked against the card first
    loaded[name] = model.count_params()
print(json.dumps({"package": keras_attn.__file__, "root": str(pretrained.saved_models_root()),
                  "names": names, "params": loaded}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        relative = pathlib.Path(os.fsdecode(name))
        if (REPO / relative).is_file():
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, source / relative)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("keras_attn-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return wheel, target, elsewhere


def _run(code_or_args, target, cwd):
    env = {**CHILD_ENV, "PYTHONPATH": str(target)}
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_wheel_holds_every_shipped_model_file(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for summary in pretrained.list_models():
        card = pretrained.card(summary["name"])
        for relative in [*card["files"], "card.json"]:
            assert f"keras_attn/saved_models/{summary['name']}/{relative}" in names, relative
    assert wheel.stat().st_size < 60e6  # package data, not a download: keep an eye on it


@pytest.mark.slow
def test_an_installed_wheel_lists_and_loads_every_model_from_another_folder(installed):
    _, target, elsewhere = installed
    result = _run(USE_INSTALLED, target, elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(target))  # the installed copy, not the checkout
    assert found["root"] == str(target / "keras_attn" / "saved_models")
    expected = {m["name"]: m["params"] for m in pretrained.list_models()}
    assert found["names"] == sorted(expected) and found["params"] == expected


@pytest.mark.slow
def test_an_installed_wheel_runs_the_demo_with_every_figure(installed):
    _, target, elsewhere = installed
    result = _run(["-m", "keras_attn", "demo", "--output", "figures"], target, elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(p.name for p in (elsewhere / "figures").glob("*.png"))
    families = {m["family"] for m in pretrained.list_models()}
    # one SR figure per SR model, the aligner's, the classifier's two, the layers figure
    sr_models = [m["name"] for m in pretrained.list_models() if m["family"] == "sr"]
    assert {f"{name}.png" for name in sr_models} <= set(written), written
    assert "layers_on_astronaut.png" in written
    assert len(written) >= len(sr_models) + len(families), written


@pytest.mark.slow
def test_without_models_list_is_empty_and_demo_says_where_it_looked(installed, tmp_path):
    _, target, _ = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    env_code = (
        f"import os; os.environ['KERAS_ATTN_SAVED_MODELS'] = {str(empty)!r}\n"
        "import keras_attn_cli; raise SystemExit(keras_attn_cli.main(['demo', '--output', 'x']))"
    )
    result = _run(env_code, target, tmp_path)
    assert result.returncode == 2
    assert f"No shipped models to show: looked in {empty}" in result.stderr
    assert not (tmp_path / "x").exists()
