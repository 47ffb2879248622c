"""A readable, seed-reproducible DQN in PyTorch, usable alone (no Ray, no files).

from dqn_agent import AgentConfig, TrialSpec, train
spec = TrialSpec(env_id="CartPole-v1", agent=AgentConfig(hidden_sizes=(64, 64)), seed=1)
result = train(spec)
result.evals  # a pandas DataFrame of greedy evaluations

The DQN update, loss included, is `learner.ReferenceLearner.update`; `train(spec,
network=factory)` trains a Q-network of your own through it (docs/agent.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dqn_agent.config import (
    ADDED_SETTINGS,
    PRESETS,
    AgentConfig,
    Budget,
    ConfigError,
    EvalSettings,
    TrialSpec,
    check_network,
    default_config,
    hidden_sizes_text,
)
from dqn_agent.envs import UnsupportedEnvError, make_env, observation_shape

if TYPE_CHECKING:
    from dqn_agent.checkpoint import GreedyPolicy, load, save_weights
    from dqn_agent.training import Progress, TrialResult, train, train_group

_NEEDS_TORCH = {
    "GreedyPolicy": "dqn_agent.checkpoint",
    "load": "dqn_agent.checkpoint",
    "save_weights": "dqn_agent.checkpoint",
    "Progress": "dqn_agent.training",
    "TrialResult": "dqn_agent.training",
    "train": "dqn_agent.training",
    "train_group": "dqn_agent.training",
}
"""Names imported from their module on first use (PEP 562). Importing torch takes seconds;
configurations and specs need none of it, so `dqn-sweep validate` and `--help` do not wait
for it."""


def __getattr__(name: str) -> Any:
    if name in _NEEDS_TORCH:
        return getattr(importlib.import_module(_NEEDS_TORCH[name]), name)
    raise AttributeError(f"module 'dqn_agent' has no attribute {name!r}")


__all__ = [
    "ADDED_SETTINGS",
    "PRESETS",
    "AgentConfig",
    "Budget",
    "ConfigError",
    "EvalSettings",
    "GreedyPolicy",
    "Progress",
    "TrialResult",
    "TrialSpec",
    "UnsupportedEnvError",
    "check_network",
    "default_config",
    "hidden_sizes_text",
    "load",
    "make_env",
    "observation_shape",
    "save_weights",
    "train",
    "train_group",
]
