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
LIST = pathlib.Path(__file__).with_name("slow_tests.txt")
LINE = re.compile(r"\s*([\d.]+)s (call|setup|teardown)\s+(\S+::\S+)")


def slow_tests(log: str, threshold: float = THRESHOLD_S) -> list[str]:
    seconds = collections.Counter()
    for line in log.splitlines():
        match = LINE.match(line)
        if match:
            seconds[match.group(3)] += float(match.group(1))
    return sorted(node for node, total in seconds.items() if total > threshold)


def main(argv=None) -> int:
    (path,) = argv or sys.argv[1:]
    nodes = slow_tests(pathlib.Path(path).read_text())
    header = (
        f"# Tests slower than {THRESHOLD_S:g} s (setup included), left out by `make test-fast`;\n"
        "# written by `python -m tests.update_slow_tests DURATIONS_LOG` (see there).\n"
    )
    LIST.write_text(header + "".join(f"{node}\n" for node in nodes))
    print(f"wrote {len(nodes)} tests to {LIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
