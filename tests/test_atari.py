"""Atari end to end: a sweep of an ALE game trains a few hundred steps on Ray from stacked uint8
frames, writes its Parquet files, and saves a model that loads back and acts. Learning Atari
takes millions of steps, out of reach here: this checks the path, not the scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dqn_agent import load, make_env
from dqn_agent.frames import FrameReplayBuffer
from dqn_agent.training import make_buffer
from sweeps.runner import RunOptions, run_sweep
from sweeps.spec import load_spec
from tests.conftest import write_spec

ATARI_SPEC = """\
name: atari_tiny
env: ALE/Pong-v5
seeds: 2
budget: {env_steps: 300}
eval: {every_steps: 300, episodes: 1}
agent: {buffer_size: 1000, learning_starts: 100, epsilon_decay_steps: 300}
resources: {cpus_per_trial: 1}
"""


def test_atari_observations_are_four_stacked_uint8_frames_stored_once() -> None:
    env = make_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    buffer = make_buffer("ALE/Pong-v5", 2, 100, (4, 84, 84), torch.device("cpu"))
    assert isinstance(buffer, FrameReplayBuffer)
    assert buffer.frame_shape == (1, 84, 84) and buffer.stack == 4
    assert buffer.bytes_per_transition() == 84 * 84 + 11


@pytest.mark.slow
@pytest.mark.usefixtures("ray_instance")
def test_an_atari_sweep_trains_writes_parquet_and_saves_a_model_that_acts(
    tmp_path: Path,
) -> None:
    spec = load_spec(write_spec(tmp_path, ATARI_SPEC))
    out = tmp_path / "out"
    report = run_sweep(spec, RunOptions(out=out, quiet=True))
    assert report.exit_code == 0
    folder = out / "atari_tiny"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert list(trials["status"]) == ["complete", "complete"]
    assert set(trials["network"]) == {"nature"} and set(trials["clip_rewards"]) == {True}
    for trial_id in trials["trial_id"]:
        evals = pd.read_parquet(folder / "evals" / f"{trial_id}.parquet")
        assert list(evals["env_step"]) == [0, 300]
        # 200 steps of updates (from step 100, every 4 steps): a finite loss was logged.
        assert np.isfinite(evals["td_loss"].iloc[-1]) and np.isfinite(evals["q_mean"].iloc[-1])
        policy = load(folder / "models" / f"{trial_id}.pt")
        obs, _ = make_env("ALE/Pong-v5").reset(seed=1)
        assert policy.q_values(obs).shape == (1, 6)
        assert 0 <= policy.act(obs) < 6
