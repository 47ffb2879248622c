"""Learning benchmark: do the shipped defaults learn, seed after seed?

CartPole-v1: with the shipped defaults, how many of 10 seeds reach a greedy evaluation mean
return >= 475 within 50,000 env steps. LunarLander-v3: with the shipped LunarLander preset, the
median over 5 seeds of the final greedy evaluation after 300,000 env steps (target >= 200).
MinAtar, with the MinAtar preset (the MinAtar paper's DQN), against the paper's DQN curves:
Breakout-v0, 500,000 env steps, how many of 5 seeds end with a greedy evaluation of 5 or more
(published: about 8.3); SpaceInvaders-v0, 300,000 env steps, the median final evaluation of
5 seeds (target >= 15; published: about 22.6).

    .venv/bin/python -m benchmarks.bench_learning --env CartPole-v1
    .venv/bin/python -m benchmarks.bench_learning --env LunarLander-v3
    .venv/bin/python -m benchmarks.bench_learning --env MinAtar/Breakout-v0
    .venv/bin/python -m benchmarks.bench_learning --env MinAtar/SpaceInvaders-v0

Seeds train as one group (the same per-seed results as training each alone). With
`--processes N` the seeds are split into N groups trained side by side, one process and one core
each; a seed's figures are the same either way, only the wall time changes. Per-seed figures go
to a Markdown table on stdout and to JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dqn_agent import Budget, EvalSettings, Progress, TrialSpec, default_config, train_group

TARGETS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"seeds": 10, "env_steps": 50_000, "threshold": 475.0, "eval_every": 2_500},
    "LunarLander-v3": {"seeds": 5, "env_steps": 300_000, "threshold": 200.0, "eval_every": 25_000},
    "MinAtar/Breakout-v0": {
        "seeds": 5,
        "env_steps": 500_000,
        "threshold": 5.0,
        "eval_every": 25_000,
    },
    "MinAtar/SpaceInvaders-v0": {
        "seeds": 5,
        "env_steps": 300_000,
        "threshold": 15.0,
        "eval_every": 25_000,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(TARGETS), default="CartPole-v1")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the target's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--processes", type=int, default=1, help="split the seeds over this many processes"
    )
    args = parser.parse_args()

    target = TARGETS[args.env]
    n_seeds = args.seeds or target["seeds"]
    torch.set_num_threads(1)
    specs = [
        TrialSpec(
            env_id=args.env,
            agent=default_config(args.env),
            seed=seed,
            budget=Budget(env_steps=target["env_steps"]),
            eval=EvalSettings(every_steps=target["eval_every"], episodes=10),
        )
        for seed in range(n_seeds)
    ]
    start = time.perf_counter()
    n_processes = max(1, min(args.processes, n_seeds))
    chunks = [specs[i::n_processes] for i in range(n_processes)]
    if n_processes == 1:
        evaluations = _train(specs)
    else:
        with multiprocessing.get_context("spawn").Pool(n_processes) as pool:
            evaluations = [pair for part in pool.map(_train, chunks) for pair in part]
    evaluations.sort(key=lambda pair: pair[0])
    wall_s = time.perf_counter() - start

    threshold = target["threshold"]
    rows: list[dict[str, Any]] = []
    for seed, evals in evaluations:
        reached = evals.loc[evals["eval_return_mean"] >= threshold, "env_step"]
        rows.append(
            {
                "seed": seed,
                "best_eval": float(evals["eval_return_mean"].max()),
                "final_eval": float(evals["eval_return_mean"].iloc[-1]),
                "first_step_at_threshold": int(reached.iloc[0]) if len(reached) else None,
            }
        )
    finals = [float(r["final_eval"]) for r in rows]
    record = {
        "env_id": args.env,
        "agent": specs[0].agent.to_dict(),
        "env_steps": target["env_steps"],
        "threshold": threshold,
        "seeds": rows,
        "n_reached_threshold": sum(r["first_step_at_threshold"] is not None for r in rows),
        "n_final_at_threshold": sum(r["final_eval"] >= threshold for r in rows),
        "median_final_eval": statistics.median(finals),
        "wall_s": wall_s,
        "host": platform.node(),
        "torch": torch.__version__,
        "processes": n_processes,
        "command": f"python -m benchmarks.bench_learning --env {args.env}"
        + (f" --processes {n_processes}" if n_processes > 1 else ""),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"learning_{args.env.replace('/', '_')}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")

    lines = [
        f"## {args.env}: {n_seeds} seeds, {target['env_steps']:,} env steps, {wall_s:.0f} s"
        + (f" ({n_processes} processes side by side)" if n_processes > 1 else ""),
        "",
        f"Command: `{record['command']}`; torch {record['torch']}.",
        "",
        "| seed | best eval | final eval | first env step with eval >= threshold |",
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        first = r["first_step_at_threshold"]
        lines.append(
            f"| {r['seed']} | {r['best_eval']:.1f} | {r['final_eval']:.1f} | "
            f"{'never' if first is None else f'{first:,}'} |"
        )
    lines += [
        "",
        f"reached {threshold:g}: {record['n_reached_threshold']} of {n_seeds}; "
        f"final eval >= {threshold:g}: {record['n_final_at_threshold']} of {n_seeds}; "
        f"median final eval {record['median_final_eval']:.1f}",
    ]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines) + f"\nwritten to {path} and {path.with_suffix('.md')}")


def _train(specs: list[TrialSpec]) -> list[tuple[int, pd.DataFrame]]:
    """Train `specs` as one group in this process; each seed with its evaluations table."""
    torch.set_num_threads(1)
    results = train_group(specs, progress=_report)
    return [(result.spec.seed, result.evals) for result in results]


def _report(progress: Progress) -> None:
    """A line every 25,000 env steps, for runs that take hours."""
    if progress.env_step % 25_000 == 0:
        print(
            f"env step {progress.env_step:,}: last eval {progress.last_eval_return}",
            flush=True,
        )


if __name__ == "__main__":
    main()
