"""benchmarks/complexity.py: the equal-parameter search shared by the classifier benchmarks."""

import pathlib

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
complexity = load_script(ROOT / "benchmarks" / "complexity.py", "complexity")


def test_closest_to_budget_bisects_a_growing_count():
    calls = []

    def count(x):
        calls.append(x)
        return x * x

    assert complexity.closest_to_budget(list(range(100)), count, 50) == (7, 49)
    assert len(set(calls)) <= 9  # a bisection, not a scan of 100 candidates
    assert complexity.closest_to_budget(list(range(100)), count, 60) == (8, 64)
    assert complexity.closest_to_budget([3, 4], count, 0) == (3, 9)  # below every candidate
    assert complexity.closest_to_budget([3, 4], count, 1000) == (4, 16)  # above every one
