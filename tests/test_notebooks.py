"""The notebooks in notebooks/: each executes without error from a temporary folder, offline, and
the copies stored in the repository hold the outputs of one top-to-bottom run (plots included).

After changing a notebook, store it again with its outputs (offline, about a minute):
`python -m tests.test_notebooks [NAME ...]`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import tempfile

import nbformat
import pytest
from nbclient import NotebookClient

from keras_attn import pretrained

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_attention_layers",
    "02_super_resolution",
    "03_alignment",
    "04_classifier_attention",
)
CELL_TIMEOUT_S = 300


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def cells_with_images(notebook: nbformat.NotebookNode) -> list[int]:
    return [
        index
        for index, cell in enumerate(code_cells(notebook))
        if any("image/png" in output.get("data", {}) for output in cell.outputs)
    ]


def write_kernel_spec(jupyter_dir: pathlib.Path) -> None:
    """A `python3` kernel spec for this interpreter under `jupyter_dir`; with `JUPYTER_PATH`
    pointing there, it is found before any user-installed `python3` kernel."""
    kernel_dir = jupyter_dir / "kernels" / "python3"
    kernel_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))


def execute(path: pathlib.Path, workdir: pathlib.Path, **options) -> nbformat.NotebookNode:
    """Runs every cell of the notebook at `path` in a `python3` kernel started in `workdir`.

    Raises `nbclient.exceptions.CellExecutionError` (with the cell and traceback) on any error.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        **options,
    )
    client.execute()
    return notebook


# --------------------------------------------------------------------------- tests


def test_every_notebook_is_listed():
    assert sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_notebook_has_the_outputs_of_one_run(name):
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    cells = code_cells(notebook)
    assert cells, f"{name} has no code cells"
    # Executed once, top to bottom: counts 1, 2, 3, ... and every code cell shows something.
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{name} is not one run: counts {counts}"
    for index, cell in enumerate(cells, start=1):
        assert cell.outputs, f"{name}: code cell {index} was stored without outputs"
        kinds = {output.output_type for output in cell.outputs}
        assert "error" not in kinds, f"{name}: code cell {index} stored an error"
    assert cells_with_images(notebook), f"{name} stores no plot"


@pytest.mark.slow  # 10-40 s each on 2 cores: kernel start, TensorFlow import, the models
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, monkeypatch):
    workdir = tmp_path / "work"
    workdir.mkdir()
    copy = workdir / f"{name}.ipynb"
    shutil.copy(NOTEBOOK_DIR / copy.name, copy)
    write_kernel_spec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # tfds prepares the bundled datasets under the temporary folder; the shipped models are
    # found where a user's checkout has them (saved_models/ beside the keras_attn package).
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv(pretrained.ENV_VAR, raising=False)

    notebook = execute(copy, workdir)

    for index, cell in enumerate(code_cells(notebook), start=1):
        errors = [output for output in cell.outputs if output.output_type == "error"]
        assert not errors, f"{name}: code cell {index} raised {errors[0].ename}"
    # The plots come out of the same cells as in the stored copy (else that is out of date).
    assert cells_with_images(notebook) == cells_with_images(read(name))
    assert [path.name for path in workdir.iterdir()] == [copy.name]


# --------------------------------------------------------------------------- storing


def _without_volatile_parts(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drops cell metadata and the interpreter version, and joins consecutive stream outputs
    (how a cell's prints are split into messages varies from run to run)."""
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        cell.metadata = {}
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            previous = outputs[-1] if outputs else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == output.name
            ):
                previous.text += output.text
            else:
                outputs.append(output)
        cell.outputs = outputs
    return notebook


def store_outputs(names=NOTEBOOKS) -> None:
    """Executes the notebooks and writes them back into notebooks/ with their outputs.

    The bundled datasets are prepared beforehand in a temporary tfds folder (so no progress
    bars end up in the outputs), and TensorFlow's C++ log lines are kept out of the notebook
    (`capture_fd_output=False`): they carry timestamps and process ids.
    """
    from keras_attn import data

    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        write_kernel_spec(folder / "jupyter")
        os.environ["JUPYTER_PATH"] = str(folder / "jupyter")
        os.environ["TFDS_DATA_DIR"] = str(folder / "tfds")
        os.environ.pop("MPLBACKEND", None)
        data.BundledPhotos(data_dir=str(folder / "tfds")).download_and_prepare()
        data.BundledDigits(data_dir=str(folder / "tfds")).download_and_prepare()
        for name in names:
            workdir = folder / name
            workdir.mkdir()
            notebook = execute(
                NOTEBOOK_DIR / f"{name}.ipynb",
                workdir,
                record_timing=False,
                extra_arguments=["--IPKernelApp.capture_fd_output=False"],
            )
            nbformat.write(_without_volatile_parts(notebook), NOTEBOOK_DIR / f"{name}.ipynb")
            print(f"stored notebooks/{name}.ipynb")


if __name__ == "__main__":
    store_outputs(sys.argv[1:] or NOTEBOOKS)
