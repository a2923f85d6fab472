"""tests/update_slow_tests.py: which tests `make test-fast` leaves out."""

from tests.update_slow_tests import slow_tests

LOG = """
============================= slowest durations =============================
12.00s setup    tests/a.py::test_one
15.00s setup    tests/a.py::test_two
3.10s call     tests/b.py::test_slow
1.50s call     tests/b.py::test_fast
1.00s setup    tests/b.py::test_fast_setup
1.50s call     tests/b.py::test_fast_setup
0.90s call     tests/a.py::test_three
"""


def test_slow_tests_and_modules_with_costly_fixtures():
    # a.py's set-ups add up to 27 s: the whole module goes (not only its slow tests);
    # b.py: one test over 2 s, one at 2.5 s with its set-up, one at 1.5 s stays.
    assert slow_tests(LOG) == ["tests/a.py", "tests/b.py::test_fast_setup", "tests/b.py::test_slow"]
    fewer = slow_tests(LOG, module_setup=30.0)
    assert fewer[:2] == ["tests/a.py::test_one", "tests/a.py::test_two"]
