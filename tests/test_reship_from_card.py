"""scripts/reship_from_card.py: puts a shipped model's inputs back where its card's command
reads them, and refuses what it cannot re-ship."""

import json
import pathlib
import shlex
import sys

import pytest

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reship():
    return load_script(ROOT / "scripts" / "reship_from_card.py", "reship_from_card")


def fake_catalogue(tmp_path, command, model_bytes=b"weights"):
    folder = tmp_path / "catalogue" / "aligner_x"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(model_bytes)
    card = {
        "metrics": {"command": command},
        "source": {"path": str(tmp_path / "runs" / "x" / "model.keras")},
        "training": {"log_file": str(tmp_path / "runs" / "x" / "metrics.json"), "log": {"a": 1}},
    }
    (folder / "card.json").write_text(json.dumps(card))
    return folder.parent


def test_dry_run_restores_the_inputs_and_prints_the_command(reship, tmp_path, capsys):
    command = "python scripts/ship_model.py --model runs/x/model.keras --note 'first note'"
    catalogue = fake_catalogue(tmp_path, command)
    argv = ["aligner_x", "--catalogue", str(catalogue), "--note", "again", "--dry-run"]
    assert reship.main(argv) == 0
    assert (tmp_path / "runs" / "x" / "model.keras").read_bytes() == b"weights"
    assert json.loads((tmp_path / "runs" / "x" / "metrics.json").read_text()) == {"a": 1}
    printed = shlex.split(capsys.readouterr().out.strip())
    assert printed[0] == sys.executable
    assert printed[1:] == [
        "scripts/ship_model.py",
        "--model",
        "runs/x/model.keras",
        "--note",
        "first note",
        "--note",
        "again",
    ]


def test_unknown_names_and_foreign_commands_are_refused(reship, tmp_path):
    catalogue = fake_catalogue(tmp_path, "keras-attn export something")
    with pytest.raises(SystemExit, match="No shipped model 'nope'"):
        reship.main(["nope", "--catalogue", str(catalogue), "--dry-run"])
    with pytest.raises(SystemExit, match="not shipped by scripts/ship_model.py"):
        reship.main(["aligner_x", "--catalogue", str(catalogue), "--dry-run"])


def test_every_shipped_card_can_be_re_shipped(reship, tmp_path):
    """Each card of saved_models/ names a command of scripts/ship_model.py and the paths it
    reads (checked on a copy: nothing is written in the repository)."""
    for card_path in sorted((ROOT / "saved_models").glob("*/card.json")):
        card = json.loads(card_path.read_text())
        argv = shlex.split(card["metrics"]["command"])
        assert argv[:2] == ["python", "scripts/ship_model.py"], card_path
        assert argv[argv.index("--model") + 1] == card["source"]["path"], card_path
        assert argv[argv.index("--training-log") + 1] == card["training"]["log_file"], card_path
        assert isinstance(card["training"]["log"], dict), card_path
