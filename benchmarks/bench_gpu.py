"""GPU benchmark: issue 5's two targets for one GPU, measured on this machine's first GPU.

1. The reference workload (the course's network-size sweep: 40 trials of 50,000 env steps; see
   `bench_speed`) trained on one GPU, wall time from start to the last result:
   - through `dqn-sweep run` on a local Ray instance, the spec given `gpus_per_trial: 0.25`
     (four tasks share the GPU), grouped as the runner plans;
   - directly, each configuration's group of 10 seeds in its own process, all four at once.
   Target: at most 60 s.
2. Groups of K seeds of the [64, 64] configuration, K = 10, 100, 1,000, each trained alone on
   the GPU in a fresh process, after a short warm-up: the training's wall time. Target: 1,000
   seeds in at most twice the time of 10.

    .venv/bin/python -m benchmarks.bench_gpu            # on a machine with a CUDA GPU
    .venv/bin/python -m benchmarks.bench_gpu --device cpu --steps 300 --ks 2,4 --out /tmp/g
                                                        # the plumbing alone, anywhere

Writes JSON and a Markdown table to benchmarks/results/gpu.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks import records
from benchmarks.bench_speed import SIZES, group_specs, reference_spec, size_text
from dqn_agent import TrialSpec, train_group

GPUS_PER_TASK = 0.25
"""Each Ray task's share of the GPU: four run on it at once, one per configuration."""


def _on(device: str, specs: list[TrialSpec]) -> list[TrialSpec]:
    return [dataclasses.replace(spec, device=device) for spec in specs]


def group_wall(
    sizes: tuple[int, ...], n_seeds: int, steps: int, device: str, warm_up: bool
) -> dict[str, Any]:
    """Train one group of `n_seeds` seeds on `device`; seconds the training took. With
    `warm_up`, a 300-step run of the same group first takes the device's start-up (context,
    libraries, kernels loaded on first use) out of the timing."""
    torch.set_num_threads(1)
    if warm_up:
        train_group(_on(device, group_specs(sizes, range(n_seeds), 300)))
    specs = _on(device, group_specs(sizes, range(n_seeds), steps))
    start = time.perf_counter()
    train_group(specs)
    wall = time.perf_counter() - start
    return {"config": size_text(sizes), "n_seeds": n_seeds, "steps": steps, "train_s": wall}


def _pool(workers: int) -> ProcessPoolExecutor:
    # CUDA cannot be used in a process forked from one that has used it: start fresh ones.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def reference_direct(steps: int, device: str) -> dict[str, Any]:
    """The four configurations' groups of 10 seeds, one process each, all at once, timed from
    the processes' start: what a user waits for."""
    n = len(SIZES)
    start = time.perf_counter()
    with _pool(n) as pool:
        groups = list(pool.map(group_wall, SIZES, [10] * n, [steps] * n, [device] * n, [False] * n))
    return {"wall_s": time.perf_counter() - start, "groups": groups}


def reference_ray(steps: int, device: str) -> dict[str, Any]:
    """The reference sweep through `dqn-sweep run` on a local Ray instance."""
    spec = reference_spec(steps)
    if device != "cpu":
        spec["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": GPUS_PER_TASK}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.yaml"
        path.write_text(json.dumps(spec))  # JSON is YAML
        out = Path(tmp) / "results"
        command = [str(Path(sys.executable).with_name("dqn-sweep")), "run", str(path)]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "--out", str(out)], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"error": done.stderr[-2000:], "command": " ".join(command)}
        manifest = json.loads((out / "reference/manifest.json").read_text())
    return {"wall_s": wall, "resources": spec["resources"], "units": manifest["runs"][-1]["units"]}


def seed_scaling(ks: list[int], steps: int, device: str) -> list[dict[str, Any]]:
    """[64, 64] groups of each size in `ks`, one at a time, each in a fresh process, warmed up."""
    rows = []
    for k in ks:
        with _pool(1) as pool:
            rows.append(pool.submit(group_wall, (64, 64), k, steps, device, True).result())
        print(f"[64, 64] x {k}: {rows[-1]['train_s']:.1f} s", flush=True)
    return rows


def markdown(record: dict[str, Any]) -> str:
    direct, ray = record["reference_direct"], record["reference_ray"]
    lines = [
        f"# Speed on one GPU: {record['device_name']}",
        "",
        f"Command: `{record['command']}`; torch {record['torch']}; "
        f"{record['steps']:,} env steps per trial.",
        "",
        "The reference sweep (40 trials), wall seconds from start to the last result "
        "(target: at most 60):",
        "",
        "| run | wall s |",
        "|---|---:|",
        f"| direct: the four groups of 10 in four processes at once | {direct['wall_s']:.1f} |",
    ]
    if "skipped" in ray:
        lines.append("| `dqn-sweep run` on Ray | not run (--skip-ray) |")
    elif "error" in ray:
        lines.append("| `dqn-sweep run` on Ray | failed: see the JSON record |")
    else:
        share = ray["resources"].get("gpus_per_trial", 0)
        lines.append(f"| `dqn-sweep run` on Ray, {share:g} GPU per task | {ray['wall_s']:.1f} |")
    lines += ["", "Training time of each direct group:", "", "| configuration | train s |"]
    lines += ["|---|---:|"]
    lines += [f"| {g['config']} | {g['train_s']:.1f} |" for g in direct["groups"]]
    scaling = record["seed_scaling"]
    base = scaling[0]["train_s"]
    lines += [
        "",
        f"[64, 64] groups trained alone (target: the largest in at most twice the time of "
        f"{scaling[0]['n_seeds']}):",
        "",
        "| seeds | train s | vs the first |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['n_seeds']:,} | {r['train_s']:.1f} | {r['train_s'] / base:.2f}x |" for r in scaling
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="'cuda' (default) or 'cpu' to try it")
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per trial")
    parser.add_argument("--ks", default="10,100,1000", help="[64, 64] group sizes to time")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no GPU here")
    record: dict[str, Any] = {
        "host": platform.node(),
        "device_name": "CPU"
        if args.device == "cpu"
        else torch.cuda.get_device_name(torch.device(args.device)),
        "torch": torch.__version__,
        "command": "python -m benchmarks.bench_gpu " + " ".join(sys.argv[1:]),
        "steps": args.steps,
    }
    record["reference_direct"] = reference_direct(args.steps, args.device)
    print(f"direct: {record['reference_direct']['wall_s']:.1f} s", flush=True)
    if args.skip_ray:
        record["reference_ray"] = {"skipped": True}
    else:
        record["reference_ray"] = reference_ray(args.steps, args.device)
        print(f"ray: {record['reference_ray'].get('wall_s', 'failed')} s", flush=True)
    ks = [int(k) for k in args.ks.split(",")]
    record["seed_scaling"] = seed_scaling(ks, args.steps, args.device)
    records.save(args.out, "gpu", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
