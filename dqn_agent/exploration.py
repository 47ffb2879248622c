"""Epsilon-greedy exploration and the schedules that decay epsilon over training."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

from dqn_agent.config import AgentConfig

Array = TypeVar("Array", torch.Tensor, "np.ndarray[Any, Any]")
"""A torch tensor or a numpy array: `epsilon_greedy` works with either."""


def epsilon_greedy(q: Array, u: Array, epsilon: float) -> Array:
    """Epsilon-greedy actions (K,) from each agent's Q-values (K, n_actions).

    u (K, 2) holds each agent's two uniforms in [0, 1) for this step: with probability epsilon
    (u[:, 0] < epsilon) the agent explores and takes action floor(u[:, 1] * n_actions), chosen
    uniformly; otherwise it takes the greedy action argmax_a Q(s, a).
    """
    n_actions = q.shape[-1]
    if isinstance(q, np.ndarray):
        assert isinstance(u, np.ndarray)
        random_action = (u[:, 1] * n_actions).astype(np.int64)
        actions: Array = np.where(u[:, 0] < epsilon, random_action, q.argmax(-1))
        return actions
    assert isinstance(u, torch.Tensor)
    return torch.where(u[:, 0] < epsilon, (u[:, 1] * n_actions).long(), q.argmax(dim=-1))


def epsilon_at(step: int, config: AgentConfig) -> float:
    """Exploration probability after `step` env steps.

    Linear: a straight line from `epsilon_start` to `epsilon_end` over `epsilon_decay_steps`,
    flat after. Exponential: `end + (start - end) * exp(-step / epsilon_decay_steps)`.
    """
    start, end = config.epsilon_start, config.epsilon_end
    if config.epsilon_schedule == "linear":
        fraction = min(1.0, step / config.epsilon_decay_steps)
        return start + fraction * (end - start)
    return end + (start - end) * math.exp(-step / config.epsilon_decay_steps)
