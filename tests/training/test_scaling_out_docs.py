"""docs/scaling_out.md's two-worker commands, run as written (the ports swapped for free ones):
both workers exit 0 with the default progress bar, each with its own --output."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.helpers import free_ports

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "scaling_out.md"


def _one_machine_block() -> str:
    text = DOC.read_text()
    start = text.index("**Try it on one machine**")
    return re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.slow
def test_the_documented_two_worker_commands_run(tmp_path):
    block = _one_machine_block()
    assert "--strategy multiworker" in block and "--output w0" in block and "--output w1" in block
    assert "--verbose" not in block  # the default progress bar, where the bug was
    for old, new in zip(re.findall(r"localhost:(\d+)", block), free_ports(2), strict=True):
        block = block.replace(f"localhost:{old}", f"localhost:{new}")
    bin_dir = pathlib.Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        ["bash", "-c", f"set -e\n{block}\nwait $!"],  # worker 0 ran in the background
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "4/4" in result.stdout  # the chief's progress bar reached the last step
    assert sorted(p.name for p in (tmp_path / "w0").iterdir()) == [
        "backup",
        "history.csv",
        "metrics.json",
        "model.keras",
    ]
    assert list((tmp_path / "w1").iterdir()) == []  # only the chief writes
