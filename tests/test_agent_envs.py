"""Environments the agent handles, and clear errors for those it cannot."""

from __future__ import annotations

import pytest

from dqn_agent import UnsupportedEnvError, make_env


@pytest.mark.parametrize(
    "env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"]
)
def test_supported_envs(env_id: str) -> None:
    make_env(env_id).close()


def test_unknown_env_names_the_id() -> None:
    with pytest.raises(UnsupportedEnvError, match="'CartPole-v9' is not a registered"):
        make_env("CartPole-v9")


def test_continuous_actions_are_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedEnvError, match=r"Pendulum-v1.*needs a Discrete set of actions"):
        make_env("Pendulum-v1")


def test_image_observations_are_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedEnvError, match="needs a flat Box"):
        make_env("Blackjack-v1")
