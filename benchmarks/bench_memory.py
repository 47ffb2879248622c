"""Memory benchmark: the planner's estimate (`dqn_agent.memory.task_memory`) against the peak
resident memory of real training, and the replay memory's bytes per transition measured.

1. Three groups, each trained in a fresh process for a few hundred env steps past the start
   of learning (every buffer allocated, every update's tensors made), its peak resident memory
   (`ru_maxrss`) read at the end: small (CartPole, the shipped preset, 5 seeds), buffer-heavy
   (MinAtar Breakout, the MinAtar preset with a replay of 1,000,000, 5 seeds) and
   network-heavy (LunarLander, [2048, 2048, 2048], 10 seeds). Target: within 25%.
2. The replay memory of one agent for 100,000 MinAtar and 100,000 Atari transitions: the bytes
   its tensors hold, and the growth of resident memory when it is made, against the formula
   C x H x W + 11 bytes per transition.

    .venv/bin/python -m benchmarks.bench_memory
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks import records
from dqn_agent import default_config, make_env, observation_shape
from dqn_agent.envs import frames_per_observation
from dqn_agent.memory import env_package_bytes, frame_buffer_bytes, gigabytes, task_memory

GROUPS: dict[str, dict[str, Any]] = {
    "small": {"env": "CartPole-v1", "seeds": 5, "agent": {}},
    "buffer-heavy": {
        "env": "MinAtar/Breakout-v0",
        "seeds": 5,
        "agent": {"buffer_size": 1_000_000, "learning_starts": 200},
    },
    "network-heavy": {
        "env": "LunarLander-v3",
        "seeds": 10,
        "agent": {"hidden_sizes": [2048, 2048, 2048], "learning_starts": 200},
    },
}
STEPS_PAST_START = 100

CHILD = """
import dataclasses, json, resource, sys
import torch
from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, default_config, train_group
torch.set_num_threads(1)
env, seeds, agent = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
config = AgentConfig.from_dict({**default_config(env).to_dict(), **agent})
steps = config.learning_starts + int(sys.argv[4])
specs = [
    TrialSpec(env_id=env, agent=config, seed=s, budget=Budget(env_steps=steps),
              eval=EvalSettings(every_steps=steps, episodes=1))
    for s in range(seeds)
]
train_group(specs)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

REPLAY_CHILD = """
import os, sys, torch
from dqn_agent.frames import FrameReplayBuffer
def resident():  # bytes of this process in memory now, from /proc/self/statm
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
shape = tuple(int(n) for n in sys.argv[1].split(","))
before = resident()
buffer = FrameReplayBuffer(1, 100_000, shape, int(sys.argv[2]))
after = resident()
tensors = (buffer.frames, buffer.actions, buffer.rewards, buffer.terminated, buffer.ended,
           buffer.position)
print(sum(t.numel() * t.element_size() for t in tensors), after - before)
"""


def measure_group(name: str, group: dict[str, Any]) -> dict[str, Any]:
    env_id = group["env"]
    config = default_config(env_id)
    config = type(config).from_dict({**config.to_dict(), **group["agent"]})
    env = make_env(env_id)
    shape = observation_shape(env)
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    estimate = task_memory(
        config,
        shape,
        n_actions,
        group["seeds"],
        frames_per_observation=frames_per_observation(env_id),
        env_package_bytes=env_package_bytes(env_id),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            env_id,
            str(group["seeds"]),
            json.dumps(group["agent"]),
            str(STEPS_PAST_START),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = int(out.stdout.strip().splitlines()[-1])
    return {
        "group": name,
        "env_id": env_id,
        "seeds": group["seeds"],
        "agent": group["agent"],
        "estimate_bytes": estimate.total,
        "estimate": estimate.describe(),
        "peak_bytes": peak,
        "estimate_over_peak": estimate.total / peak,
    }


def measure_replay(name: str, frame: tuple[int, int, int], stack: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", REPLAY_CHILD, ",".join(map(str, frame)), str(stack)],
        capture_output=True,
        text=True,
        check=True,
    )
    tensors, resident = (int(n) for n in out.stdout.split())
    return {
        "env": name,
        "frame": list(frame),
        "formula_bytes": frame_buffer_bytes(frame, 100_000),
        "tensor_bytes": tensors,
        "resident_growth_bytes": resident,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    groups = [measure_group(name, group) for name, group in GROUPS.items()]
    replays = [
        measure_replay("MinAtar Breakout", (4, 10, 10), 1),
        measure_replay("Atari", (1, 84, 84), 4),
    ]
    record = {
        "command": "python -m benchmarks.bench_memory",
        "torch": torch.__version__,
        "host": platform.node(),
        "steps_past_learning_start": STEPS_PAST_START,
        "groups": groups,
        "replay_100k": replays,
    }
    lines = [
        "# Memory: the planner's estimate against measured peaks",
        "",
        f"Command: `{record['command']}`; torch {record['torch']}. Each group trains in a fresh "
        f"process to {STEPS_PAST_START} env steps past the start of learning; peak resident "
        "memory (`ru_maxrss`).",
        "",
        "| group | env | seeds | estimate | measured peak | estimate / peak |",
        "|---|---|---:|---|---:|---:|",
    ]
    for g in groups:
        lines.append(
            f"| {g['group']} | {g['env_id']} | {g['seeds']} | {g['estimate']} | "
            f"{gigabytes(g['peak_bytes'])} | {g['estimate_over_peak']:.2f} |"
        )
    lines += [
        "",
        "Replay memory of one agent, 100,000 transitions:",
        "",
        "| env | frame | formula (C x H x W + 11 bytes each) | tensors | resident growth |",
        "|---|---|---:|---:|---:|",
    ]
    for r in replays:
        lines.append(
            f"| {r['env']} | {tuple(r['frame'])} | {r['formula_bytes']:,} | "
            f"{r['tensor_bytes']:,} | {r['resident_growth_bytes']:,} |"
        )
    records.save(args.out, "memory", record, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
