"""How long the README's data steps take: `prepare demo`, `embed demo`, `--help`, vs targets.

    .venv/bin/python benchmarks/demo_timings.py [--repeat 1]

Runs the real commands (``tdc-harness prepare demo --force``, ``tdc-harness embed demo
--force``, ``tdc-harness --help``) as subprocesses on a fresh temporary data root and prints
wall time, CPU time (user + system of the child) and the ratio to the issue's targets:
prepare < 60 s, embed < 120 s on 2 CPU cores, --help < 1 s. CPU time is printed because
wall time on a shared machine also measures the neighbours.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"prepare": 60.0, "embed": 120.0, "help": 1.0}
COMMANDS = {
    "prepare": ["prepare", "demo", "--force"],
    "embed": ["embed", "demo", "--force"],
    "help": ["--help"],
}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one command; raises if it fails."""
    exe = Path(sys.executable).with_name("tdc-harness")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([str(exe), *argv], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'step':>8} {'wall s':>8} {'cpu s':>8} {'target s':>9} {'wall/target':>12}")
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "TDC_DATA_ROOT": root}
        for _ in range(args.repeat):
            for name, argv in COMMANDS.items():
                wall, cpu = timed(argv, env)
                ratio = wall / TARGETS[name]
                print(f"{name:>8} {wall:8.2f} {cpu:8.2f} {TARGETS[name]:9.1f} {ratio:12.2f}")


if __name__ == "__main__":
    main()
