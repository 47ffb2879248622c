"""Agent settings are checked when built, and errors name the field and what is allowed."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

import dqn_agent
from dqn_agent import AgentConfig, Budget, ConfigError, EvalSettings, TrialSpec, default_config


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"hidden_sizes": ()}, "hidden_sizes", "non-empty list of positive integers"),
        ({"hidden_sizes": (64, 0)}, "hidden_sizes", "non-empty list of positive integers"),
        ({"gamma": 1.5}, "gamma", "[0, 1]"),
        ({"gamma": -0.1}, "gamma", "[0, 1]"),
        ({"tau": 0.0}, "tau", "(0, 1]"),
        ({"tau": 1.2}, "tau", "(0, 1]"),
        ({"batch_size": 128, "buffer_size": 64}, "batch_size", "at most buffer_size (64)"),
        ({"lr": 0.0}, "lr", "(0, inf)"),
        ({"loss": "l1"}, "loss", "'mse' or 'huber'"),
        ({"epsilon_schedule": "cosine"}, "epsilon_schedule", "'exponential' or 'linear'"),
        ({"train_every": 0}, "train_every", "integers >= 1"),
        ({"learning_starts": -1}, "learning_starts", "integers >= 0"),
        ({"epsilon_start": 0.1, "epsilon_end": 0.5}, "epsilon_end", "at most epsilon_start"),
        ({"max_grad_norm": -1.0}, "max_grad_norm", "(0, inf)"),
        ({"double": "yes"}, "double", "true or false"),
    ],
)
def test_invalid_values_name_the_field_and_allowed_values(
    changes: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ValueError) as info:
        AgentConfig(**changes)
    message = str(info.value)
    assert message.startswith(f"{field}=")
    assert allowed in message
    assert isinstance(info.value, ConfigError) and info.value.field == field


@pytest.mark.parametrize(
    ("build", "fields", "message"),
    [
        (
            lambda: AgentConfig(lr=0.0),
            ("lr", 0.0, "numbers in (0, inf)", None, ""),
            "lr=0.0 is invalid: allowed values are numbers in (0, inf)",
        ),
        (
            lambda: AgentConfig(hidden_sizes=(64, 0)),
            ("hidden_sizes", [64, 0], "a non-empty list of positive integers", None, ""),
            "hidden_sizes=[64, 0] is invalid: allowed values are a non-empty list of positive "
            "integers",
        ),
        (
            lambda: AgentConfig(batch_size=128, buffer_size=64),
            ("batch_size", 128, "at most buffer_size (64)", "buffer_size", ""),
            "batch_size=128 is invalid: allowed values are at most buffer_size (64)",
        ),
        (
            lambda: AgentConfig(epsilon_start=0.1, epsilon_end=0.5),
            ("epsilon_end", 0.5, "at most epsilon_start (0.1)", "epsilon_start", ""),
            "epsilon_end=0.5 is invalid: allowed values are at most epsilon_start (0.1)",
        ),
        (
            lambda: AgentConfig(network="cnn"),  # type: ignore[arg-type]
            ("network", "cnn", "'mlp' or 'minatar' or 'nature'", None, ""),
            "network='cnn' is invalid: allowed values are 'mlp' or 'minatar' or 'nature'",
        ),
        (
            lambda: Budget(episodes=0),
            ("episodes", 0, "integers >= 1", None, "budget"),
            "budget.episodes=0 is invalid: allowed values are integers >= 1",
        ),
        (
            lambda: EvalSettings(every_steps="3"),  # type: ignore[arg-type]
            ("every_steps", "3", "integers >= 1", None, "eval"),
            "eval.every_steps='3' is invalid: allowed values are integers >= 1",
        ),
        (
            lambda: TrialSpec(env_id="CartPole-v1", seed=-1),
            ("seed", -1, "integers >= 0", None, ""),
            "seed=-1 is invalid: allowed values are integers >= 0",
        ),
    ],
)
def test_errors_carry_the_field_its_value_what_is_allowed_and_the_other_field(
    build: Callable[[], object], fields: tuple[object, ...], message: str
) -> None:
    """Callers read these fields (sweeps.spec blames a key by them); str() reads as before."""
    with pytest.raises(ConfigError) as info:
        build()
    error = info.value
    assert (error.field, error.value, error.allowed, error.other, error.section) == fields
    assert str(error) == message
    assert isinstance(error, ValueError)  # callers catching ValueError still catch it
    copy = pickle.loads(pickle.dumps(error))  # a Ray task may raise it in another process
    assert (copy.field, copy.value, copy.allowed, copy.other, copy.section) == fields
    assert str(copy) == message


def test_config_error_is_exported() -> None:
    assert dqn_agent.ConfigError is dqn_agent.config.ConfigError
    assert "ConfigError" in dqn_agent.__all__


def test_unknown_names_are_refused_with_the_allowed_names() -> None:
    with pytest.raises(ValueError, match=r"unknown agent hyperparameter\(s\) \['hiden_sizes'\]"):
        AgentConfig.from_dict({"hiden_sizes": [64]})


def test_dict_round_trip_gives_an_equal_config() -> None:
    config = AgentConfig(hidden_sizes=(64, 32), double=True, dueling=True, tau=0.005)
    assert AgentConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["hidden_sizes"] == [64, 32]


def test_budget_needs_exactly_one_measure() -> None:
    with pytest.raises(ValueError, match="exactly one of env_steps or episodes"):
        Budget(env_steps=100, episodes=3)
    with pytest.raises(ValueError, match=r"budget\.episodes"):
        Budget(episodes=0)
    assert Budget() == Budget(env_steps=50_000)  # the default measure
    assert (Budget(episodes=10).env_steps, Budget(episodes=10).episodes) == (None, 10)
    with pytest.raises(ValueError, match=r"eval\.every_steps"):
        EvalSettings(every_steps=0)


def test_trial_id_depends_on_content_not_on_device_or_label() -> None:
    spec = TrialSpec(env_id="CartPole-v1", seed=3)
    same = TrialSpec(env_id="CartPole-v1", seed=3, device="cuda", label="other")
    assert spec.trial_id == same.trial_id
    assert TrialSpec(env_id="CartPole-v1", seed=4).trial_id != spec.trial_id
    changed = TrialSpec(env_id="CartPole-v1", seed=3, agent=AgentConfig(lr=1e-3))
    assert changed.trial_id != spec.trial_id


def test_presets_are_valid_and_cartpole_is_the_default() -> None:
    assert default_config("CartPole-v1") == AgentConfig()
    assert default_config("LunarLander-v3").batch_size == 128
    assert default_config("Acrobot-v1") == AgentConfig()
