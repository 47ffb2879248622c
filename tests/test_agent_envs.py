"""Environments the agent handles, and clear errors for those it cannot."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dqn_agent import UnsupportedEnvError, make_env
from dqn_agent.envs import check_spaces, space_sizes


@pytest.mark.parametrize(
    ("env_id", "sizes"),
    [
        ("CartPole-v1", (4, 2)),
        ("Acrobot-v1", (6, 3)),
        ("MountainCar-v0", (2, 3)),
        ("LunarLander-v3", (8, 4)),
    ],
)
def test_supported_envs(env_id: str, sizes: tuple[int, int]) -> None:
    env = make_env(env_id)
    assert space_sizes(env) == sizes  # (observation dimension, number of actions)
    env.close()


def test_unknown_env_names_the_id() -> None:
    with pytest.raises(UnsupportedEnvError, match="'CartPole-v9' is not a registered"):
        make_env("CartPole-v9")


def test_continuous_actions_are_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedEnvError, match=r"Pendulum-v1.*needs a Discrete set of actions"):
        make_env("Pendulum-v1")


def test_image_observations_are_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedEnvError, match="needs a flat Box"):
        make_env("Blackjack-v1")  # a tuple of discrete observations
    image = gym.spaces.Box(0, 255, (96, 96, 3), dtype=np.uint8)  # as CarRacing's
    with pytest.raises(UnsupportedEnvError, match=r"'Pixels-v0' .*needs a flat Box"):
        check_spaces("Pixels-v0", image, gym.spaces.Discrete(5))
    check_spaces("Flat-v0", gym.spaces.Box(-1, 1, (8,)), gym.spaces.Discrete(5))  # accepted
