"""Saved weights carry their config: a reloaded agent acts exactly like the trained one."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, load, train
from dqn_agent.networks import QNetwork


@pytest.mark.parametrize("dueling", [False, True])
def test_save_load_round_trip_gives_identical_greedy_actions(tmp_path: Path, dueling: bool) -> None:
    spec = TrialSpec(
        env_id="CartPole-v1",
        agent=AgentConfig(
            hidden_sizes=(16, 8),
            dueling=dueling,
            learning_starts=50,
            train_every=1,
            gradient_steps=1,
            batch_size=16,
            buffer_size=500,
        ),
        seed=2,
        budget=Budget(env_steps=400),
        eval=EvalSettings(every_steps=400, episodes=1),
    )
    result = train(spec)
    path = tmp_path / "agent.pt"
    result.save(str(path))
    policy = load(path)
    assert policy.config == spec.agent and policy.env_id == "CartPole-v1"

    trained = QNetwork(1, 4, 2, spec.agent.hidden_sizes, dueling=dueling)
    trained.load_state_dict(result.state_dict)
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    with torch.no_grad():
        expected = trained(torch.as_tensor(obs).unsqueeze(0))[0]
    assert torch.equal(policy.q_values(obs), expected)
    assert [policy.act(o) for o in obs] == expected.argmax(dim=-1).tolist()
    # evaluate plays greedy episodes on one env seeded once: as by hand, with the trained net.
    env, by_hand = gym.make("CartPole-v1"), []
    observation, _ = env.reset(seed=5)
    for _ in range(3):
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                q = trained(torch.as_tensor(observation, dtype=torch.float32).view(1, 1, 4))
            observation, reward, terminated, truncated, _ = env.step(int(q.argmax()))
            total, done = total + float(reward), terminated or truncated
        by_hand.append(total)
        observation, _ = env.reset()
    assert policy.evaluate(episodes=3, seed=5) == by_hand
    assert not list(tmp_path.glob(".*tmp"))


def test_loading_a_foreign_file_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    for foreign in ({"weights": 1}, torch.zeros(3), [1, 2], {"format": 1, "config": {}}):
        torch.save(foreign, path)
        with pytest.raises(ValueError, match=r"other\.pt: not a dqn_agent weights file"):
            load(path)
    path.write_text("hidden_sizes: [64]\n")
    with pytest.raises(ValueError, match=r"other\.pt: cannot be read as a torch file"):
        load(path)
    with pytest.raises(ValueError, match=r"is a folder: pass one weights file"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.pt")
