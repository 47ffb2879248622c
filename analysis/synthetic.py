"""Synthetic results folders, for tests, benchmarks and demos, that follow the contract of
`analysis.schema` as strictly as the real ones: every column of a real trials.parquet, episodes
and evals file, with the real dtypes (`analysis.schema.check_folder(..., strict=True)` passes).

The runs are CartPole-like: an episode's return equals its length (1 per step, capped at 500),
and each configuration learns along a logistic curve, larger networks earlier, with seed-level
noise. A folder of several environments (``env_ids``) maps those returns linearly onto each
environment's own scale (`RETURN_SCALES`: from about a random policy's return to about the
best an agent gets), so that, as in real folders, each environment's returns have their own
range and sign; episode lengths stay CartPole-like. Nothing is trained, so there is no
models/ folder (the analysis never reads weights); the point is realistic tables (episodes of
very different lengths, an evaluation every `eval_every` steps) written as real Parquet files,
each one atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.schema import (
    AGENT_COLUMNS,
    EPISODES,
    EVALS,
    TRIALS,
    FolderLayout,
    write_bytes_atomic,
    write_parquet_atomic,
)
from analysis.stats import FloatArray

MAX_RETURN = 500.0
MIN_RETURN = 8.0
EVAL_EPISODES = 10
FINISHED_AT = "2026-01-01T00:00:00+00:00"
"""The time every synthetic row says it was written: fixed, so that a folder is reproducible."""

RETURN_SCALES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (MIN_RETURN, MAX_RETURN),
    "Acrobot-v1": (-500.0, -75.0),
    "MountainCar-v0": (-200.0, -100.0),
    "LunarLander-v3": (-250.0, 250.0),
}
"""Where `MIN_RETURN` and `MAX_RETURN` land in each environment of a several-environment folder
(the worst and best returns it shows); an environment not listed keeps CartPole's scale."""

SETTINGS: dict[str, str | int | float | bool | None] = {
    "network": "mlp",
    "channels": "",
    "lr": 1e-3,
    "gamma": 0.99,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "train_every": 256,
    "gradient_steps": 128,
    "target_update_every": 10,
    "tau": 1.0,
    "loss": "huber",
    "double": False,
    "dueling": False,
    "epsilon_start": 1.0,
    "epsilon_end": 0.04,
    "epsilon_decay_steps": 8_000,
    "epsilon_schedule": "linear",
    "max_grad_norm": 10.0,
    "optimizer": "adam",
    "eps": 1e-8,
    "rmsprop_alpha": 0.95,
    "clip_rewards": False,
    "terminal_on_life_loss": False,
    "hidden_sizes": "64x64",
}
"""The agent settings a synthetic trial records where its label does not set them: plausible
values, not necessarily `AgentConfig`'s defaults (the analysis cannot import dqn_agent)."""


def _progress(steps: FloatArray, midpoint: float, width: float) -> FloatArray:
    """Fraction of the way from random to solved at each env step (logistic in steps)."""
    return np.asarray(1.0 / (1.0 + np.exp(-(steps - midpoint) / width)), dtype=np.float64)


def _trial_id(sweep: str, config: str, seed: int, env_id: str | None = None) -> str:
    """A stable id from the trial's content, as the real runner makes it (never from a clock);
    `env_id` is part of it in a folder of several environments (None: a folder of one)."""
    content = f"{sweep}|{config}|{seed}" if env_id is None else f"{sweep}|{env_id}|{config}|{seed}"
    return hashlib.sha256(content.encode()).hexdigest()[:12]


def _settings(config: str) -> dict[str, Any]:
    """`SETTINGS`, with the values that a label such as ``dueling,hidden_sizes=64x64,lr=0.001``
    sets (parts that are not ``setting=value``, such as a variant's name, name nothing)."""
    settings: dict[str, Any] = dict(SETTINGS)
    for part in config.split(","):
        key, equals, text = part.partition("=")
        if not equals or key not in SETTINGS:
            continue
        dtype = TRIALS.column(key).dtype
        if dtype in ("int64", "Int64"):
            settings[key] = int(text)
        elif dtype == "float64":
            settings[key] = float(text)
        elif dtype in ("bool", "boolean"):
            settings[key] = text.lower() in ("true", "1", "yes")
        else:
            settings[key] = text
    return settings


def _on_scale(returns: FloatArray, env_id: str | None) -> FloatArray:
    """CartPole-like `returns` moved linearly onto `env_id`'s `RETURN_SCALES` (None: kept)."""
    if env_id is None:
        return returns
    low, high = RETURN_SCALES.get(env_id, (MIN_RETURN, MAX_RETURN))
    fraction = (returns - MIN_RETURN) / (MAX_RETURN - MIN_RETURN)
    return np.asarray(low + (high - low) * fraction, dtype=np.float64)


def _episodes(
    rng: np.random.Generator,
    env_steps: int,
    midpoint: float,
    width: float,
    sps: float,
    scale_to: str | None = None,
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
            "episode_return": _on_scale(np.asarray(returns, dtype=np.float64), scale_to),
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
    scale_to: str | None = None,
) -> pd.DataFrame:
    """Greedy evaluations at step 0, every `eval_every` steps, and at the end."""
    steps = np.unique(np.append(np.arange(0, env_steps + 1, eval_every), env_steps))
    skill = _progress(steps.astype(np.float64), midpoint, width)
    noise = rng.normal(0.0, 25.0, size=steps.size)
    mean = np.clip(MIN_RETURN + (MAX_RETURN - MIN_RETURN) * skill + noise, MIN_RETURN, MAX_RETURN)
    frame = pd.DataFrame(
        {
            "env_step": steps.astype(np.int64),
            "eval_return_mean": _on_scale(mean, scale_to),
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
    else:  # as a run that logged none: the columns stay, as in every real folder
        frame["q_mean"] = frame["td_loss"] = np.full(steps.size, np.nan)
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
    env_ids: Sequence[str] | None = None,
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
        env_ids: several environments instead of `env_id`: every configuration runs `n_seeds`
            seeds on each, environments in this order, returns on each environment's scale
            (`RETURN_SCALES`), and each environment learnt later than the one before it (the
            midpoint of its learning curve 35% of the first's later per place in the list), so
            some runs end short of solving it. None writes exactly the folder of one
            environment `env_id`.
        n_failed: extra trials of the first configuration marked failed (no episode files), on
            the first environment.
        with_q: whether Q statistics were logged; without, ``q_mean`` and ``td_loss`` are NaN
            throughout.
        seed: seed of the generator behind all the noise.
    """
    assert set(SETTINGS) == {c.name for c in AGENT_COLUMNS} | {"hidden_sizes"}, "see SETTINGS"
    rng = np.random.default_rng(seed)
    layout = FolderLayout(root / name)
    layout.episodes_dir.mkdir(parents=True, exist_ok=True)
    layout.evals_dir.mkdir(exist_ok=True)
    trials: list[dict[str, Any]] = []
    # (env id, env id to scale returns to and tell trial ids apart by: None for one env)
    envs: list[tuple[str, str | None]] = (
        [(env_id, None)] if env_ids is None else [(env, env) for env in env_ids]
    )
    for env_rank, (env, several) in enumerate(envs):
        for rank, config in enumerate(configs):
            midpoint = env_steps * max(0.15, 0.6 - 0.2 * rank) * (1.0 + 0.35 * env_rank)
            settings = _settings(config)
            extra = n_failed if rank == 0 and env_rank == 0 else 0
            for seed_i in range(n_seeds + extra):
                trial_id = _trial_id(name, config, seed_i, several)
                ids: dict[str, str | int] = {
                    "trial_id": trial_id,
                    "config": config,
                    "hidden_sizes": settings["hidden_sizes"],
                    "seed": seed_i,
                    "env_id": env,
                }
                row: dict[str, Any] = {
                    **settings,
                    **ids,
                    "group_size": 1,
                    "host": "synthetic",
                    "node_id": "",
                    "device": "cpu",
                    "attempts": 1,
                    "finished_at": FINISHED_AT,
                    "budget_env_steps": env_steps,
                    "budget_episodes": None,
                    "eval_every_steps": eval_every,
                    "eval_episodes": EVAL_EPISODES,
                }
                if seed_i >= n_seeds:
                    failed = {"status": "failed", "error": "RuntimeError: synthetic failure"}
                    figures = {"final_eval_return": np.nan, "n_episodes": 0, "wall_s": 1.0}
                    trials.append(
                        {**row, **failed, **figures, "env_steps": 0, "env_steps_per_s": 0.0}
                    )
                    continue
                mid = midpoint * float(rng.lognormal(0.0, 0.1))  # some seeds learn sooner
                width = env_steps * 0.06
                sps = float(rng.uniform(700.0, 900.0))
                episodes = _episodes(rng, env_steps, mid, width, sps, several)
                evals = _evals(rng, env_steps, eval_every, mid, width, sps, with_q, several)
                ends = episodes["env_step"].to_numpy()
                evals["episodes_done"] = np.searchsorted(ends, evals["env_step"], side="right")
                for path, table, frame in (
                    (layout.episodes_path(trial_id), EPISODES, episodes),
                    (layout.evals_path(trial_id), EVALS, evals),
                ):
                    frame = frame.assign(**ids)
                    write_parquet_atomic(table.conform(frame, where=path), path)
                done = {"status": "complete", "error": "", "wall_s": env_steps / sps}
                figures = {
                    "final_eval_return": float(evals["eval_return_mean"].iloc[-1]),
                    "n_episodes": len(episodes),
                    "env_steps": env_steps,
                    "env_steps_per_s": sps,
                }
                trials.append({**row, **done, **figures})
    index = TRIALS.conform(pd.DataFrame.from_records(trials), where=layout.trials_path)
    write_parquet_atomic(index, layout.trials_path)
    grid = ", ".join(configs)
    env_text = env_id if env_ids is None else "[" + ", ".join(env_ids) + "]"
    spec = (
        f"name: {name}\nenv: {env_text}\nseeds: {n_seeds}\nbudget: {{env_steps: {env_steps}}}\n"
        f"eval: {{every_steps: {eval_every}, episodes: {EVAL_EPISODES}}}\n"
        f"# synthetic grid: {grid}\n"
    )
    write_bytes_atomic(layout.spec_path, spec.encode())
    manifest = json.dumps({"synthetic": True, "seed": seed}) + "\n"
    write_bytes_atomic(layout.manifest_path, manifest.encode())
    return layout.root
