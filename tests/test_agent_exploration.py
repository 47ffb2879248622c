"""Epsilon schedules, and gradient clipping that keeps agents of a group independent."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, fused, train_group
from dqn_agent import learner as reference
from dqn_agent.exploration import epsilon_at, epsilon_greedy
from dqn_agent.networks import QNetwork, clip_grad_norm_per_agent


def test_epsilon_greedy_explores_with_probability_epsilon_and_the_same_with_numpy() -> None:
    q = torch.tensor([[1.0, 3.0, 2.0]]).repeat(30_000, 1)  # greedy action: 1
    u = torch.rand(30_000, 2, generator=torch.Generator().manual_seed(0))
    actions = epsilon_greedy(q, u, 0.3)
    explored = u[:, 0] < 0.3
    assert (actions[~explored] == 1).all()
    counts = torch.bincount(actions[explored], minlength=3) / explored.sum()
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.02)  # uniform over actions
    # The rate of non-greedy actions in what epsilon_greedy returns, for several epsilons:
    # epsilon times the chance, 2 in 3, that the uniform action is not the greedy one.
    for epsilon in (0.1, 0.3, 0.9):
        rate = float((epsilon_greedy(q, u, epsilon) != 1).float().mean())
        assert abs(rate - epsilon * 2 / 3) < 0.01, epsilon
    np.testing.assert_array_equal(epsilon_greedy(q.numpy(), u.numpy(), 0.3), actions.numpy())
    assert (epsilon_greedy(q, u, 0.0) == 1).all()


def test_linear_schedule_reaches_the_end_and_stays() -> None:
    config = AgentConfig(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=100)
    assert epsilon_at(0, config) == 1.0
    assert epsilon_at(50, config) == pytest.approx(0.55)
    assert epsilon_at(100, config) == pytest.approx(0.1)
    assert epsilon_at(10_000, config) == pytest.approx(0.1)


def test_exponential_schedule_shrinks_the_excess_by_e_per_decay_period() -> None:
    config = AgentConfig(
        epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=750, epsilon_schedule="exponential"
    )
    assert epsilon_at(0, config) == 1.0
    assert epsilon_at(750, config) == pytest.approx(0.05 + 0.95 / math.e)
    assert epsilon_at(100_000, config) == pytest.approx(0.05, abs=1e-6)


def test_clipping_is_per_agent() -> None:
    net = QNetwork(2, 3, 2, [4])
    net.reset_parameters([torch.Generator().manual_seed(s) for s in (0, 1)])
    params = list(net.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
        p.grad[1] *= 1e-3  # agent 1's gradient is tiny and must stay as it is
    small = [p.grad[1].clone() for p in params if p.grad is not None]
    norms = clip_grad_norm_per_agent(params, max_norm=1.0)
    assert norms[0] > 1.0
    after = clip_grad_norm_per_agent(params, max_norm=1.0)
    assert after[0] == pytest.approx(1.0, rel=1e-4)
    assert all(
        torch.equal(p.grad[1], s) for p, s in zip(params, small, strict=True) if p.grad is not None
    )


@pytest.mark.parametrize("learner", ["fused", "reference"])
def test_the_training_loops_actions_follow_the_schedule(
    learner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off-policy learning and greedy evaluation hide an agent stuck acting at random, so this
    watches the loop's actions: the fraction that differ from the greedy action, per window of
    250 env steps, is epsilon times (1 - 1/n_actions), with epsilon falling linearly from 1 to 0
    over 1,000 steps and 0 after."""
    chosen = fused.FusedLearner if learner == "fused" else reference.ReferenceLearner
    act = chosen.act
    differs: list[float] = []  # per env step: the fraction of agents that did not act greedily

    def watched(self: Any, obs: torch.Tensor, u: torch.Tensor, epsilon: float) -> torch.Tensor:
        actions: torch.Tensor = act(self, obs, u, epsilon)
        greedy = self.greedy_actions(obs.unsqueeze(1)).squeeze(1)
        differs.append(float((actions != greedy).float().mean()))
        return actions

    monkeypatch.setattr(chosen, "act", watched)
    config = AgentConfig(
        hidden_sizes=(16,),
        epsilon_start=1.0,
        epsilon_end=0.0,
        epsilon_decay_steps=1_000,
        epsilon_schedule="linear",
        learning_starts=100,
        train_every=50,
        gradient_steps=1,
        batch_size=16,
    )
    specs = [
        TrialSpec(
            env_id="CartPole-v1",
            agent=config,
            seed=seed,
            budget=Budget(env_steps=1_500),
            eval=EvalSettings(every_steps=1_500, episodes=1),
        )
        for seed in range(8)
    ]
    train_group(specs, learner=learner)  # type: ignore[arg-type]
    assert len(differs) == 1_500
    for start in (0, 250, 500, 750):
        window = differs[start : start + 250]
        epsilon = 1.0 - (start + 125) / 1_000  # the window's mean epsilon
        assert abs(sum(window) / len(window) - epsilon / 2) < 0.06, start
    assert sum(differs[1_000:]) == 0  # epsilon 0: always greedy
