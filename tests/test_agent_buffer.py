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
    in_order = buffer.sample(torch.tensor([[0.0, 0.25, 0.5, 0.75]] * 2))
    assert in_order.rewards.tolist() == [[4.0, 5.0, 2.0, 3.0]] * 2


def test_sampling_only_returns_stored_transitions() -> None:
    buffer = ReplayBuffer(2, capacity=10, obs_dim=3)
    for value in range(3):
        _add(buffer, float(value))
    batch = buffer.sample(torch.rand(2, 256, generator=torch.Generator().manual_seed(0)))
    assert batch.obs.shape == (2, 256, 3) and batch.actions.shape == (2, 256)
    assert set(batch.rewards.flatten().tolist()) == {0.0, 1.0, 2.0}
    # Every field of a sampled row comes from the same transition.
    assert torch.equal(batch.next_obs, batch.obs + 0.5)
    assert torch.equal(batch.actions.float(), batch.rewards)


def test_uniforms_map_onto_the_stored_slots_only() -> None:
    buffer = ReplayBuffer(1, capacity=100, obs_dim=3)
    for value in range(10):
        _add(buffer, float(value), n_agents=1)
    # [0, 0.1) -> slot 0, ..., [0.9, 1) -> slot 9: slots past the 10 stored are never drawn.
    u = torch.tensor([[0.0, 0.05, 0.1, 0.55, 0.9999]])
    assert buffer.sample(u).rewards.tolist() == [[0.0, 0.0, 1.0, 5.0, 9.0]]
    for value in range(10, 120):
        _add(buffer, float(value), n_agents=1)
    assert buffer.sample(torch.tensor([[0.9999]])).rewards.tolist() == [[99.0]]
