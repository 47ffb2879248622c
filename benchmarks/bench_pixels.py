"""Speed from pixels: the project's group of 10 seeds against a single-agent textbook DQN loop.

MinAtar Breakout (`MinAtar/Breakout-v0`, observations (4, 10, 10) uint8), the MinAtar preset
(`dqn_agent.default_config`: one 3x3 convolution of 16 channels, 128 units, centered RMSprop at
lr 2.5e-4, batch 32, replay of 100,000, an update every env step, a target copy every 1,000
steps, Huber loss, epsilon linear from 1.0 to 0.1 over 100,000 steps), with `learning_starts`
lowered (500 by default) so that short runs are mostly updates; both sides use the same value.

Measured, in this one process, on one thread (`torch.set_num_threads(1)`), so every figure is
agent-env-steps per second on one core:

1. the naive loop, written below: one gymnasium env, the same one-agent network
   (`MinAtarQNetwork`) and a deep copy as target, numpy arrays of uint8 obs and next_obs as
   replay, epsilon-greedy, `F.smooth_l1_loss`, centered `torch.optim.RMSprop`;
2. the project's `train_group` with 10 TrialSpecs (seeds 0..9) of the same config.

They alternate in `--rounds` rounds of `--steps` env steps each (the order flips every round),
so that a ratio compares runs taken seconds apart and the machine's drift over minutes cancels;
the median of the rounds' ratios is reported. Then K = 1 and K = 5 once each, with a naive run
between them as their baseline.

What is counted: the wall time of the whole call, from nothing to trained weights, for
`--steps` env steps per agent. For the naive loop: making the env, the networks, the optimizer
and the replay arrays, and every step (those before `learning_starts` included); no
evaluation. For the project: everything `train_group` does, setup included, and its greedy
evaluations: `EvalSettings(every_steps=steps, episodes=1)`, so one episode per agent at step 0
and one at the end. The step-0 evaluation's time is recorded (`eval0_s`) to show how little
that is; nothing is subtracted. Denormals are flushed in the naive loop too, as `train_group`
does. A short warm-up of each path (imports, allocator, kernels) precedes the measurements.

    .venv/bin/python -m benchmarks.bench_pixels                        # the recorded run
    .venv/bin/python -m benchmarks.bench_pixels --steps 800 --rounds 1 # a quick look

Writes JSON and a Markdown table to benchmarks/results/pixels_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from benchmarks import records
from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, default_config, make_env
from dqn_agent.conv import MinAtarQNetwork
from dqn_agent.training import flush_denormals, train_group

ENV_ID = "MinAtar/Breakout-v0"
GROUP = 10
"""Seeds in the project's group: the sweeps' usual count."""


def bench_config(learning_starts: int) -> AgentConfig:
    """The MinAtar preset with `learning_starts` lowered for short runs."""
    return dataclasses.replace(default_config(ENV_ID), learning_starts=learning_starts)


# --- the naive textbook loop --------------------------------------------------------------------


def naive_seconds(config: AgentConfig, steps: int, seed: int = 0) -> float:
    """Wall seconds of a single-agent DQN of `config` for `steps` env steps, everything counted.

    The textbook loop: act, step, store, then (after `learning_starts`) one gradient step on a
    uniform batch, and a hard target copy every `target_update_every` steps."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = make_env(ENV_ID)
    env.action_space.seed(seed)
    obs_shape = tuple(env.observation_space.shape or ())
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    q_net = MinAtarQNetwork(
        obs_shape, n_actions, channels=config.conv_channels, hidden_sizes=config.hidden_sizes
    )
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.RMSprop(
        q_net.parameters(),
        lr=config.lr,
        alpha=config.rmsprop_alpha,
        eps=config.eps,
        centered=True,
    )

    capacity = config.buffer_size
    obs_buf = np.zeros((capacity, *obs_shape), dtype=np.uint8)
    next_obs_buf = np.zeros((capacity, *obs_shape), dtype=np.uint8)
    action_buf = np.zeros(capacity, dtype=np.int64)
    reward_buf = np.zeros(capacity, dtype=np.float32)
    done_buf = np.zeros(capacity, dtype=np.float32)
    write, size = 0, 0

    obs, _ = env.reset(seed=seed)
    for step in range(steps):
        fraction = min(1.0, step / config.epsilon_decay_steps)
        epsilon = config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)
        if rng.random() < epsilon:
            action = int(env.action_space.sample())
        else:
            with torch.no_grad():
                action = int(q_net(torch.from_numpy(obs).unsqueeze(0)).argmax(dim=1))
        next_obs, reward, terminated, truncated, _ = env.step(action)

        obs_buf[write] = obs
        next_obs_buf[write] = next_obs
        action_buf[write] = action
        reward_buf[write] = float(reward)
        done_buf[write] = float(terminated)
        write = (write + 1) % capacity
        size = min(size + 1, capacity)

        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        if step + 1 >= config.learning_starts:
            idx = rng.integers(0, size, config.batch_size)
            states = torch.from_numpy(obs_buf[idx])
            next_states = torch.from_numpy(next_obs_buf[idx])
            actions = torch.from_numpy(action_buf[idx])
            rewards = torch.from_numpy(reward_buf[idx])
            dones = torch.from_numpy(done_buf[idx])
            with torch.no_grad():
                next_q = target_net(next_states).max(dim=1).values
                targets = rewards + config.gamma * (1.0 - dones) * next_q
            q_taken = q_net(states).gather(1, actions.unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, targets)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        if (step + 1) % config.target_update_every == 0:
            target_net.load_state_dict(q_net.state_dict())
    env.close()
    return time.perf_counter() - start


def naive_run(config: AgentConfig, steps: int) -> dict[str, Any]:
    with flush_denormals():  # as train_group does
        wall = naive_seconds(config, steps)
    return {"steps": steps, "wall_s": wall, "agent_steps_per_s": steps / wall}


# --- the project's trainer ----------------------------------------------------------------------


def project_run(config: AgentConfig, n_seeds: int, steps: int) -> dict[str, Any]:
    """`train_group` of seeds 0..n_seeds-1 for `steps` env steps; everything in the call counted."""
    specs = [
        TrialSpec(
            env_id=ENV_ID,
            agent=config,
            seed=seed,
            budget=Budget(env_steps=steps),
            eval=EvalSettings(every_steps=steps, episodes=1),  # at step 0 and at the end only
        )
        for seed in range(n_seeds)
    ]
    start = time.perf_counter()
    results = train_group(specs)
    wall = time.perf_counter() - start
    return {
        "n_seeds": n_seeds,
        "steps": steps,
        "wall_s": wall,
        "train_group_wall_s": results[0].wall_s,  # from the env reset to the last evaluation
        "eval0_s": float(results[0].evals["wall_s"].iloc[0]),  # the step-0 evaluation
        "agent_steps_per_s": n_seeds * steps / wall,
    }


# --- the run ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_busy_s() -> float:
    """CPU-seconds the whole machine has spent busy since boot, all cores (from /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user already


def log(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_500, help="env steps per agent per run")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds, median reported")
    parser.add_argument("--learning-starts", type=int, default=500)
    parser.add_argument(
        "--note",
        default="",
        help="what else the machine was doing during the run, recorded with the figures",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = bench_config(args.learning_starts)
    begun, busy_before, own_before = time.perf_counter(), machine_busy_s(), time.process_time()

    warm = args.learning_starts + 100  # a few updates, so that the backward kernels load too
    naive_run(config, warm)
    project_run(config, 2, warm)
    log(f"warm-up done in {time.perf_counter() - begun:.0f} s")

    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = ("naive", "project") if r % 2 == 0 else ("project", "naive")
        row: dict[str, Any] = {"order": list(order)}
        for name in order:
            if name == "naive":
                row["naive"] = naive_run(config, args.steps)
            else:
                row["project"] = project_run(config, GROUP, args.steps)
        row["ratio"] = row["project"]["agent_steps_per_s"] / row["naive"]["agent_steps_per_s"]
        rounds.append(row)
        log(
            f"round {r + 1}: naive {row['naive']['agent_steps_per_s']:,.0f}, "
            f"K={GROUP} {row['project']['agent_steps_per_s']:,.0f} agent-steps/s, "
            f"ratio {row['ratio']:.2f}x"
        )

    scaling: dict[str, Any] = {"k1": project_run(config, 1, args.steps)}
    scaling["naive"] = naive_run(config, args.steps)
    scaling["k5"] = project_run(config, 5, args.steps)
    baseline = scaling["naive"]["agent_steps_per_s"]
    for key in ("k1", "k5"):
        scaling[key]["ratio"] = scaling[key]["agent_steps_per_s"] / baseline
    log(
        f"scaling: K=1 {scaling['k1']['agent_steps_per_s']:,.0f}, naive {baseline:,.0f}, "
        f"K=5 {scaling['k5']['agent_steps_per_s']:,.0f} agent-steps/s"
    )

    command = shlex.join(["python", "-m", "benchmarks.bench_pixels", *sys.argv[1:]])
    record: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "env_id": ENV_ID,
        "config": config.to_dict(),
        "steps": args.steps,
        "learning_starts": args.learning_starts,
        "group": GROUP,
        "rounds": rounds,
        "median_naive_agent_steps_per_s": statistics.median(
            r["naive"]["agent_steps_per_s"] for r in rounds
        ),
        "median_project_agent_steps_per_s": statistics.median(
            r["project"]["agent_steps_per_s"] for r in rounds
        ),
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "scaling": scaling,
        "note": args.note,
        "total_wall_s": time.perf_counter() - begun,
    }
    own_s, busy_s = time.process_time() - own_before, machine_busy_s() - busy_before
    # How much of a core this run had, and how many cores everything else kept busy meanwhile.
    record["own_cpu_per_wall"] = own_s / record["total_wall_s"]
    record["other_cores_busy"] = (busy_s - own_s) / record["total_wall_s"]
    table = markdown(record)
    records.save(args.out, "pixels_speed", record, table)
    print(table)


def markdown(record: dict[str, Any]) -> str:
    steps, group = record["steps"], record["group"]
    rounds, scaling = record["rounds"], record["scaling"]
    naive_median = record["median_naive_agent_steps_per_s"]
    lines = [
        f"# Speed from pixels: {record['env_id']}, a group of {group} seeds vs the textbook loop",
        "",
        f"Command: `{record['command']}` on {record['date']}, {record['total_wall_s']:.0f} s in "
        f"all; torch {record['torch']}; CPU: {record['cpu_model']} ({record['cpus']} cores).",
        "",
        f"The MinAtar preset with learning_starts {record['learning_starts']:,}, "
        f"{steps:,} env steps per agent per run, one thread: agent-env-steps per second on one "
        "core. Counted: the whole call, setup included; the naive loop has no evaluation, the "
        "project's runs one greedy episode per agent at step 0 and at the end (the step-0 one "
        "is shown below; nothing is subtracted).",
    ]
    lines += [
        "",
        f"Machine load over the run, from /proc/stat: this process used "
        f"{record['own_cpu_per_wall']:.2f} of a core; other processes kept "
        f"{record['other_cores_busy']:.2f} cores busy on average.",
    ]
    if record.get("note"):
        lines += [f"During the measurement: {record['note']}"]
    lines += [
        "",
        "| configuration | agent-steps/s | ms per agent-step | ratio vs a naive run beside it |",
        "|---|---:|---:|---:|",
        f"| naive loop, one agent (median of {len(rounds)}) | {naive_median:,.0f} | "
        f"{1000 / naive_median:.2f} | 1.00x |",
    ]
    for key, k in (("k1", 1), ("k5", 5)):
        r = scaling[key]
        lines.append(
            f"| project, K={k} | {r['agent_steps_per_s']:,.0f} | "
            f"{1000 / r['agent_steps_per_s']:.2f} | {r['ratio']:.2f}x |"
        )
    project_median = record["median_project_agent_steps_per_s"]
    lines += [
        f"| project, K={group} (median of {len(rounds)}) | {project_median:,.0f} | "
        f"{1000 / project_median:.2f} | {record['median_ratio']:.2f}x (median ratio) |",
        "",
        f"K={group} rounds, each pair seconds apart, order alternating:",
        "",
        "| round | order | naive agent-steps/s | project agent-steps/s | ratio | "
        "project's step-0 eval |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rounds, start=1):
        lines.append(
            f"| {i} | {' then '.join(r['order'])} | {r['naive']['agent_steps_per_s']:,.0f} | "
            f"{r['project']['agent_steps_per_s']:,.0f} | {r['ratio']:.2f}x | "
            f"{r['project']['eval0_s']:.2f} s of {r['project']['wall_s']:.1f} s |"
        )
    lines += [
        "",
        f"K=1 and K=5 were run once, with a naive run between them "
        f"({scaling['naive']['agent_steps_per_s']:,.0f} agent-steps/s) as their baseline.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
