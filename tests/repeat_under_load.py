"""Run test files many times in a row while both cores are busy, to show that they do not race.

    .venv/bin/python -m tests.repeat_under_load --runs 20 tests/test_sweeps_faults.py

Starts `--load` busy processes (default: one per core) that spin for the whole run, then runs
pytest on the given files (slow tests included) `--runs` times, stopping at the first failure.
The machine's load average is sampled after each run. The record goes to
benchmarks/results/repeat_under_load.{md,json}: runs passed, seconds each, load averages, and the
command. Where the machine is busy already (a long benchmark), `--load 0` adds nothing and the
record says how loaded it was.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.records import save


def _spin(stop: Any) -> None:
    """Keep one core busy until `stop` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1_103_515_245 + 12_345) % 2_147_483_648


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="test files to run")
    parser.add_argument("--runs", type=int, default=20, help="runs in a row (default: 20)")
    parser.add_argument(
        "--load", type=int, default=os.cpu_count() or 2, help="busy processes (default: cores)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--note", default="", help="what else loaded the machine, for the record")
    args = parser.parse_args()

    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.load)]
    for spinner in spinners:
        spinner.start()
    runs: list[dict[str, Any]] = []
    try:
        for run in range(1, args.runs + 1):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.files],
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - start
            last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            runs.append(
                {
                    "run": run,
                    "passed": done.returncode == 0,
                    "seconds": round(seconds, 1),
                    "load_average_1min": round(os.getloadavg()[0], 2),
                    "pytest": last,
                }
            )
            print(f"run {run}: {last} ({seconds:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
            if done.returncode != 0:
                print(done.stdout[-5000:], done.stderr[-2000:], sep="\n")
                break
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()

    passed = sum(r["passed"] for r in runs)
    command = (
        "python -m tests.repeat_under_load "
        + (f"--load {args.load} " if args.load != (os.cpu_count() or 2) else "")
        + f"--runs {args.runs} {' '.join(args.files)}"
    )
    record = {
        "files": args.files,
        "runs": runs,
        "passed_in_a_row": passed,
        "note": args.note,
        "all_passed": passed == args.runs,
        "busy_processes_added": args.load,
        "cores": os.cpu_count(),
        "host": platform.node(),
        "command": command,
    }
    lines = [
        f"## {', '.join(args.files)}: {passed} of {args.runs} runs passed in a row",
        "",
        f"Command: `{command}`; {args.load} busy process(es) added on {os.cpu_count()} cores.",
        *(["", args.note] if args.note else []),
        "",
        "| run | result | seconds | load average (1 min) after |",
        "|---:|---|---:|---:|",
        *(
            f"| {r['run']} | {r['pytest']} | {r['seconds']:.0f} | {r['load_average_1min']:.1f} |"
            for r in runs
        ),
    ]
    save(args.out, "repeat_under_load", record, "\n".join(lines) + "\n")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
