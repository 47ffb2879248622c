"""Synthetic results folders in the contract layout, for tests, benchmarks and demos.

The runs are CartPole-like: an episode's return equals its length (1 per step, capped at 500),
and each configuration learns along a logistic curve, larger networks earlier, with seed-level
noise. Nothing is trained; the point is realistic tables (episodes of very different lengths,
an evaluation every `eval_every` steps) written as real Parquet files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.stats import FloatArray

MAX_RETURN = 500.0
MIN_RETURN = 8.0


def _progress(steps: FloatArray, midpoint: float, width: float) -> FloatArray:
    """Fraction of the way from random to solved at each env step (logistic in steps)."""
    return np.asarray(1.0 / (1.0 + np.exp(-(steps - midpoint) / width)), dtype=np.float64)


def _trial_id(sweep: str, config: str, seed: int) -> str:
    """A stable id from the trial's content, as the real runner makes it (never from a clock)."""
    return hashlib.sha256(f"{sweep}|{config}|{seed}".encode()).hexdigest()[:12]


def _hidden_sizes(config: str) -> str:
    """The ``hidden_sizes`` text of a label such as ``hidden_sizes=64x64,lr=0.001``."""
    for part in config.split(","):
        key, _, value = part.partition("=")
        if key == "hidden_sizes":
            return value
    return "64x64"


def _episodes(
    rng: np.random.Generator, env_steps: int, midpoint: float, width: float, sps: float
) -> pd.DataFrame:
    """Training episodes of one trial; the episode cut off by the budget is not recorded."""
    ends: list[int] = []
    returns: list[float] = []
    step = 0
    while True:
        skill = _progress(np.array([float(step)]), midpoint, width)[0]
        noisy = MIN_RETURN + (MAX_RETURN - MIN_RETURN) * skill + rng.normal(0.0, 15.0)
        length = int(np.clip(round(noisy), MIN_RETURN, MAX_RETURN))
        if step + length > env_steps:
            break
        step += length
        ends.append(step)
        returns.append(float(length))
    end = np.asarray(ends, dtype=np.int64)
    return pd.DataFrame(
        {
            "episode": np.arange(end.size, dtype=np.int64),
            "env_step": end,
            "episode_return": np.asarray(returns, dtype=np.float64),
            "episode_length": np.diff(end, prepend=0).astype(np.int64),
            "wall_s": end / sps,
        }
    )


def _evals(
    rng: np.random.Generator,
    env_steps: int,
    eval_every: int,
    midpoint: float,
    width: float,
    sps: float,
    with_q: bool,
) -> pd.DataFrame:
    """Greedy evaluations at step 0, every `eval_every` steps, and at the end."""
    steps = np.unique(np.append(np.arange(0, env_steps + 1, eval_every), env_steps))
    skill = _progress(steps.astype(np.float64), midpoint, width)
    noise = rng.normal(0.0, 25.0, size=steps.size)
    mean = np.clip(MIN_RETURN + (MAX_RETURN - MIN_RETURN) * skill + noise, MIN_RETURN, MAX_RETURN)
    frame = pd.DataFrame(
        {
            "env_step": steps.astype(np.int64),
            "eval_return_mean": mean,
            "eval_return_std": np.abs(rng.normal(20.0, 5.0, size=steps.size)),
            "wall_s": steps / sps,
        }
    )
    if with_q:
        # Q-values grow towards the discounted return (gamma = 0.99 -> about 100); the loss
        # decays. Nothing has been sampled at step 0, so both are NaN there, as in real runs.
        q = 100.0 * skill + rng.normal(0.0, 2.0, size=steps.size)
        loss = 2.0 * np.exp(-steps / (env_steps / 3)) + np.abs(rng.normal(0, 0.05, steps.size))
        q[0] = loss[0] = np.nan
        frame["q_mean"] = q
        frame["td_loss"] = loss
    return frame


def write_sweep(
    root: Path,
    name: str = "synthetic",
    *,
    configs: Sequence[str] = ("hidden_sizes=32x32", "hidden_sizes=64x64"),
    n_seeds: int = 3,
    env_steps: int = 20_000,
    eval_every: int = 1_000,
    env_id: str = "CartPole-v1",
    n_failed: int = 0,
    with_q: bool = True,
    seed: int = 0,
) -> Path:
    """Write a results folder ``root/name`` and return its path.

    Args:
        root: parent folder (created if needed).
        name: sweep name, the folder's name.
        configs: configuration labels, in grid order; later ones learn faster.
        n_seeds: seeds per configuration.
        env_steps: training budget of every trial.
        eval_every: evaluation interval in env steps.
        env_id: environment id written in every row.
        n_failed: extra trials of the first configuration marked failed (no episode files).
        with_q: whether the eval tables carry ``q_mean`` and ``td_loss``.
        seed: seed of the generator behind all the noise.
    """
    rng = np.random.default_rng(seed)
    folder = root / name
    (folder / "episodes").mkdir(parents=True, exist_ok=True)
    (folder / "evals").mkdir(exist_ok=True)
    trials: list[dict[str, Any]] = []
    for rank, config in enumerate(configs):
        midpoint = env_steps * max(0.15, 0.6 - 0.2 * rank)
        for seed_i in range(n_seeds + (n_failed if rank == 0 else 0)):
            trial_id = _trial_id(name, config, seed_i)
            ids: dict[str, str | int] = {
                "trial_id": trial_id,
                "config": config,
                "hidden_sizes": _hidden_sizes(config),
                "seed": seed_i,
                "env_id": env_id,
            }
            if seed_i >= n_seeds:
                failed = {"status": "failed", "error": "RuntimeError: synthetic failure"}
                trials.append({**ids, "lr": 1e-3, **failed, "wall_s": 1.0, "env_steps": np.nan})
                continue
            mid = midpoint * float(rng.lognormal(0.0, 0.1))  # some seeds learn sooner
            width = env_steps * 0.06
            sps = float(rng.uniform(700.0, 900.0))
            episodes = _episodes(rng, env_steps, mid, width, sps)
            evals = _evals(rng, env_steps, eval_every, mid, width, sps, with_q)
            for table, frame in (("episodes", episodes), ("evals", evals)):
                for column, value in reversed(ids.items()):
                    frame.insert(0, column, value)
                frame.to_parquet(folder / table / f"{trial_id}.parquet", index=False)
            done = {"status": "complete", "error": "", "wall_s": env_steps / sps}
            trials.append(
                {**ids, "lr": 1e-3, **done, "env_steps": env_steps, "env_steps_per_s": sps}
            )
    pd.DataFrame.from_records(trials).to_parquet(folder / "trials.parquet", index=False)
    grid = ", ".join(configs)
    (folder / "spec.yaml").write_text(
        f"name: {name}\nenv: {env_id}\nseeds: {n_seeds}\nbudget: {{env_steps: {env_steps}}}\n"
        f"eval: {{every_steps: {eval_every}, episodes: 10}}\n# synthetic grid: {grid}\n"
    )
    (folder / "manifest.json").write_text(json.dumps({"synthetic": True, "seed": seed}) + "\n")
    return folder
