"""Validate at the limit: the wall time and peak memory of `dqn-sweep validate` on a spec of
the largest trial count it accepts (`sweeps.spec.MAX_TRIALS`: 1,000,000 seeds of one
configuration), everything included (reading the spec, making the env, planning the tasks and
their memory, the time estimate).

    .venv/bin/python -m benchmarks.bench_validate
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import records
from sweeps.spec import MAX_TRIALS

SPEC = f"""\
name: max_trials
env: CartPole-v1
seeds: {MAX_TRIALS}
budget: {{env_steps: 1000}}
"""


CLI = "import sys; from sweeps.cli import main; sys.exit(main(sys.argv[1:]))"
"""`dqn-sweep` itself, run by this Python."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "spec.yaml"
        spec.write_text(SPEC)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CLI, "validate", str(spec)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    last_lines = done.stdout.splitlines()[-3:]
    record: dict[str, object] = {
        "command": "python -m benchmarks.bench_validate",
        "trials": MAX_TRIALS,
        "wall_s": wall_s,
        "peak_bytes": peak,
        "host": platform.node(),
        "output": last_lines,
    }
    lines = [
        "# Validate at the largest trial count",
        "",
        f"Command: `{record['command']}`. `dqn-sweep validate` on {MAX_TRIALS:,} seeds of one "
        "CartPole configuration, in a fresh process:",
        "",
        f"- wall time: {wall_s:.0f} s",
        f"- peak resident memory: {peak / 2**20:,.0f} MB",
        "",
        "Its last lines:",
        "",
        *[f"    {line}" for line in last_lines],
    ]
    records.save(args.out, "validate", record, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
