"""Benchmark of the analysis package: load, aggregate and plot a realistic sweep.

Builds a synthetic sweep as real Parquet in a temporary folder (by default 40 trials, 4
configurations x 10 seeds, of 100,000 env steps each, an evaluation every 1,000 steps and
CartPole-like episodes), then times separately:

- load: `load_results` (every trial's episodes and evals into tidy tables);
- aggregate: evaluation curves aligned and bootstrapped (mean and IQM), the summary table and
  the probability-of-improvement matrix, all with 2,000 resamples;
- aggregate (training episodes): the same curves from training returns on 100 env-step bins;
- plot: `render_all`, i.e. what `dqn-sweep plot` does end to end (load and aggregate again, then
  draw and write every figure as PNG and SVG).

Prints a Markdown table and writes JSON (``--json``). Run:
``.venv/bin/python benchmarks/bench_analysis.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from analysis import (
    aggregate_curves,
    align,
    improvement_matrix,
    load_results,
    per_trial_scores,
    render_all,
    summary_table,
)
from analysis.report import write_text
from analysis.synthetic import write_sweep

DEFAULT_JSON = Path("benchmarks/results/analysis.json")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=4, help="configurations (default: 4)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds each (default: 10)")
    parser.add_argument("--env-steps", type=int, default=100_000, help="budget per trial")
    parser.add_argument("--eval-every", type=int, default=1_000, help="evaluation interval")
    parser.add_argument("--resamples", type=int, default=2_000, help="bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per step (median)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    return parser.parse_args(argv)


def _time(step: Callable[[], object], repeats: int) -> dict[str, Any]:
    """Wall-clock seconds of `repeats` calls; the median is the figure to quote."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "runs_s": runs}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON."""
    args = _parse(argv)
    configs = [f"hidden_sizes={2**k}x{2**k}" for k in range(5, 5 + args.configs)]
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        start = time.perf_counter()
        folder = write_sweep(
            Path(tmp),
            "bench",
            configs=configs,
            n_seeds=args.seeds,
            env_steps=args.env_steps,
            eval_every=args.eval_every,
        )
        build_s = time.perf_counter() - start
        results = load_results(folder)

        def aggregate(metric: str) -> None:
            rng = np.random.default_rng(0)
            aligned = align(results, metric="eval" if metric == "eval" else "episode")
            aggregate_curves(aligned, rng=rng, n_resamples=args.resamples)
            if metric == "eval":
                summary_table(results, rng=rng, n_resamples=args.resamples)
                scores = per_trial_scores(results)
                improvement_matrix(scores, rng=rng, n_resamples=args.resamples)

        out = Path(tmp) / "plots"
        timings = {
            "load": _time(lambda: load_results(folder), args.repeats),
            "aggregate": _time(lambda: aggregate("eval"), args.repeats),
            "aggregate (training episodes)": _time(lambda: aggregate("episode"), args.repeats),
            "plot (render_all, png+svg)": _time(
                lambda: render_all(folder, out, n_resamples=args.resamples), args.repeats
            ),
        }
        n_files = len(list(out.iterdir()))
        size = {
            "trials": len(results.trials),
            "episode_rows": len(results.episodes),
            "eval_rows": len(results.evals),
            "parquet_bytes": sum(p.stat().st_size for p in folder.rglob("*.parquet")),
            "figure_files": n_files,
        }

    command = "python benchmarks/bench_analysis.py" + (
        " " + " ".join(sys.argv[1:]) if argv is None and len(sys.argv) > 1 else ""
    )
    report = {
        "command": command,
        "settings": {
            "configs": args.configs,
            "seeds": args.seeds,
            "env_steps": args.env_steps,
            "eval_every": args.eval_every,
            "resamples": args.resamples,
            "repeats": args.repeats,
        },
        "data": size,
        "build_synthetic_s": build_s,
        "timings": timings,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "matplotlib": matplotlib.__version__,
        },
    }
    print(
        f"{size['trials']} trials ({args.configs} configurations x {args.seeds} seeds) of "
        f"{args.env_steps:,} env steps: {size['episode_rows']:,} episode rows, "
        f"{size['eval_rows']:,} eval rows; {args.resamples:,} bootstrap resamples; "
        f"median of {args.repeats} runs\n"
    )
    print("| step | median (s) | min (s) |")
    print("| --- | ---: | ---: |")
    for step, timing in timings.items():
        print(f"| {step} | {timing['median_s']:.2f} | {timing['min_s']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.json, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
