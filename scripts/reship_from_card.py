"""
Title: Ship a shipped model again, same weights, from its own card
Description: when the export path changes (a faster graph, a new TFLite option) and not the
weights, the files of `saved_models/<name>/` must be made again and every number of the card
measured again. The card keeps all it takes: the command that shipped it (`metrics.command`),
the training log (`training.log`) and where both lay (`source.path`, `training.log_file`), run
folders that a new machine no longer has. This script puts the shipped `model.keras` back at
`source.path` and the log at `training.log_file`, then runs `metrics.command` with the extra
`--note`s given here (the re-shipped card records that command, notes included).

Run:
    python scripts/reship_from_card.py aligner_homography \
        --note "Re-exported with the faster graph of commit 2c5f3a0; same weights."
    python scripts/reship_from_card.py aligner_flow --dry-run   # restore and print only
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def restore(name: str, catalogue: pathlib.Path) -> list[str]:
    """Puts the model and its training log where the card's command reads them; returns the
    command (argv) with `python` replaced by this interpreter."""
    folder = catalogue / name
    card_path = folder / "card.json"
    if not card_path.is_file():
        raise SystemExit(f"No shipped model {name!r}: {card_path} does not exist")
    card = json.loads(card_path.read_text())
    argv = shlex.split(card["metrics"]["command"])
    if argv[:2] != ["python", "scripts/ship_model.py"]:
        raise SystemExit(f"{name}'s card was not shipped by scripts/ship_model.py: {argv[:2]}")
    model_path = ROOT / card["source"]["path"]
    log_path = ROOT / card["training"]["log_file"]
    for path in (model_path, log_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "model.keras", model_path)
    log_path.write_text(json.dumps(card["training"]["log"], indent=1))
    return [sys.executable, *argv[1:]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("name", help="a folder of saved_models/")
    parser.add_argument("--note", action="append", default=[], help="a note to add to the card")
    parser.add_argument("--catalogue", default=str(ROOT / "saved_models"), help="catalogue")
    parser.add_argument(
        "--dry-run", action="store_true", help="restore the inputs and print the command only"
    )
    args = parser.parse_args(argv)
    command = restore(args.name, pathlib.Path(args.catalogue))
    for note in args.note:
        command += ["--note", note]
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
