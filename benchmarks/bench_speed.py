"""Speed benchmark: seed-batched training against the textbook per-step DQN loop.

Everything is measured in one run on one machine, so the ratios compare like with like:

1. this core's fp32 matmul throughput (2048x256 @ 256x256, one thread): the FLOP-rate yardstick;
2. the naive textbook loop, written below (one gymnasium env, a deque of tuples as replay
   buffer, one update per env step), one trial per core, all cores busy at once;
3. the project's trainer at K = 1 (one seed), one thread;
4. the reference workload, the course's network-size sweep (hidden sizes [64], [256], [64, 64],
   [256, 256], 10 seeds each; lr 1e-3, batch 64, buffer 5000, an update every env step, hard
   target copy every 50 steps; 10 greedy evaluation episodes every 2,500 steps), in the
   groups the runner plans for this machine, one process per core ("direct"), and through the
   sweep runner on a local Ray instance ("ray");
5. paired short rounds per configuration: the naive loop, then the project's group of 10, each
   on every core at once, seconds apart, a few times; the median of the rounds' ratios;
6. how the cost of a group grows with K (1, 2, 4, ..., 64) for the [64, 64] configuration.

1 and 2 are measured both before 3-4 and after them, and the ratios use the mean: on these
shared machines the speed of a core drifts by tens of percent within minutes.

    .venv/bin/python -m benchmarks.bench_speed                  # the full benchmark
    .venv/bin/python -m benchmarks.bench_speed --steps 10000    # shorter trials

Writes JSON and a Markdown table to benchmarks/results/speed.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from benchmarks import records
from dqn_agent import AgentConfig, Budget, TrialSpec, train_group
from sweeps.plan import Unit, flop_per_agent_step, make_plan
from sweeps.spec import load_spec, parse_spec

# The reference workload is the shipped course spec itself, so the two cannot drift apart.
COURSE = load_spec(Path(__file__).resolve().parents[1] / "sweeps/specs/network_sizes.yaml")
SIZES: list[tuple[int, ...]] = [point.agent.hidden_sizes for point in COURSE.configs]
REFERENCE = COURSE.configs[0].agent  # every setting but hidden_sizes is shared


def size_text(sizes: tuple[int, ...]) -> str:
    return "x".join(map(str, sizes))


def matmul_gflops(seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of (2048, 256) @ (256, 256) on one thread, best of several timed bursts."""
    torch.set_num_threads(1)
    a, b = torch.randn(2048, 256), torch.randn(256, 256)
    flop, best = 2 * 2048 * 256 * 256, 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        best = max(best, 20 * flop / (time.perf_counter() - start))
    return best / 1e9


def cartpole_flop(sizes: tuple[int, ...], config: AgentConfig) -> float:
    """Matmul FLOPs of one CartPole agent-env-step (4 observations, 2 actions) of `config` with
    hidden layers `sizes` (see `sweeps.plan.flop_per_agent_step`)."""
    return flop_per_agent_step(dataclasses.replace(config, hidden_sizes=sizes), 4, 2)


# --- the naive textbook loop --------------------------------------------------------------------


def naive_rate(sizes: tuple[int, ...], steps: int, seed: int = 0) -> float:
    """Env steps per second of the textbook DQN loop, one thread, after a short warm-up.

    Denormals are flushed here too, as the project's trainer does (`flush_denormals`), so that
    the ratios measure batching and not that fix."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    env = gym.make("CartPole-v1")
    layers: list[nn.Module] = []
    fan_in = 4
    for width in sizes:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    q_net = nn.Sequential(*layers, nn.Linear(fan_in, 2))
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=1e-3)
    buffer: deque[tuple[Any, int, float, Any, bool]] = deque(maxlen=5_000)
    obs, _ = env.reset(seed=seed)
    warmup, start = 500, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        epsilon = 0.05 + 0.95 * np.exp(-step / 750)
        if rng.random() < epsilon:
            action = int(env.action_space.sample())
        else:
            with torch.no_grad():
                action = int(q_net(torch.tensor(obs, dtype=torch.float32)).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.append((obs, action, float(reward), next_obs, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if len(buffer) >= 64:
            batch = rng.sample(buffer, 64)
            states = torch.tensor(np.array([t[0] for t in batch]), dtype=torch.float32)
            actions = torch.tensor([t[1] for t in batch])
            rewards = torch.tensor([t[2] for t in batch])
            next_states = torch.tensor(np.array([t[3] for t in batch]), dtype=torch.float32)
            dones = torch.tensor([t[4] for t in batch], dtype=torch.float32)
            with torch.no_grad():
                targets = rewards + 0.99 * (1 - dones) * target_net(next_states).max(1).values
            q = q_net(states).gather(1, actions.unsqueeze(1)).squeeze(1)
            loss = nn.functional.mse_loss(q, targets)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        if step % 50 == 0:
            target_net.load_state_dict(q_net.state_dict())
    return steps / (time.perf_counter() - start)


# --- the project's trainer ----------------------------------------------------------------------


def group_specs(sizes: tuple[int, ...], seeds: range, steps: int) -> list[TrialSpec]:
    agent = AgentConfig.from_dict({**REFERENCE.to_dict(), "hidden_sizes": list(sizes)})
    return [
        TrialSpec(
            env_id="CartPole-v1",
            agent=agent,
            seed=seed,
            budget=Budget(env_steps=steps),
            eval=COURSE.eval,
            label=f"hidden_sizes={size_text(sizes)}",
        )
        for seed in seeds
    ]


def group_rate(sizes: tuple[int, ...], n_seeds: int, steps: int) -> dict[str, float]:
    """Train one group of `n_seeds` seeds on one thread; agent-env-steps per second."""
    torch.set_num_threads(1)
    train_group(group_specs(sizes, range(n_seeds), 300))  # warm-up: imports, allocator
    start = time.perf_counter()
    train_group(group_specs(sizes, range(n_seeds), steps))
    wall = time.perf_counter() - start
    return {
        "n_seeds": n_seeds,
        "steps": steps,
        "wall_s": wall,
        "agent_steps_per_s": n_seeds * steps / wall,
    }


def reference_spec(steps: int) -> dict[str, Any]:
    """The course sweep with `steps` env steps per trial, as a spec document."""
    return {
        "name": "reference",
        "env": "CartPole-v1",
        "seeds": 10,
        "budget": {"env_steps": steps},
        "eval": {"every_steps": COURSE.eval.every_steps, "episodes": COURSE.eval.episodes},
        "agent": {k: v for k, v in REFERENCE.to_dict().items() if k != "hidden_sizes"},
        "grid": {"hidden_sizes": [list(s) for s in SIZES]},
        "resources": {"cpus_per_trial": 1},
    }


def unit_rate(unit: Unit) -> dict[str, Any]:
    """Train one unit of the plan as one group on one thread, after a short warm-up."""
    torch.set_num_threads(1)
    sizes = unit[0].agent.hidden_sizes
    train_group(group_specs(sizes, range(len(unit)), 300))  # warm-up: imports, allocator
    start = time.perf_counter()
    train_group(list(unit))
    wall = time.perf_counter() - start
    steps = unit[0].budget.env_steps or 0
    return {"config": size_text(sizes), "n_seeds": len(unit), "steps": steps, "wall_s": wall}


def reference_direct(steps: int, workers: int) -> dict[str, Any]:
    """The reference sweep in the units the runner plans for `workers` slots (by default: each
    configuration one group of 10, costly ones split, costliest first), one process per core."""
    spec = parse_spec(json.dumps(reference_spec(steps)), check_env=False)  # JSON is YAML
    units = make_plan(spec, group_size=None, capacity=workers).units
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(unit_rate, units))  # submitted costliest first, as the runner does
    wall = time.perf_counter() - start
    per_config: dict[str, dict[str, Any]] = {}
    for name in map(size_text, SIZES):
        mine = [u for u in done if u["config"] == name]
        core_s = sum(u["wall_s"] for u in mine)
        agent_steps = sum(u["n_seeds"] * u["steps"] for u in mine)
        per_config[name] = {
            "groups": [u["n_seeds"] for u in mine],
            "core_s": core_s,
            "agent_steps_per_s": agent_steps / core_s,  # per core: each unit had one core
        }
    return {
        "wall_s": wall,
        "agent_steps_per_s": 40 * steps / wall,
        "per_config": per_config,
        "units": done,
    }


def reference_ray(steps: int, workers: int) -> dict[str, Any]:
    """The reference sweep through `dqn-sweep run` on a local Ray instance, default grouping."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.yaml"
        path.write_text(json.dumps(reference_spec(steps)))  # JSON is YAML
        command = [
            str(Path(sys.executable).with_name("dqn-sweep")),
            "run",
            str(path),
            "--out",
            str(Path(tmp) / "results"),
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"error": done.stderr[-2000:], "command": " ".join(command)}
        manifest = json.loads((Path(tmp) / "results/reference/manifest.json").read_text())
    return {
        "wall_s": wall,
        "agent_steps_per_s": 40 * steps / wall,
        "workers": workers,
        "units": manifest["runs"][-1].get("units"),
    }


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """Ratios, all against the naive loop measured in the same run."""
    naive, direct, workers = record["naive"], record["reference_direct"], record["cpus"]
    # The naive loop runs the sweep one trial per core: its wall time is the trials' summed
    # time divided by the cores, so its throughput is a harmonic mean of the per-config rates.
    naive_sweep = len(SIZES) * workers / sum(1 / naive[size_text(s)]["per_core"] for s in SIZES)
    per_config = {
        name: {
            "agent_steps_per_s": r["agent_steps_per_s"],
            "vs_naive_one_core": r["agent_steps_per_s"] / naive[name]["per_core"],
        }
        for name, r in direct["per_config"].items()
    }
    big = direct["per_config"]["256x256"]["agent_steps_per_s"]
    flop_256 = cartpole_flop((256, 256), REFERENCE)
    gflops_256 = big * flop_256 / 1e9
    # A ceiling: the whole sweep's ratio if the [256, 256] groups ran their matrix products at
    # the full yardstick rate and did nothing else, the other configurations as measured, and
    # the cores perfectly balanced.
    at_peak = record["matmul_gflops_one_core"] * 1e9 / flop_256
    agent_steps = {
        name: r["agent_steps_per_s"] * r["core_s"] for name, r in direct["per_config"].items()
    }
    core_s = {name: r["core_s"] for name, r in direct["per_config"].items()}
    core_s["256x256"] = agent_steps["256x256"] / at_peak
    ceiling = sum(agent_steps.values()) * workers / sum(core_s.values()) / naive_sweep
    ray_rate = record.get("reference_ray", {}).get("agent_steps_per_s", float("nan"))
    return {
        "naive_sweep_agent_steps_per_s": naive_sweep,
        "sweep_vs_naive": direct["agent_steps_per_s"] / naive_sweep,
        "sweep_ray_vs_naive": ray_rate / naive_sweep,
        "per_config": per_config,
        "gflops_256x256": gflops_256,
        "fraction_of_matmul_256x256": gflops_256 / record["matmul_gflops_one_core"],
        "naive_fraction_of_matmul_256x256": naive["256x256"]["per_core"]
        * flop_256
        / 1e9
        / record["matmul_gflops_one_core"],
        "sweep_ceiling_vs_naive": ceiling,
    }


def naive_on_every_core(
    pool: ProcessPoolExecutor, sizes: tuple[int, ...], steps: int, workers: int
) -> list[float]:
    """The naive loop run once per core, all at the same time; each run's agent-steps/s."""
    return list(pool.map(naive_rate, [sizes] * workers, [steps] * workers))


def yardstick_and_naive(naive_steps: int, workers: int) -> dict[str, Any]:
    """The matmul yardstick, then the naive loop on every core at once, per configuration."""
    gflops = matmul_gflops()
    print(f"matmul: {gflops:.1f} GFLOP/s on one core", flush=True)
    naive: dict[str, Any] = {}
    with ProcessPoolExecutor(workers) as pool:
        for sizes in SIZES:
            rates = naive_on_every_core(pool, sizes, naive_steps, workers)
            naive[size_text(sizes)] = {"per_core": statistics.mean(rates), "all_cores": sum(rates)}
            print(f"naive {size_text(sizes)}: {naive[size_text(sizes)]}", flush=True)
    return {"matmul": gflops, "naive": naive}


def paired_rounds(rounds: int, steps: int, workers: int) -> dict[str, Any]:
    """Per configuration, `rounds` times in a row: the naive loop on every core at once, then the
    project's group of 10 seeds on every core at once, then (for 256x256) the matmul yardstick.
    Each round's ratio compares measurements taken seconds apart, so the machine's drift over
    minutes, which the before-and-after means only average, cancels out; the median over the
    rounds is reported. Short runs (`steps` env steps, learning from step 64, evaluations
    included), so they say less about a whole trial than the sweep does."""
    flop_256 = cartpole_flop((256, 256), REFERENCE)
    out: dict[str, Any] = {}
    with ProcessPoolExecutor(workers) as pool:
        for sizes in SIZES:
            name, rows = size_text(sizes), []
            for _ in range(rounds):
                naive = statistics.mean(naive_on_every_core(pool, sizes, steps, workers))
                groups = pool.map(group_rate, [sizes] * workers, [10] * workers, [steps] * workers)
                project = statistics.mean(g["agent_steps_per_s"] for g in groups)
                row = {"naive_per_core": naive, "project_per_core": project}
                row["ratio"] = project / naive
                if sizes == (256, 256):
                    row["matmul_gflops"] = matmul_gflops(seconds=1.0)
                    row["fraction_of_matmul"] = project * flop_256 / 1e9 / row["matmul_gflops"]
                rows.append(row)
            median = statistics.median(r["ratio"] for r in rows)
            out[name] = {"rounds": rows, "median_ratio": median}
            if sizes == (256, 256):
                fractions = [r["fraction_of_matmul"] for r in rows]
                out[name]["median_fraction_of_matmul"] = statistics.median(fractions)
            print(f"paired {name}: {out[name]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per reference trial")
    parser.add_argument("--naive-steps", type=int, default=3_000)
    parser.add_argument("--scaling-steps", type=int, default=2_000)
    parser.add_argument("--ks", default="1,2,4,8,16,32,64")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=5, help="paired rounds per configuration (median reported)"
    )
    parser.add_argument("--paired-steps", type=int, default=3_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only recompute ratios and tables from a record"
    )
    args = parser.parse_args()
    if args.render is not None:
        saved: dict[str, Any] = json.loads(args.render.read_text())
        saved["summary"] = summarize(saved)
        args.render.write_text(json.dumps(saved, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(saved))
        print(markdown(saved))
        return
    workers = os.cpu_count() or 1
    record: dict[str, Any] = {
        "host": platform.node(),
        "cpus": workers,
        "torch": torch.__version__,
        "command": "python -m benchmarks.bench_speed " + " ".join(sys.argv[1:]),
        "reference_steps_per_trial": args.steps,
    }

    # The machine's speed drifts by tens of percent over minutes (turbo, neighbours), so the
    # yardstick and the naive loop are measured both before and after the project's runs and
    # the ratios use the mean of the two; both are recorded, so the drift shows.
    before = yardstick_and_naive(args.naive_steps, workers)
    record["k1"] = {size_text(s): group_rate(s, 1, args.naive_steps) for s in SIZES}
    print(f"project K=1: {record['k1']}", flush=True)

    record["reference_direct"] = direct = reference_direct(args.steps, workers)
    print(f"reference direct: {direct['agent_steps_per_s']:.0f} agent-steps/s", flush=True)
    if not args.skip_ray:
        record["reference_ray"] = reference_ray(args.steps, workers)
        print(f"reference ray: {record['reference_ray']}", flush=True)
    after = yardstick_and_naive(args.naive_steps, workers)
    record["before"], record["after"] = before, after
    record["matmul_gflops_one_core"] = (before["matmul"] + after["matmul"]) / 2
    record["naive"] = {
        name: {
            key: (before["naive"][name][key] + after["naive"][name][key]) / 2
            for key in ("per_core", "all_cores")
        }
        for name in before["naive"]
    }

    if args.rounds > 0:
        record["paired"] = paired_rounds(args.rounds, args.paired_steps, workers)
        record["paired_steps"] = args.paired_steps

    ks = [int(k) for k in args.ks.split(",")]
    record["scaling_64x64"] = {k: group_rate((64, 64), k, args.scaling_steps) for k in ks}

    record["summary"] = summarize(record)
    records.save(args.out, "speed", record, markdown(record))
    print(markdown(record))


def drift_lines(record: dict[str, Any]) -> list[str]:
    """How much the yardstick and the naive loop moved between before and after, if recorded."""
    if "before" not in record:
        return []
    before, after = record["before"], record["after"]
    naive = ", ".join(
        f"{name} {before['naive'][name]['per_core']:,.0f} / {after['naive'][name]['per_core']:,.0f}"
        for name in before["naive"]
    )
    return [
        "",
        "The yardstick and the naive loop were measured before and after the project's runs; "
        "ratios use the mean of the two.",
        f"Before / after: matmul {before['matmul']:.1f} / {after['matmul']:.1f} GFLOP/s; "
        f"naive agent-steps/s per core: {naive}.",
    ]


def paired_lines(record: dict[str, Any]) -> list[str]:
    """The paired rounds' table, if recorded."""
    if "paired" not in record:
        return []
    lines = [
        f"Paired short runs ({record['paired_steps']:,} env steps): per round, the naive loop "
        "on every core, then the project's group of 10 on every core, seconds apart, so that "
        "the machine's drift cancels; the ratio of per-core agent-steps/s, median of the rounds.",
        "",
        "| configuration | naive, one core | project, one core | ratio per round | median |",
        "|---|---|---|---|---:|",
    ]
    for name, r in record["paired"].items():
        rounds = r["rounds"]
        naive = ", ".join(f"{x['naive_per_core']:,.0f}" for x in rounds)
        project = ", ".join(f"{x['project_per_core']:,.0f}" for x in rounds)
        ratios = ", ".join(f"{x['ratio']:.1f}x" for x in rounds)
        lines.append(f"| {name} | {naive} | {project} | {ratios} | {r['median_ratio']:.1f}x |")
    big = record["paired"].get("256x256", {})
    if "median_fraction_of_matmul" in big:
        fractions = ", ".join(f"{100 * x['fraction_of_matmul']:.0f}%" for x in big["rounds"])
        yardsticks = ", ".join(f"{x['matmul_gflops']:.0f}" for x in big["rounds"])
        lines += [
            "",
            f"256x256, paired with the yardstick measured right after each round "
            f"({yardsticks} GFLOP/s): {fractions} of the matmul throughput, median "
            f"{100 * big['median_fraction_of_matmul']:.0f}%.",
        ]
    return [*lines, ""]


def markdown(record: dict[str, Any]) -> str:
    s, nan = record["summary"], float("nan")
    lines = [
        f"# Speed: seed-batched DQN vs the textbook loop ({record['cpus']} cores)",
        "",
        f"Command: `{record['command']}`; torch {record['torch']}; "
        f"{record['reference_steps_per_trial']:,} env steps per reference trial.",
        f"Matmul yardstick: {record['matmul_gflops_one_core']:.1f} GFLOP/s on one core.",
        *drift_lines(record),
        "",
        "Agent-env-steps per second on one core. The sweep column is each configuration's",
        "agent-steps over the core-seconds its groups took inside the direct sweep run below",
        "(groups as the runner plans them for this machine's cores).",
        "",
        "| configuration | naive, one core | project K=1 | project, in sweep | groups | ratio |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, cfg in s["per_config"].items():
        groups = record["reference_direct"]["per_config"][name].get("groups", [10])
        lines.append(
            f"| {name} | {record['naive'][name]['per_core']:,.0f} | "
            f"{record['k1'][name]['agent_steps_per_s']:,.0f} | "
            f"{cfg['agent_steps_per_s']:,.0f} | {' + '.join(map(str, groups))} | "
            f"{cfg['vs_naive_one_core']:.1f}x |"
        )
    ray = record.get("reference_ray", {})
    lines += [
        "",
        "Whole reference sweep (40 trials), agent-env-steps per second on all cores:",
        "",
        "| run | agent-steps/s | wall s | vs naive (one trial per core) |",
        "|---|---:|---:|---:|",
        f"| naive loop, one trial per core | {s['naive_sweep_agent_steps_per_s']:,.0f} | | 1.0x |",
        f"| direct, planned groups | {record['reference_direct']['agent_steps_per_s']:,.0f} | "
        f"{record['reference_direct']['wall_s']:.0f} | {s['sweep_vs_naive']:.1f}x |",
    ]
    if "agent_steps_per_s" in ray:
        lines.append(
            f"| dqn-sweep run on Ray, default groups | {ray['agent_steps_per_s']:,.0f} | "
            f"{ray['wall_s']:.0f} | {s['sweep_ray_vs_naive']:.1f}x |"
        )
    lines += [
        "",
        f"256x256 in the sweep: {s['gflops_256x256']:.1f} GFLOP/s of matmul work per core, "
        f"{100 * s['fraction_of_matmul_256x256']:.0f}% of the measured matmul throughput "
        f"(the naive loop: {100 * s.get('naive_fraction_of_matmul_256x256', nan):.0f}%).",
        "",
        "Ceiling: were the 256x256 groups to run their matrix products at the full yardstick "
        "rate and do nothing else, with the other configurations as measured and the cores "
        f"perfectly balanced, the sweep would be {s.get('sweep_ceiling_vs_naive', nan):.1f}x "
        "the naive loop.",
        "",
        *paired_lines(record),
        "Cost of a group as K grows ([64, 64]):",
        "",
        "| K | agent-steps/s | ms per env step of the group |",
        "|---:|---:|---:|",
    ]
    for k, r in record["scaling_64x64"].items():
        ms_per_step = 1000 * r["wall_s"] / r["steps"]
        lines.append(f"| {k} | {r['agent_steps_per_s']:,.0f} | {ms_per_step:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
