"""Writes `tests/slow_tests.txt`, the tests that `make test-fast` leaves out, from the output of
`python -m pytest --durations=0` (every test slower than `THRESHOLD_S`, setup included).

    .venv/bin/python -m pytest --durations=0 -p no:cacheprovider > /tmp/durations.log
    .venv/bin/python -m tests.update_slow_tests /tmp/durations.log
"""

import collections
import pathlib
import re
import sys

THRESHOLD_S = 2.0
MODULE_SETUP_S = 20.0
LIST = pathlib.Path(__file__).with_name("slow_tests.txt")
LINE = re.compile(r"\s*([\d.]+)s (call|setup|teardown)\s+(\S+::\S+)")


def slow_tests(
    log: str, threshold: float = THRESHOLD_S, module_setup: float = MODULE_SETUP_S
) -> list[str]:
    """The node ids slower than `threshold`, and the modules (a path, no `::`) whose fixture
    set-ups add up to more than `module_setup`: deselecting their slow tests alone would move
    an expensive module- or session-scoped fixture onto the next test, not out of the tier."""
    seconds, setups = collections.Counter(), collections.Counter()
    for line in log.splitlines():
        match = LINE.match(line)
        if match:
            seconds[match.group(3)] += float(match.group(1))
            if match.group(2) == "setup":
                setups[match.group(3).split("::")[0]] += float(match.group(1))
    modules = sorted(module for module, total in setups.items() if total > module_setup)
    tests = [
        node
        for node, total in seconds.items()
        if total > threshold and node.split("::")[0] not in modules
    ]
    return modules + sorted(tests)


def main(argv=None) -> int:
    (path,) = argv or sys.argv[1:]
    nodes = slow_tests(pathlib.Path(path).read_text())
    header = (
        f"# Tests slower than {THRESHOLD_S:g} s (setup included), and whole modules whose fixture\n"
        f"# set-ups take over {MODULE_SETUP_S:g} s, left out by `make test-fast`;\n"
        "# written by `python -m tests.update_slow_tests DURATIONS_LOG` (see there).\n"
    )
    LIST.write_text(header + "".join(f"{node}\n" for node in nodes))
    print(f"wrote {len(nodes)} entries (tests and modules) to {LIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
