"""Epsilon-greedy exploration and the schedules that decay epsilon over training."""

from __future__ import annotations

import math

from dqn_agent.config import AgentConfig


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
