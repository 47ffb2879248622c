"""Random-policy scores: the mean return of uniformly random actions on each environment, the
floor of a normalized score ((score - random) / (reference - random)).

Each environment plays 100 episodes with actions drawn uniformly from its action space, the
env seeded with 0 once and the action sampler with 0, episodes as the env ends them (time
limits included). The returns' mean and standard error are recorded with this command.

    .venv/bin/python -m benchmarks.bench_random_scores
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import records
from dqn_agent import make_env

ENVS = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "LunarLander-v3",
    "MinAtar/Breakout-v0",
    "MinAtar/SpaceInvaders-v0",
    "MinAtar/Asterix-v0",
    "MinAtar/Freeway-v0",
    "MinAtar/Seaquest-v0",
)
EPISODES = 100


def random_returns(env_id: str, episodes: int) -> list[float]:
    env = make_env(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    returns = []
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        env.reset()
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=EPISODES)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for env_id in ENVS:
        start = time.perf_counter()
        returns = random_returns(env_id, args.episodes)
        rows.append(
            {
                "env_id": env_id,
                "episodes": len(returns),
                "mean": statistics.fmean(returns),
                "standard_error": statistics.stdev(returns) / math.sqrt(len(returns)),
                "wall_s": time.perf_counter() - start,
            }
        )
    record = {"command": "python -m benchmarks.bench_random_scores", "envs": rows}
    lines = [
        "# Random-policy scores",
        "",
        f"Command: `{record['command']}`: {args.episodes} episodes of uniformly random actions "
        "per environment (env and sampler seeded with 0), returns as the env ends episodes.",
        "",
        "| env | mean return | standard error |",
        "|---|---:|---:|",
        *[f"| {r['env_id']} | {r['mean']:.2f} | {r['standard_error']:.2f} |" for r in rows],
    ]
    records.save(args.out, "random_scores", record, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
