"""The memory estimate against what training allocates, and the planner's use of it: groups
split to fit a task's memory, a seed that cannot fit refused before anything runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dqn_agent import AgentConfig, default_config
from dqn_agent.buffer import ReplayBuffer
from dqn_agent.conv import StackedConvQNetwork, conv_factory
from dqn_agent.frames import FrameReplayBuffer
from dqn_agent.memory import (
    NETWORK_COPIES,
    frame_buffer_bytes,
    task_memory,
    vector_buffer_bytes,
)
from dqn_agent.networks import QNetwork
from sweeps.cli import main
from sweeps.plan import make_plan, memory_warning, unit_memory
from sweeps.spec import InputError, parse_spec


def _bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def test_the_replay_estimates_are_what_the_buffers_allocate() -> None:
    vectors = ReplayBuffer(3, 1000, 8)
    assert 3 * vector_buffer_bytes(8, 1000) == _bytes(vectors.storage)
    frames = FrameReplayBuffer(3, 1000, (1, 84, 84), 4)
    held = (frames.frames, frames.actions, frames.rewards, frames.terminated, frames.ended)
    assert 3 * frame_buffer_bytes((1, 84, 84), 1000) == _bytes(*held, frames.position)


@pytest.mark.parametrize("dueling", [False, True])
def test_the_network_estimate_counts_every_parameter(dueling: bool) -> None:
    mlp = AgentConfig(hidden_sizes=(64, 32), dueling=dueling)
    net = QNetwork(4, 8, 3, mlp.hidden_sizes, dueling=dueling)
    params = sum(p.numel() for p in net.parameters())
    assert task_memory(mlp, (8,), 3, 4).networks == params * NETWORK_COPIES * 4
    for env_id, shape in (("MinAtar/Breakout-v0", (4, 10, 10)), ("ALE/Pong-v5", (4, 84, 84))):
        config = dataclasses.replace(default_config(env_id), dueling=dueling)
        conv = StackedConvQNetwork(conv_factory(config, shape), shape, 6, [0, 1])
        params = sum(p.numel() for p in conv.parameters())
        frames = 4 if env_id.startswith("ALE/") else 1
        estimate = task_memory(config, shape, 6, 2, frames_per_observation=frames)
        assert estimate.networks == params * NETWORK_COPIES * 4


MINATAR = """\
name: memory
env: MinAtar/Breakout-v0
seeds: 6
budget: {env_steps: 100000}
agent: {buffer_size: 1000000}
"""


def test_a_group_too_large_for_a_task_is_split_into_groups_that_fit() -> None:
    spec = parse_spec(MINATAR)
    one = unit_memory(spec, spec.configs[0].agent, 1)
    assert one is not None
    replay_per_seed = 411 * 1_000_000
    assert one.replay == replay_per_seed
    limit = one.total + 1.5 * replay_per_seed  # room for two seeds, not three
    plan = make_plan(spec, group_size=6, memory_per_task=limit)
    assert [len(unit) for unit in plan.units] == [2, 2, 2]
    two, three = (unit_memory(spec, spec.configs[0].agent, n) for n in (2, 3))
    assert two is not None and three is not None
    assert two.total <= limit < three.total
    roomy = make_plan(spec, group_size=6, memory_per_task=10 * limit)
    assert [len(unit) for unit in roomy.units] == [6]


def test_a_seed_that_cannot_fit_is_refused_naming_what_to_lower() -> None:
    spec = parse_spec(MINATAR)
    with pytest.raises(InputError) as error:
        make_plan(spec, group_size=1, memory_per_task=100e6)
    message = str(error.value)
    assert "agent.buffer_size" in message and "1,000,000 transitions" in message
    assert "0.41 GB a seed" in message


def test_validate_refuses_a_spec_this_machine_cannot_hold_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A replay of 10^11 CartPole transitions: about 4.4 TB a seed.
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: huge\nenv: CartPole-v1\nseeds: 2\nbudget: {env_steps: 1000}\n"
        "agent: {buffer_size: 100000000000}\n"
    )
    before = sorted(tmp_path.iterdir())
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "agent.buffer_size" in err and "Traceback" not in err
    assert len(err) < 400
    assert sorted(tmp_path.iterdir()) == before


def test_a_task_over_half_of_its_memory_gets_a_warning_with_the_figure() -> None:
    spec = parse_spec(MINATAR)
    units = make_plan(spec, group_size=6).units
    six = unit_memory(spec, spec.configs[0].agent, 6)
    assert six is not None
    warning = memory_warning(spec, units, 1.5 * six.total)
    assert f"about {six.describe()}" in warning and "agent.buffer_size" in warning
    assert memory_warning(spec, units, 2.5 * six.total) == ""
    assert memory_warning(spec, units, None) == ""
