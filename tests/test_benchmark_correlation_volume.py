"""benchmarks/correlation_volume.py on small cases: the matmul formulation gives the layer's
outputs, and the table has a timed row per formulation and case."""

import pathlib

import numpy as np

from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_benchmark():
    return load_script(REPO / "benchmarks" / "correlation_volume.py", "correlation_volume")


def test_the_two_formulations_give_the_same_outputs():
    benchmark = load_benchmark()
    rng = np.random.default_rng(0)
    # a radius wider than the grid too: the band must still read the padded cells
    for radius, shape in [(1, (2, 5, 7, 3)), (3, (2, 3, 3, 8)), (2, (1, 9, 4, 16))]:
        fixed, moving = (rng.normal(size=shape).astype("float32") for _ in range(2))
        a = benchmark.PerOffset(radius=radius)(fixed, moving, return_attention_scores=True)
        b = benchmark.PerRow(radius=radius)(fixed, moving, return_attention_scores=True)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)


def test_table_has_a_row_per_formulation_and_case(capsys):
    argv = ["--case", "2:2,6,5,4", "--case", "3:1,4,7,8", "--rounds", "1", "--repeats", "1"]
    assert load_benchmark().main([*argv, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| 2 |", "| 3 |"))]
    assert len(rows) == 4
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert int(cells[3]) > 0 and float(cells[4]) < 1e-4
        assert float(cells[5]) > 0 and float(cells[6]) > 0
    # the layer slices per offset at radius 2 and multiplies rows from radius 3 on
    chosen = [row.split("|")[3].strip() for row in rows if row.rstrip().endswith("| yes |")]
    assert chosen == ["slice per offset", "matmul per row offset"]
