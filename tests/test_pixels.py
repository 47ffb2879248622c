"""DQN from pixels: MinAtar and Atari environments, convolutional networks stacked over seeds,
and the refusal of networks that cannot read an env's observations."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from pandas.testing import assert_frame_equal
from torch import nn

from dqn_agent import AgentConfig, ConfigError, TrialSpec, check_network, default_config, make_env
from dqn_agent.config import Budget, EvalSettings
from dqn_agent.conv import MinAtarQNetwork, NatureQNetwork, StackedConvQNetwork, conv_factory
from dqn_agent.learner import ReferenceLearner
from dqn_agent.training import train, train_group
from sweeps.spec import SpecError, parse_spec

MINATAR_SHAPE = (4, 10, 10)  # MinAtar Breakout: 4 channels
ATARI_SHAPE = (4, 84, 84)


@pytest.mark.parametrize("network", ["minatar", "nature"])
@pytest.mark.parametrize("dueling", [False, True])
def test_a_stack_of_conv_networks_gives_each_agent_its_own_network_s_output(
    network: str, dueling: bool
) -> None:
    """K agents' convolutions as one vmapped computation equal K separate networks of torch's
    own nn.Conv2d, each built from its own seed as if alone."""
    shape = MINATAR_SHAPE if network == "minatar" else ATARI_SHAPE
    env_id = "MinAtar/Breakout-v0" if network == "minatar" else "ALE/Pong-v5"
    config = dataclasses.replace(default_config(env_id), dueling=dueling)
    factory = conv_factory(config, shape)
    seeds = [11, 22, 33]
    high = 256 if network == "nature" else 2
    for per_agent in (True, False):  # the CPU's way, and a GPU's, here on the CPU
        stacked = StackedConvQNetwork(factory, shape, 6, seeds, per_agent=per_agent)
        for batch in (1, 10, 32):
            obs = torch.randint(0, high, (3, batch, *shape), dtype=torch.uint8)
            q = stacked(obs)
            assert q.shape == (3, batch, 6)
            for k, seed in enumerate(seeds):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    alone = factory(0, 6)  # an ordinary module of torch's nn.Conv2d layers
                torch.testing.assert_close(q[k], alone(obs[k]), rtol=1e-5, atol=1e-5)
            assert not torch.allclose(q[0], q[1])  # each agent its own weights


@pytest.mark.parametrize("dueling", [False, True])
def test_a_conv_agent_s_q_values_are_the_same_bits_alone_or_in_a_group(dueling: bool) -> None:
    config = dataclasses.replace(default_config("MinAtar/Breakout-v0"), dueling=dueling)
    factory = conv_factory(config, MINATAR_SHAPE)
    group = StackedConvQNetwork(factory, MINATAR_SHAPE, 6, [1, 2, 3])
    alone = StackedConvQNetwork(factory, MINATAR_SHAPE, 6, [2])
    for batch in (1, 10, 32):
        obs = torch.randint(0, 2, (3, batch, *MINATAR_SHAPE), dtype=torch.uint8)
        assert torch.equal(group(obs)[1], alone(obs[1:2])[0])


def test_the_network_families_have_the_published_layers() -> None:
    minatar = MinAtarQNetwork(MINATAR_SHAPE, 6)
    convs = [m for m in minatar.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (3, 3), (1, 1))]
    assert minatar.hidden[0].in_features == 16 * 8 * 8
    assert minatar.hidden[0].out_features == 128
    nature = NatureQNetwork(ATARI_SHAPE, 4)
    convs = [m for m in nature.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 8, 4),
        (64, 4, 2),
        (64, 3, 1),
    ]
    assert nature.hidden[0].in_features == 3136  # 64 x 7 x 7
    assert nature.hidden[0].out_features == 512


def test_minatar_observations_are_channel_first_uint8() -> None:
    env = make_env("MinAtar/SpaceInvaders-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 10, 10) and obs.dtype == np.uint8
    assert set(np.unique(obs)) <= {0, 1}
    assert env.action_space == gym.spaces.Discrete(6)
    minimal = make_env("MinAtar/SpaceInvaders-v1").action_space
    assert minimal == gym.spaces.Discrete(4)
    # Every game, Seaquest's 10 channels on 10 x 10 included.
    channels = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
    for game, c in channels.items():
        assert make_env(f"MinAtar/{game}-v0").observation_space.shape == (c, 10, 10)


def test_networks_that_cannot_read_the_observations_are_refused_naming_network() -> None:
    minatar = default_config("MinAtar/Breakout-v0")
    with pytest.raises(ConfigError) as error:
        check_network(AgentConfig(), "MinAtar/Breakout-v0", MINATAR_SHAPE)
    assert error.value.field == "network" and "'minatar' or 'nature'" in str(error.value)
    with pytest.raises(ConfigError) as error:
        check_network(minatar, "CartPole-v1", (4,))
    assert error.value.field == "network" and "'mlp'" in str(error.value)
    nature = dataclasses.replace(minatar, network="nature")
    with pytest.raises(ConfigError) as error:
        check_network(nature, "MinAtar/Breakout-v0", MINATAR_SHAPE)
    assert error.value.field == "network"
    five = dataclasses.replace(minatar, channels=(8, 8, 8, 8, 8))
    with pytest.raises(ConfigError) as error:
        check_network(five, "MinAtar/Breakout-v0", MINATAR_SHAPE)
    assert error.value.field == "channels" and "at most 4 convolutions" in str(error.value)
    check_network(minatar, "MinAtar/Breakout-v0", MINATAR_SHAPE)  # the preset fits


def _spec_problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as error:
        parse_spec(text)
    return error.value.problems


def test_validate_names_network_for_an_mlp_on_images_and_a_conv_net_on_vectors() -> None:
    base = "name: t\nseeds: 2\nbudget: {env_steps: 1000}\n"
    problems = _spec_problems(base + "env: MinAtar/Breakout-v0\nagent: {network: mlp}\n")
    assert [path for path, _ in problems] == ["agent.network"]
    problems = _spec_problems(base + "env: CartPole-v1\ngrid: {network: [mlp, minatar]}\n")
    assert [path for path, _ in problems] == ["grid.network[1]"]
    assert "'mlp' for CartPole-v1" in problems[0][1]
    problems = _spec_problems(base + "env: CartPole-v1\nagent: {channels: [16]}\n")
    assert [path for path, _ in problems] == ["agent.channels"]


def test_the_channels_grid_sweeps_network_sizes_on_pixels() -> None:
    spec = parse_spec(
        "name: sizes\nenv: MinAtar/Breakout-v0\nseeds: 2\nbudget: {env_steps: 1000}\n"
        "grid: {channels: [[8], [16], [32]]}\n"
    )
    assert [p.label for p in spec.configs] == ["channels=8", "channels=16", "channels=32"]
    assert [p.agent.conv_channels for p in spec.configs] == [(8,), (16,), (32,)]
    problems = _spec_problems(
        "name: sizes\nenv: MinAtar/Breakout-v0\nseeds: 2\nbudget: {env_steps: 1000}\n"
        "grid: {channels: [8, 16]}\n"
    )
    assert problems[0][0] == "grid.channels[0]" and "[[8], [16], [32]]" in problems[0][1]


def test_the_added_settings_keep_every_existing_trial_id() -> None:
    """Ids published before images existed: the settings added since are hashed only when set."""
    spec = TrialSpec(env_id="CartPole-v1")
    assert spec.trial_id == "0622e419338b"
    changed = dataclasses.replace(spec, agent=AgentConfig(optimizer="rmsprop"))
    assert changed.trial_id != spec.trial_id


def _tiny_minatar(seed: int, **agent: object) -> TrialSpec:
    config = dataclasses.replace(
        default_config("MinAtar/Breakout-v0"),
        buffer_size=400,
        learning_starts=100,
        batch_size=8,
        target_update_every=50,
        channels=(4,),
        hidden_sizes=(16,),
        **agent,  # type: ignore[arg-type]
    )
    return TrialSpec(
        env_id="MinAtar/Breakout-v0",
        agent=config,
        seed=seed,
        budget=Budget(env_steps=400),
        eval=EvalSettings(every_steps=200, episodes=2),
    )


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_a_minatar_seed_trains_the_same_alone_or_in_a_group(optimizer: str) -> None:
    specs = [_tiny_minatar(seed, optimizer=optimizer) for seed in (3, 4, 5)]
    group = train_group(specs)
    alone = train(specs[1])
    cols = ["env_step", "eval_return_mean", "eval_return_std", "q_mean", "td_loss"]
    assert_frame_equal(group[1].evals[cols], alone.evals[cols], check_exact=True)
    assert_frame_equal(
        group[1].episodes.drop(columns="wall_s"),
        alone.episodes.drop(columns="wall_s"),
        check_exact=True,
    )
    for name, weight in alone.state_dict.items():
        assert torch.equal(weight, group[1].state_dict[name]), name
    assert np.isfinite(alone.evals["td_loss"].iloc[-1])


def test_the_minatar_preset_trains_through_the_reference_learner_with_rmsprop() -> None:
    from dqn_agent.training import _make_learner  # the choice the loop makes

    spec = _tiny_minatar(0)
    gens = [torch.Generator().manual_seed(1)]
    learner = _make_learner("auto", None, spec, MINATAR_SHAPE, 6, gens)
    assert isinstance(learner, ReferenceLearner)
    optimizer = learner.optimizer
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"], group["centered"]) == (
        2.5e-4,
        0.95,
        0.01,
        True,
    )
