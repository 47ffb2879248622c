"""A readable, seed-reproducible DQN in PyTorch, usable alone (no Ray, no files).

from dqn_agent import AgentConfig, TrialSpec, train
spec = TrialSpec(env_id="CartPole-v1", agent=AgentConfig(hidden_sizes=(64, 64)), seed=1)
result = train(spec)
result.evals  # a pandas DataFrame of greedy evaluations
"""

from __future__ import annotations

from dqn_agent.checkpoint import GreedyPolicy, load, save_weights
from dqn_agent.config import (
    PRESETS,
    AgentConfig,
    Budget,
    EvalSettings,
    TrialSpec,
    default_config,
    hidden_sizes_text,
)
from dqn_agent.envs import UnsupportedEnvError, make_env
from dqn_agent.training import Progress, TrialResult, train, train_group

__all__ = [
    "PRESETS",
    "AgentConfig",
    "Budget",
    "EvalSettings",
    "GreedyPolicy",
    "Progress",
    "TrialResult",
    "TrialSpec",
    "UnsupportedEnvError",
    "default_config",
    "hidden_sizes_text",
    "load",
    "make_env",
    "save_weights",
    "train",
    "train_group",
]
