"""README.md and docs/*.md: every Python snippet runs as written, the generated tables are the
ones the model cards give, the README stays short, and every relative link points at a file.

A ```python block in docs/ that must not run is preceded by `<!-- not-run: reason -->`; the
README's own blocks all run. Each block runs in a fresh interpreter from an empty temporary
folder, offline (proxies point at a closed port), so it must import and make what it uses.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 244  # 238 + the Fashion-MNIST variants table and figure (#17)
ZOO_START, ZOO_END = "<!-- zoo:start -->", "<!-- zoo:end -->"
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->")
SNIPPET_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class Snippet:
    path: pathlib.Path
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason, when the block is marked not to run

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_snippets(path: pathlib.Path) -> list[Snippet]:
    """The ```python blocks of a Markdown file, with the not-run reason of each, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets, index = [], 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"{path}:{start + 1}: the python block is never closed")
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        snippets.append(
            Snippet(path, start + 1, "\n".join(body) + "\n", marker.group(1) if marker else None)
        )
        index += 1
    return snippets


SNIPPETS = [snippet for path in [README, *DOCS] for snippet in python_snippets(path)]
RUNNABLE = [snippet for snippet in SNIPPETS if snippet.not_run is None]


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[proxy] = "http://127.0.0.1:9"  # the discard port: any download fails at once
    for bypass in ("no_proxy", "NO_PROXY"):
        env.pop(bypass, None)
    return env


def test_the_readme_has_snippets_and_runs_every_one():
    readme = [snippet for snippet in SNIPPETS if snippet.path == README]
    assert len(readme) >= 4, "one snippet per family and one that builds and exports"
    marked = [snippet.id for snippet in readme if snippet.not_run is not None]
    assert not marked, f"README blocks must all run; marked not-run: {marked}"


def test_every_not_run_marker_gives_a_reason():
    for snippet in SNIPPETS:
        assert snippet.not_run is None or snippet.not_run.strip(), snippet.id


@pytest.mark.slow  # 10-60 s each on 2 cores: a fresh interpreter imports TensorFlow
@pytest.mark.parametrize("snippet", RUNNABLE, ids=[snippet.id for snippet in RUNNABLE])
def test_snippet_runs(snippet: Snippet, tmp_path: pathlib.Path):
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"{snippet.id} failed (exit {result.returncode}):\n{snippet.code}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
    )


def test_the_zoo_table_is_the_one_the_cards_generate():
    from keras_attn import pretrained

    text = README.read_text(encoding="utf-8")
    assert text.count(ZOO_START) == 1 and text.count(ZOO_END) == 1
    block = text.split(ZOO_START, 1)[1].split(ZOO_END, 1)[0].strip()
    assert block == pretrained.render_zoo_table().strip(), (
        "README's zoo table is out of date: run scripts/ship_model.py, or paste "
        "keras_attn.pretrained.render_zoo_table() between the markers"
    )


def test_the_benchmarks_table_is_the_one_the_cards_generate():
    from keras_attn import pretrained

    start, end = "<!-- shipped-models:start -->", "<!-- shipped-models:end -->"
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    block = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert block == pretrained.render_table().strip(), (
        "docs/benchmarks.md's table is out of date: run scripts/ship_model.py, or paste "
        "keras_attn.pretrained.render_table() between the markers"
    )


def test_the_zoo_table_has_one_row_per_shipped_model():
    from keras_attn import pretrained

    table = pretrained.render_zoo_table().splitlines()
    names = [entry["name"] for entry in pretrained.list_models()]
    assert [row.split("|")[1].strip().strip("`") for row in table[2:]] == names
    assert all(row.count("|") == table[0].count("|") for row in table)


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.name)
def test_relative_links_point_at_files(path: pathlib.Path):
    text = path.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    missing = []
    for target in targets:
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor in the same file
        if not (path.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    assert not missing, f"{path.name} links to missing files: {missing}"


def test_nothing_points_at_files_the_repository_does_not_have():
    paths = [README, *DOCS, ROOT / "saved_models" / "README.md"]
    paths += sorted((ROOT / "keras_attn").rglob("*.py"))
    paths += sorted((ROOT / "notebooks").glob("*.ipynb"))
    paths += sorted(path for path in (ROOT / "examples").iterdir() if path.is_file())
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for name in ("PITFALLS", "../shared/"):
            assert name not in text, f"{path.relative_to(ROOT)} mentions {name}"


def _write_card(root: pathlib.Path, name: str, family: str, metrics: dict) -> None:
    import json

    folder = root / name
    folder.mkdir(parents=True)
    card = {
        "family": family,
        "task": f"{family} task",
        "params": 1234,
        "key_metric": next(iter(metrics)),
        "metrics": metrics,
        "files": {"model.keras": {"sha256": "0" * 64, "bytes": 10}},
        "total_bytes": 2_500_000,
    }
    (folder / "card.json").write_text(json.dumps(card))


def test_render_zoo_table_formats_each_family_and_shows_latency_only_when_measured(tmp_path):
    from keras_attn import pretrained

    _write_card(tmp_path, "a_sr", "sr", {"psnr_y_db": 30.123, "gain_over_bicubic_db": 1.5})
    _write_card(tmp_path, "b_cls", "classifier", {"accuracy": 0.98765})
    aligner = {
        "mean_corner_error_px": 5.0,
        "median_corner_error_px": 0.8155,
        "over_10px_percent": 4.0,
        "auc_5px": 0.755025,
    }
    _write_card(tmp_path, "c_al", "aligner", aligner)
    rows = pretrained.render_zoo_table(root=tmp_path).splitlines()
    assert rows[0] == "| model | task | params | held-out metric | size (MB) |"
    sr_row = "| `a_sr` | sr task | 1,234 | PSNR-Y 30.12 dB (+1.50 dB over bicubic) | 2.50 |"
    assert rows[2] == sr_row
    assert "| accuracy 98.77 % |" in rows[3]
    assert "median corner error 0.82 px, 4.0 % over 10 px, AUC@5 0.755; mean 5.00 px" in rows[4]

    aligner["tflite"] = {"model.tflite": {"ms_per_pair": 60.38}}
    (tmp_path / "c_al" / "card.json").unlink()
    (tmp_path / "c_al").rmdir()
    _write_card(tmp_path, "c_al", "aligner", aligner)
    rows = pretrained.render_zoo_table(root=tmp_path).splitlines()
    assert rows[0] == "| model | task | params | held-out metric | TFLite fp32 (ms) | size (MB) |"
    assert rows[2].endswith("| - | 2.50 |") and rows[4].endswith("| 60.4 | 2.50 |")
