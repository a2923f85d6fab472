import subprocess
import sys

from keras_attn import cli


def test_demo_writes_png_and_index(tmp_path):
    assert cli.main(["demo", "--output", str(tmp_path / "out")]) == 0
    png = tmp_path / "out" / "layers_on_astronaut.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    html = (tmp_path / "out" / "index.html").read_text()
    assert "layers_on_astronaut.png" in html
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_unwritable_output_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.cli", "demo", "--output", str(blocker / "sub")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    # TensorFlow 2.21 itself prints two absl/oneDNN notices to stderr on import, whatever
    # TF_CPP_MIN_LOG_LEVEL says; the CLI's own report is the one line after them.
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("keras-attn demo: error:") and "Not a directory" in last_line
    assert "Traceback" not in result.stderr


def test_help_states_defaults():
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(default: demo_output)" in result.stdout


def test_demo_files_are_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        cli.main(["demo", "--output", str(tmp_path)])
    finally:
        os.umask(old)
    for name in ("layers_on_astronaut.png", "index.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
