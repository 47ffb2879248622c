"""The replay buffer: a ring that overwrites the oldest transitions, sampled per agent."""

from __future__ import annotations

import torch

from dqn_agent.buffer import ReplayBuffer


def _add(buffer: ReplayBuffer, value: float, n_agents: int = 2) -> None:
    obs = torch.full((n_agents, 3), value)
    buffer.add(
        obs,
        torch.full((n_agents,), int(value)),
        torch.full((n_agents,), value),
        obs + 0.5,
        torch.zeros(n_agents),
    )


def test_ring_wraps_and_overwrites_oldest() -> None:
    buffer = ReplayBuffer(2, capacity=4, obs_dim=3)
    for value in range(6):
        _add(buffer, float(value))
    assert buffer.full and len(buffer) == 4 and buffer.pos == 2
    # Slots 0 and 1 were overwritten by transitions 4 and 5; slots 2 and 3 keep 2 and 3.
    assert buffer.rewards[0].tolist() == [4.0, 5.0, 2.0, 3.0]
    assert buffer.rewards[1].tolist() == [4.0, 5.0, 2.0, 3.0]


def test_sampling_only_returns_stored_transitions() -> None:
    buffer = ReplayBuffer(2, capacity=10, obs_dim=3)
    for value in range(3):
        _add(buffer, float(value))
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    batch = buffer.sample(256, gens)
    assert batch.obs.shape == (2, 256, 3) and batch.actions.shape == (2, 256)
    assert set(batch.rewards.flatten().tolist()) == {0.0, 1.0, 2.0}
    # Every field of a sampled row comes from the same transition.
    assert torch.equal(batch.next_obs, batch.obs + 0.5)
    assert torch.equal(batch.actions.float(), batch.rewards)


def test_each_agent_samples_from_its_own_generator() -> None:
    buffer = ReplayBuffer(2, capacity=100, obs_dim=3)
    for value in range(100):
        _add(buffer, float(value))
    alone = ReplayBuffer(1, capacity=100, obs_dim=3)
    for value in range(100):
        _add(alone, float(value), n_agents=1)
    pair = buffer.sample(32, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)])
    single = alone.sample(32, [torch.Generator().manual_seed(8)])
    assert torch.equal(pair.rewards[1], single.rewards[0])
    assert not torch.equal(pair.rewards[0], pair.rewards[1])
