"""Plan benchmark: does the sweep planner's grouping beat the alternatives, measured?

The planner (`sweeps.plan.balanced_units`) chooses how to cut the seeds of each configuration
into groups from a cost model: a fixed overhead per env step of a group plus each agent's
matrix products at a fixed rate (`GROUP_STEP_OVERHEAD_S`, `MATMUL_FLOP_PER_S`). This benchmark
trains the course sweep (sweeps/specs/network_sizes.yaml, shorter trials) or a given spec on every
core, one process per core, under several groupings: the planner's, every configuration whole,
and the costliest configuration cut in two at several points. The groupings alternate in each
round, so that the machine's drift falls on all of them alike (each wall time includes the
process pool's start and every group's 300-step warm-up). It reports each grouping's wall
time beside the model's estimate, and refits the model's two constants (least squares) to all
the group times measured, so that the constants in `sweeps/plan.py` can be checked.

    .venv/bin/python -m benchmarks.bench_plans                     # 15,000 steps, 2 rounds
    .venv/bin/python -m benchmarks.bench_plans --steps 5000 --rounds 1
    .venv/bin/python -m benchmarks.bench_plans --spec sweeps/specs/demo.yaml --rounds 3

Writes JSON and a Markdown table to benchmarks/results/plans.{json,md}, or with `--spec` to
plans_<name>.{json,md}: any spec whose configurations differ in their hidden sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from benchmarks import records
from benchmarks.bench_speed import reference_spec, size_text, unit_rate
from sweeps import plan
from sweeps.plan import Unit, flop_per_agent_step, make_plan, makespan, unit_cost
from sweeps.spec import SweepSpec, parse_spec


def sweep_spec(path: Path | None, steps: int | None) -> SweepSpec:
    """The spec at `path` (by default the course sweep, 15,000 steps), `steps` per trial if set."""
    if path is None:
        return parse_spec(json.dumps(reference_spec(steps or 15_000)), check_env=False)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if steps is not None:
        document["budget"] = {"env_steps": steps}
    spec = parse_spec(json.dumps(document), source=str(path))  # JSON is YAML
    sizes = [point.agent.hidden_sizes for point in spec.configs]
    if spec.budget.env_steps is None or len(set(sizes)) != len(sizes):
        raise SystemExit(
            f"{path}: bench_plans needs a budget in env_steps and configurations that differ in "
            "hidden_sizes (it tells groups apart by them)"
        )
    return spec


def groupings(spec: SweepSpec, workers: int) -> dict[str, list[Unit]]:
    """Every configuration whole (first), the costliest cut in two at a few points, and the
    planner's grouping, named after whichever of the others it equals; costliest unit first."""
    whole = list(make_plan(spec, group_size=len(spec.seeds)).units)
    costliest = max(whole, key=unit_cost)
    others = [unit for unit in whole if unit != costliest]
    n = len(costliest)
    candidates = {"whole": whole}
    for k in sorted({n - 1, (3 * n + 4) // 5, (n + 1) // 2}, reverse=True):  # 9+1, 6+4, 5+5
        if 0 < k < n:
            candidates[f"{k}+{n - k}"] = [costliest[:k], costliest[k:], *others]
    candidates["planned"] = list(make_plan(spec, group_size=None, capacity=workers).units)
    out: dict[str, list[Unit]] = {}
    for name, units in candidates.items():
        twin = next(
            (seen for seen in out if sorted(_shape(out[seen])) == sorted(_shape(units))), None
        )
        if twin is None:
            out[name] = sorted(units, key=unit_cost, reverse=True)
        else:  # the same grouping under a second name
            out = {(f"{seen} = {name}" if seen == twin else seen): u for seen, u in out.items()}
    return out


def _shape(units: list[Unit]) -> list[tuple[str, int]]:
    return [(size_text(unit[0].agent.hidden_sizes), len(unit)) for unit in units]


def run_grouping(units: list[Unit], workers: int) -> dict[str, Any]:
    """Train `units` one process per core, costliest first, as the runner submits them."""
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(unit_rate, units))
    return {"wall_s": time.perf_counter() - start, "units": done}


def fit_constants(runs: list[dict[str, Any]], flop: dict[str, float]) -> dict[str, float]:
    """Least-squares overhead and matmul rate of `unit_cost`'s model, from every group time."""
    rows = [u for run in runs for u in run["units"]]
    design = np.array([[1.0, u["n_seeds"] * flop[u["config"]]] for u in rows])
    per_step = np.array([u["wall_s"] / u["steps"] for u in rows])
    (overhead, seconds_per_flop), *_ = np.linalg.lstsq(design, per_step, rcond=None)
    predicted = design @ np.array([overhead, seconds_per_flop])
    error = float(np.median(np.abs(predicted - per_step) / per_step))
    return {
        "overhead_s": float(overhead),
        "matmul_flop_per_s": float(1 / seconds_per_flop),
        "median_relative_error": error,
    }


def model_flop(units: list[Unit]) -> dict[str, float]:
    """Per configuration, the FLOPs per agent-step that the planner's model counts."""
    return {size_text(u[0].agent.hidden_sizes): flop_per_agent_step(u[0].agent) for u in units}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, help="a sweep spec to plan and train (default: the course sweep)"
    )
    parser.add_argument("--steps", type=int, help="env steps per trial (course default: 15,000)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--render", type=Path, metavar="JSON", help="only redo the table")
    args = parser.parse_args()
    if args.render is not None:
        args.render.with_suffix(".md").write_text(markdown(json.loads(args.render.read_text())))
        return
    workers = os.cpu_count() or 1
    spec = sweep_spec(args.spec, args.steps)
    steps = spec.budget.env_steps or 0
    layouts = groupings(spec, workers)
    record: dict[str, Any] = {
        "host": platform.node(),
        "cpus": workers,
        "torch": torch.__version__,
        "command": "python -m benchmarks.bench_plans " + " ".join(sys.argv[1:]),
        "sweep": "the course sweep" if args.spec is None else f"{args.spec} ({spec.name})",
        "steps_per_trial": steps,
        "constants": {
            "overhead_s": plan.GROUP_STEP_OVERHEAD_S,
            "matmul_flop_per_s": plan.MATMUL_FLOP_PER_S,
            "cut_gain_needed": plan.CUT_GAIN_NEEDED,
        },
        "groupings": {
            name: {
                "groups": _shape(units),
                "estimate_s": makespan(units, workers) * steps,
                "runs": [],
            }
            for name, units in layouts.items()
        },
    }
    for r in range(args.rounds):
        for name, units in layouts.items():
            run = run_grouping(units, workers)
            record["groupings"][name]["runs"].append(run)
            print(f"round {r} {name}: {run['wall_s']:.1f} s", flush=True)
    for entry in record["groupings"].values():
        entry["median_wall_s"] = statistics.median(run["wall_s"] for run in entry["runs"])
    all_runs = [run for entry in record["groupings"].values() for run in entry["runs"]]
    record["fit"] = fit_constants(all_runs, model_flop(next(iter(layouts.values()))))
    stem = "plans" if args.spec is None else f"plans_{spec.name}"
    records.save(args.out, stem, record, markdown(record))
    print(markdown(record))


def _core_s(run: dict[str, Any]) -> float:
    """The core-seconds a run's groups took: the cost of a grouping on a shared cluster."""
    return float(sum(unit["wall_s"] for unit in run["units"]))


def markdown(record: dict[str, Any]) -> str:
    steps, workers = record["steps_per_trial"], record["cpus"]
    constants, fit = record["constants"], record["fit"]
    lines = [
        f"# Sweep plans compared: {record.get('sweep', 'the course sweep')} on {workers} cores",
        "",
        f"Command: `{record['command'].strip()}`; torch {record['torch']}; "
        f"{steps:,} env steps per trial, trained directly, one process per core.",
        "",
        "Groups are (hidden sizes, seeds), started costliest first. The estimate is the "
        "planner's model (`sweeps/plan.py`); measured wall times are per round, the groupings "
        "alternating within each round, and each is compared with the whole grouping's in the "
        "same round, minutes apart, so that the machine's drift mostly cancels. Core seconds "
        "add up the groups' own times (what a shared cluster would bill).",
        "",
        "| grouping | groups | estimate s | measured s | median s | vs whole, per round | median "
        "| core s, median |",
        "|---|---|---:|---|---:|---|---:|---:|",
    ]
    whole = next(iter(record["groupings"].values()))["runs"]  # every group whole
    n_groups = sum(len(run["units"]) for e in record["groupings"].values() for run in e["runs"])
    for name, entry in record["groupings"].items():
        groups = ", ".join(f"{c} x{n}" for c, n in entry["groups"])
        runs = ", ".join(f"{run['wall_s']:.1f}" for run in entry["runs"])
        core_s = statistics.median(map(_core_s, entry["runs"]))
        ratios = [
            run["wall_s"] / base["wall_s"] for run, base in zip(entry["runs"], whole, strict=True)
        ]
        lines.append(
            f"| {name} | {groups} | {entry['estimate_s']:.1f} | {runs} | "
            f"{entry['median_wall_s']:.1f} | {', '.join(f'{r:.2f}' for r in ratios)} | "
            f"{statistics.median(ratios):.2f} | {core_s:.0f} |"
        )
    lines += [
        "",
        f"Model constants in use: overhead {constants['overhead_s'] * 1e3:.2f} ms per group "
        f"env step, matmul {constants['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s; a cut must "
        f"shorten the estimate by {constants['cut_gain_needed']:.0%}.",
        f"Refitted to the {n_groups} group times above: overhead "
        f"{fit['overhead_s'] * 1e3:.2f} ms, matmul {fit['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s; "
        f"median error of the refitted model {fit['median_relative_error']:.0%} per group.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
