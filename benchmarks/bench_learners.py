"""The reference learner's speed as a ratio to the fused learner's, per configuration.

For each configuration of the course sweep (`sweeps/specs/network_sizes.yaml`), a group of 10
seeds trains for a fixed number of env steps with each learner, in rounds whose order
alternates, one thread, in this process. Each round's figure is the reference's wall time over
the fused learner's; the record keeps every round and their median. Both learners run the same
loop, environments, replay and evaluation, so the ratio is that of the learners' steps diluted
by what they share.

    .venv/bin/python -m benchmarks.bench_learners
    .venv/bin/python -m benchmarks.bench_learners --steps 1000 --rounds 1   # a quick look

Writes JSON and a Markdown table to benchmarks/results/learners.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import records
from benchmarks.bench_speed import COURSE, size_text
from dqn_agent import Budget, EvalSettings, TrialSpec, train_group
from dqn_agent.training import LearnerName

LEARNERS: tuple[LearnerName, ...] = ("fused", "reference")


def group_seconds(sizes: tuple[int, ...], learner: LearnerName, steps: int, seeds: int) -> float:
    """Wall seconds of `seeds` seeds of the course configuration `sizes` for `steps` env steps."""
    agent = next(p.agent for p in COURSE.configs if p.agent.hidden_sizes == sizes)
    specs = [
        TrialSpec(
            env_id=COURSE.env_id,
            agent=agent,
            seed=seed,
            budget=Budget(env_steps=steps),
            eval=EvalSettings(every_steps=steps, episodes=1),  # once at each end: little time
        )
        for seed in range(seeds)
    ]
    start = time.perf_counter()
    train_group(specs, learner=learner)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000, help="env steps per group")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per group")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    for learner in LEARNERS:  # warm-up: first calls load kernels and fill caches
        group_seconds(COURSE.configs[0].agent.hidden_sizes, learner, 300, args.seeds)
    rows: list[dict[str, Any]] = []
    for point in COURSE.configs:
        sizes = point.agent.hidden_sizes
        times: dict[str, list[float]] = {name: [] for name in LEARNERS}
        for r in range(args.rounds):
            order = LEARNERS if r % 2 == 0 else LEARNERS[::-1]
            for learner in order:
                times[learner].append(group_seconds(sizes, learner, args.steps, args.seeds))
        ratios = [
            ref / fused for ref, fused in zip(times["reference"], times["fused"], strict=True)
        ]
        row: dict[str, Any] = {
            "hidden_sizes": size_text(sizes),
            "fused_s": times["fused"],
            "reference_s": times["reference"],
            "ratios": ratios,
            "ratio_median": statistics.median(ratios),
        }
        rows.append(row)
        print(
            f"{row['hidden_sizes']:>8}: reference / fused = {row['ratio_median']:.2f}x "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})",
            flush=True,
        )

    command = " ".join(["python -m benchmarks.bench_learners", *sys.argv[1:]])
    record = {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "steps": args.steps,
        "seeds": args.seeds,
        "rounds": args.rounds,
        "configurations": rows,
    }
    lines = [
        "# Reference learner vs fused learner",
        "",
        f"`{command}` on {record['date']}: groups of {args.seeds} seeds of each course "
        f"configuration, {args.steps:,} env steps (an update every step), one thread, "
        f"{args.rounds} rounds in alternating order. Wall time of the whole training loop; "
        "ratio = reference / fused (above 1: the fused learner is faster).",
        "",
        "| hidden sizes | fused (s, median) | reference (s, median) | ratio, median | by round |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['hidden_sizes']} | {statistics.median(row['fused_s']):.1f} | "
            f"{statistics.median(row['reference_s']):.1f} | {row['ratio_median']:.2f}x | "
            + ", ".join(f"{x:.2f}" for x in row["ratios"])
            + " |"
        )
    records.save(args.out, "learners", record, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
