"""Replay buffer: pre-allocated tensors with a ring pointer, one slice per agent of a group.

All agents of a group step in lockstep, so they share the write position; each agent samples
its own transitions with its own generator. The buffer stores `terminated` (the episode really
ended, so the target is the reward alone) and never `truncated` (a time limit cut the episode,
so the target still bootstraps from the next state).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A sampled minibatch for K agents; every field has leading shape (K, batch)."""

    obs: torch.Tensor  # (K, batch, obs_dim)
    actions: torch.Tensor  # (K, batch) int64
    rewards: torch.Tensor  # (K, batch)
    next_obs: torch.Tensor  # (K, batch, obs_dim)
    terminated: torch.Tensor  # (K, batch) float, 1.0 where the episode ended for real


class ReplayBuffer:
    """A ring of the last `capacity` transitions of each of `n_agents` agents."""

    def __init__(
        self, n_agents: int, capacity: int, obs_dim: int, *, device: torch.device | str = "cpu"
    ) -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        shape = (n_agents, capacity)
        self.obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.next_obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(shape, device=self.device)
        self.terminated = torch.zeros(shape, device=self.device)
        self.pos = 0
        """Index the next transition is written to."""
        self.full = False
        """True once the ring has wrapped: every slot then holds a transition."""

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Write one transition per agent (every argument has leading shape (K,))."""
        i = self.pos
        self.obs[:, i] = obs
        self.actions[:, i] = actions
        self.rewards[:, i] = rewards
        self.next_obs[:, i] = next_obs
        self.terminated[:, i] = terminated
        self.pos = (i + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, uniforms: torch.Tensor) -> Batch:
        """Draw stored transitions uniformly, with replacement: uniforms (K, batch) in [0, 1),
        each agent's from its own generator, pick which (so an agent's draws do not depend on
        the rest of its group, and sampling never waits for the host)."""
        size = len(self)
        if size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = (uniforms * size).long().clamp_(max=size - 1)  # (K, batch)
        rows = torch.arange(uniforms.shape[0], device=self.device).unsqueeze(1)  # (K, 1)
        return Batch(
            obs=self.obs[rows, idx],
            actions=self.actions[rows, idx],
            rewards=self.rewards[rows, idx],
            next_obs=self.next_obs[rows, idx],
            terminated=self.terminated[rows, idx],
        )
