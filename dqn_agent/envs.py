"""Making environments and checking that the agent can handle their spaces."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class UnsupportedEnvError(ValueError):
    """The environment id is unknown, or its spaces are not flat Box -> Discrete."""


def make_env(env_id: str) -> gym.Env[Any, Any]:
    """Make `env_id` and check its spaces; raises `UnsupportedEnvError` with what to change."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise UnsupportedEnvError(
            f"env {env_id!r} is not a registered gymnasium environment ({exc}); "
            "use an id such as 'CartPole-v1', 'Acrobot-v1', 'MountainCar-v0' or 'LunarLander-v3'"
        ) from exc
    check_spaces(env_id, env.observation_space, env.action_space)
    return env


def check_spaces(
    env_id: str, observation_space: gym.Space[Any], action_space: gym.Space[Any]
) -> None:
    """DQN here needs a flat Box of observations and a Discrete set of actions."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UnsupportedEnvError(
            f"env {env_id!r} has observation space {observation_space}: this DQN needs a flat "
            "Box (a 1-D vector of numbers); wrap the env (e.g. FlattenObservation) or pick another"
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedEnvError(
            f"env {env_id!r} has action space {action_space}: DQN needs a Discrete set of "
            "actions; discretise the actions or use an algorithm for continuous control"
        )


def space_sizes(env: gym.Env[Any, Any]) -> tuple[int, int]:
    """(observation dimension, number of actions) of a checked env."""
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    return obs_dim, n_actions
