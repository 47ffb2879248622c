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
    """A sampled minibatch for K agents; every field has leading shape (K, batch).
    Observations are (K, batch, obs_dim) float vectors or (K, batch, C, H, W) uint8 images."""

    obs: torch.Tensor
    actions: torch.Tensor  # (K, batch) int64
    rewards: torch.Tensor  # (K, batch)
    next_obs: torch.Tensor
    terminated: torch.Tensor  # (K, batch) float, 1.0 where the episode ended for real


class ReplayBuffer:
    """A ring of the last `capacity` transitions of each of `n_agents` agents.

    A transition is stored as one row of numbers, [obs, next_obs, action, reward, terminated],
    so that adding is one write and sampling one gather, whatever the number of agents.
    """

    def __init__(
        self, n_agents: int, capacity: int, obs_dim: int, *, device: torch.device | str = "cpu"
    ) -> None:
        self.capacity, self.obs_dim = capacity, obs_dim
        self.device = torch.device(device)
        self.storage = torch.zeros(n_agents, capacity, 2 * obs_dim + 3, device=self.device)
        self._first_row = torch.arange(n_agents, device=self.device).unsqueeze(1) * capacity
        """Where each agent's slice starts in the storage viewed as one column of rows."""
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
        truncated: torch.Tensor | None = None,
    ) -> None:
        """Write one transition per agent: obs and next_obs (K, obs_dim), the rest (K,).
        `truncated` is not needed here: next_obs, stored whole, is what a cut episode's target
        bootstraps from (it is for `dqn_agent.frames.FrameReplayBuffer`, which shares frames)."""
        scalars = torch.stack((actions.float(), rewards.float(), terminated.float()), dim=1)
        self.storage[:, self.pos] = torch.cat((obs, next_obs, scalars), dim=1)
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, uniforms: torch.Tensor) -> Batch:
        """Draw stored transitions uniformly, with replacement: uniforms (K, batch) in [0, 1),
        each agent's from its own generator, pick which (so an agent's draws do not depend on
        the rest of its group, and sampling never waits for the host)."""
        size = len(self)
        if size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = (uniforms * size).long().clamp_(max=size - 1)  # (K, batch), within each slice
        rows = self.storage.view(-1, self.storage.shape[-1])  # (K * capacity, 2 * obs_dim + 3)
        sampled = rows.index_select(0, (idx + self._first_row).view(-1)).view(*idx.shape, -1)
        d = self.obs_dim
        return Batch(
            obs=sampled[..., :d],
            next_obs=sampled[..., d : 2 * d],
            actions=sampled[..., 2 * d].long(),
            rewards=sampled[..., 2 * d + 1],
            terminated=sampled[..., 2 * d + 2],
        )
