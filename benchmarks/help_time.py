"""`dzops --help` must stay under 0.3 s: its time, and its ratio to a bare Typer program, same run.

Runs each command N times (default 15) and prints the median wall time and the median CPU time
(user + system of the child, which a loaded machine inflates far less than wall time):

  * `dzops --help` and `dzops provision-wan --help` (the console script of this venv)
  * baseline: `python -c "import typer"` (the floor of any Typer CLI)

Usage: .venv/bin/python benchmarks/help_time.py [-n 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.3
DZOPS = str(Path(sys.executable).parent / "dzops")


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of running argv."""
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    runs = parser.parse_args().runs
    baseline = measure([sys.executable, "-c", "import typer"], runs)
    print(f"{'command':<34} {'wall s':>8} {'cpu s':>8} {'wall/baseline':>14}")
    floor = 'python -c "import typer"'
    print(f"{floor:<34} {baseline[0]:8.3f} {baseline[1]:8.3f} {1.0:14.2f}")
    worst = 0.0
    for argv in ([DZOPS, "--help"], [DZOPS, "provision-wan", "--help"]):
        wall, cpu = measure(argv, runs)
        worst = max(worst, wall)
        name = "dzops " + " ".join(argv[1:])
        print(f"{name:<34} {wall:8.3f} {cpu:8.3f} {wall / baseline[0]:14.2f}")
    print(f"target: < {TARGET} s wall on an idle machine; {'met' if worst < TARGET else 'NOT met'} in this run "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
