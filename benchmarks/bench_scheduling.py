"""Scheduling benchmark: what the sweep runner costs on top of training.

1. Overhead per trial: a sweep of 100 trivial trials (CartPole-v1, 10 env steps, no gradient
   step, one evaluation episode at steps 0 and 10), through the whole runner: Ray tasks, results
   shipped back, four files written per trial. Beside it, 100 empty Ray tasks (the floor that
   Ray alone sets) and the same trivial trials run in this process without Ray or files (the
   agent's own set-up per trial: making envs and networks).
2. Idle fraction of the smoke sweep (sweeps/specs/smoke.yaml): the share of the workers' time not
   spent inside training, 1 - sum(trial wall_s) / (sweep wall x workers). A trial's wall_s counts
   from its first evaluation to its last step, so the rest is worker start-up (imports), env and
   network set-up, scheduling, transfer and writing results.

Each part runs on a fresh local Ray instance with all this machine's cores (cold workers, as a
user's `dqn-sweep run` has them); Ray's own start-up is timed apart and not counted.

    .venv/bin/python -m benchmarks.bench_scheduling

Prints a Markdown table and writes JSON to benchmarks/results/scheduling.json.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from sweeps.plan import expand, machine_cpus
from sweeps.runner import RunOptions, run_sweep
from sweeps.spec import load_spec, parse_spec
from sweeps.task import run_unit

TRIVIAL = """\
name: trivial
env: CartPole-v1
seeds: {seeds}
budget: {{env_steps: 10}}
eval: {{every_steps: 10, episodes: 1}}
agent: {{hidden_sizes: [16], learning_starts: 1000}}
grid:
  lr: [0.001, 0.002]
"""

SMOKE = Path(__file__).parents[1] / "sweeps" / "specs" / "smoke.yaml"


def _start_ray(cpus: int) -> float:
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return time.perf_counter() - start


def _empty() -> None:
    return None


def ray_floor(n_tasks: int, cpus: int) -> dict[str, float]:
    """Wall time of `n_tasks` empty tasks of 1 CPU each: what Ray alone costs per task."""
    ray_start_s = _start_ray(cpus)
    task = ray.remote(num_cpus=1)(_empty)
    start = time.perf_counter()
    ray.get([task.remote() for _ in range(n_tasks)])
    wall = time.perf_counter() - start
    ray.shutdown()
    return {"ray_start_s": ray_start_s, "wall_s": wall, "per_task_ms": 1000 * wall / n_tasks}


def in_process(text: str, n_trials: int) -> dict[str, float]:
    """The same trivial trials run one after another in this process: no Ray, no files.

    What a trial costs outside its timed training here (env and network set-up) is not the
    runner's doing; the sweep's overhead beyond it is.
    """
    spec = parse_spec(text, source="trivial.yaml")
    trials = expand(spec)[:n_trials]
    start = time.perf_counter()
    outcomes = [o for trial in trials for o in run_unit([trial], 1)]
    wall = time.perf_counter() - start
    trained = sum(o.wall_s for o in outcomes)
    return {
        "trials": len(trials),
        "wall_s": wall,
        "sum_trial_wall_s": trained,
        "per_trial_overhead_ms": 1000 * (wall - trained) / len(trials),
    }


def sweep_figures(text: str | None, spec_path: Path | None, cpus: int) -> dict[str, float]:
    """Run one sweep on a fresh Ray; wall time, summed trial time and the idle fraction."""
    spec = parse_spec(text, source="trivial.yaml") if text else load_spec(spec_path or SMOKE)
    ray_start_s = _start_ray(cpus)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        options = RunOptions(out=Path(out), quiet=True, stream=io.StringIO(), command=["bench"])
        report = run_sweep(spec, options)
        wall = time.perf_counter() - start
    ray.shutdown()
    assert report.exit_code == 0 and len(report.outcomes) == spec.n_trials
    workers = min(cpus / spec.resources.cpus_per_trial, spec.n_trials)
    trained = sum(o.wall_s for o in report.outcomes)
    return {
        "trials": spec.n_trials,
        "workers": workers,
        "ray_start_s": ray_start_s,
        "wall_s": wall,
        "sum_trial_wall_s": trained,
        "per_trial_overhead_ms": 1000 * (wall * workers - trained) / spec.n_trials,
        "idle_fraction": 1 - trained / (wall * workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trivial trials (even)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cpus = machine_cpus()
    load_before = os.getloadavg()[0]  # other work on the machine inflates every figure

    floor = ray_floor(args.trials, cpus)
    alone = in_process(TRIVIAL.format(seeds=args.trials // 2), args.trials)
    trivial = sweep_figures(TRIVIAL.format(seeds=args.trials // 2), None, cpus)
    smoke = sweep_figures(None, SMOKE, cpus)

    print(f"Scheduling on {cpus} CPU(s), {platform.processor() or platform.machine()}\n")
    print("| measure | trials | wall s | sum of trial wall s | overhead / trial | idle |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| {args.trials} empty Ray tasks | {args.trials} | {floor['wall_s']:.2f} | - | "
        f"{floor['per_task_ms']:.1f} ms | - |"
    )
    rows = (
        ("trivial trials, in process, no Ray", alone),
        ("trivial trials (10 env steps), sweep", trivial),
        ("smoke.yaml, sweep", smoke),
    )
    for name, figures in rows:
        idle = f"{figures['idle_fraction']:.0%}" if "idle_fraction" in figures else "-"
        print(
            f"| {name} | {figures['trials']} | {figures['wall_s']:.2f} | "
            f"{figures['sum_trial_wall_s']:.2f} | {figures['per_trial_overhead_ms']:.0f} ms | "
            f"{idle} |"
        )
    load = (load_before, os.getloadavg()[0])
    print(
        f"\nRay start-up (not counted above): {smoke['ray_start_s']:.1f} s. Overhead per trial = "
        "(wall x workers - sum of trial wall) / trials. Load average (1 min) before and after: "
        f"{load[0]:.1f}, {load[1]:.1f}."
    )

    args.out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "command": "python -m benchmarks.bench_scheduling",
        "cpus": cpus,
        "platform": platform.platform(),
        "ray": ray.__version__,
        "load_average_1min": {"before": load[0], "after": load[1]},
        "empty_ray_tasks": floor,
        "trivial_in_process": alone,
        "trivial_sweep": trivial,
        "smoke_sweep": smoke,
    }
    path = args.out / "scheduling.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
