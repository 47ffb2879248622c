"""TD targets, the TD loss, and target-network updates.

Double DQN is a flag on the target: the online network chooses the next action and the target
network evaluates it, which removes most of the max operator's upward bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from dqn_agent.buffer import Batch
from dqn_agent.config import LossName


def td_target(
    batch: Batch, online: nn.Module, target: nn.Module, *, gamma: float, double: bool
) -> torch.Tensor:
    """r + gamma * (1 - terminated) * Q_target(s', a*), shape (K, batch).

    a* = argmax_a Q_target(s', a) for DQN, argmax_a Q_online(s', a) for Double DQN. A transition
    cut by a time limit is stored with terminated = 0, so it bootstraps as it should.
    """
    with torch.no_grad():
        next_q = target(batch.next_obs)  # (K, batch, n_actions)
        if double:
            best = online(batch.next_obs).argmax(dim=-1, keepdim=True)  # (K, batch, 1)
            next_value = next_q.gather(-1, best).squeeze(-1)
        else:
            next_value = next_q.amax(dim=-1)  # (K, batch)
        y: torch.Tensor = batch.rewards + gamma * (1.0 - batch.terminated) * next_value
        return y


def elementwise_td_loss(
    q_taken: torch.Tensor, target: torch.Tensor, kind: LossName
) -> torch.Tensor:
    """The loss of each sampled transition, (K, batch), from Q(s, a) and its target."""
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, target, reduction="none")
    return F.mse_loss(q_taken, target, reduction="none")


def td_loss(
    q_taken: torch.Tensor, target: torch.Tensor, kind: LossName
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss to minimise and each agent's mean loss (K,), from Q(s, a) and targets, both (K, batch).

    The loss to minimise is the SUM over agents of their mean losses,
    L = sum_k mean_b loss(Q_k(s_b, a_b) - y_b), so each agent's gradient is exactly what it would
    be if it trained alone. `learner.ReferenceLearner.update` minimises it with autograd; the
    fused learner never builds the scalar: `td_loss_gradient` gives its gradient with respect to
    Q(s, a) directly, for the hand-written backward pass.
    """
    per_agent = elementwise_td_loss(q_taken, target, kind).mean(dim=1)  # (K,)
    return per_agent.sum(), per_agent.detach()


def td_loss_gradient(
    q_taken: torch.Tensor, target: torch.Tensor, kind: LossName
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of each transition (K, batch), as `elementwise_td_loss` gives it, and the
    gradient of `td_loss`'s loss to minimise with respect to Q(s, a) (K, batch), worked out by
    hand for `Backprop`.

    With d = Q(s, a) - y: the gradient of MSE (d^2) is 2d; that of Huber (d^2 / 2 for |d| < 1,
    |d| - 1/2 beyond) is d clipped to [-1, 1]; both divided by the batch size (a mean).
    """
    with torch.no_grad():
        loss = elementwise_td_loss(q_taken, target, kind)
        d = q_taken - target
        batch = d.shape[1]
        grad = d.clamp_(-1.0, 1.0).div_(batch) if kind == "huber" else d.mul_(2.0 / batch)
        return loss, grad


def update_target(online: nn.Module, target: nn.Module, *, tau: float) -> None:
    """Polyak update target <- tau * online + (1 - tau) * target; tau = 1 is a hard copy."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            if tau >= 1.0:
                t.copy_(o)
            else:
                t.lerp_(o, tau)
