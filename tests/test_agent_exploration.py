"""Epsilon schedules, and gradient clipping that keeps agents of a group independent."""

from __future__ import annotations

import math

import pytest
import torch

from dqn_agent import AgentConfig
from dqn_agent.exploration import epsilon_at
from dqn_agent.networks import QNetwork, clip_grad_norm_per_agent


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
