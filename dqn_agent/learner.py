"""The learner: what the training loop needs from a Q-learner, and the DQN update as a textbook
writes it.

The training loop (`dqn_agent.training`) steps the environments, stores transitions and samples
batches; everything else goes through the small `Learner` interface below. There are two
learners, for a group of K agents (one per seed) trained side by side:

- `ReferenceLearner` (this file): any Q-network given as a torch module, autograd and a torch
  optimizer. Its `update` is the whole DQN update on one screen; start reading there.
- `FusedLearner` (`dqn_agent.fused`): the same update for the built-in MLP (`network: mlp`),
  with the gradient worked out by hand into buffers allocated once. It is several times faster
  on a CPU, gives the reference's gradients (tested), and is chosen automatically where it
  applies.

Every tensor the loop hands over or gets back has the seed axis first: observations
(K, n, obs_dim), Q-values (K, n, n_actions), per-transition losses (K, batch).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import NamedTuple, Protocol

import torch
from torch import nn

from dqn_agent.buffer import Batch
from dqn_agent.config import AgentConfig
from dqn_agent.exploration import epsilon_greedy
from dqn_agent.networks import clip_grad_norm_per_agent
from dqn_agent.targets import elementwise_td_loss, td_target, update_target


class UpdateStats(NamedTuple):
    """What one update reports for the log, each (K, batch): one value per sampled transition."""

    loss: torch.Tensor
    """The TD loss of each transition (Huber or squared error)."""
    q_taken: torch.Tensor
    """Q(s, a) of each transition, before the update."""


class Learner(Protocol):
    """What the training loop asks of a Q-learner of K agents."""

    def act(self, obs: torch.Tensor, u: torch.Tensor, epsilon: float) -> torch.Tensor:
        """Epsilon-greedy actions (K,) for one observation per agent (K, *obs_shape); u (K, 2) holds
        each agent's two uniforms for this step (see `exploration.epsilon_greedy`)."""
        ...

    def greedy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """argmax_a Q(s, a) for observations (K, n, *obs_shape) -> (K, n), for evaluation."""
        ...

    def update(self, batch: Batch) -> UpdateStats:
        """One gradient step of every agent on its own sampled batch."""
        ...

    def update_target(self) -> None:
        """Move the target network towards the online one (a copy, or a Polyak step)."""
        ...

    def agent_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Agent k's online weights, on the CPU, each with a seed axis of length 1."""
        ...


class ReferenceLearner:
    """DQN with autograd, for any stacked Q-network: the reference every faster learner matches.

    `online` maps observations (K, batch, obs_dim) to Q-values (K, batch, n_actions), and each of
    its parameters has the seed axis first, agent k's weights in slice k: `QNetwork` is one, and
    `dqn_agent.stacked.StackedModule` makes one from any one-agent module. The agents share no
    weight, so summing their losses gives each agent exactly the gradient it would get alone.
    """

    def __init__(self, online: nn.Module, config: AgentConfig) -> None:
        self.online, self.config = online, config
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)
        self.optimizer = make_optimizer(online.parameters(), config)

    def update(self, batch: Batch) -> UpdateStats:
        """One DQN step for every agent: TD target, loss, backward pass, optimizer step."""
        config = self.config
        # y = r + gamma * (1 - terminated) * max_a' Q_target(s', a'), no gradient through it
        # (Double DQN: the online network picks a', the target network scores it).
        y = td_target(batch, self.online, self.target, gamma=config.gamma, double=config.double)

        q = self.online(batch.obs)  # (K, batch, n_actions)
        q_taken = q.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)  # Q(s, a): (K, batch)
        loss = elementwise_td_loss(q_taken, y, config.loss)  # (K, batch)
        # Each agent minimises its mean loss; the sum over agents leaves each gradient its own.
        total = loss.mean(dim=1).sum()

        self.optimizer.zero_grad()
        total.backward()  # type: ignore[no-untyped-call]
        if config.max_grad_norm is not None:
            clip_grad_norm_per_agent(list(self.online.parameters()), config.max_grad_norm)
        self.optimizer.step()
        return UpdateStats(loss.detach(), q_taken.detach())

    def update_target(self) -> None:
        update_target(self.online, self.target, tau=self.config.tau)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (K, n, n_actions) of observations (K, n, obs_dim), without a gradient."""
        with torch.no_grad():
            q: torch.Tensor = self.online(obs)
            return q

    def act(self, obs: torch.Tensor, u: torch.Tensor, epsilon: float) -> torch.Tensor:
        return epsilon_greedy(self.q_values(obs.unsqueeze(1)).squeeze(1), u, epsilon)

    def greedy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(dim=-1)

    def agent_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        return agent_slice(self.online, k)


def make_optimizer(params: Iterable[nn.Parameter], config: AgentConfig) -> torch.optim.Optimizer:
    """The optimizer `config.optimizer` names. Adam and RMSprop work elementwise, so one over
    the stacked weights keeps K independent states: each agent's steps are its own."""
    if config.optimizer == "rmsprop":
        # Centered (the squared gradient's variance, not its raw mean), as MinAtar's DQN.
        return torch.optim.RMSprop(
            params, lr=config.lr, alpha=config.rmsprop_alpha, eps=config.eps, centered=True
        )
    return torch.optim.Adam(params, lr=config.lr, eps=config.eps)


def agent_slice(net: nn.Module, k: int) -> dict[str, torch.Tensor]:
    """Agent k's slice of every tensor of a stacked network's state, keeping a seed axis of
    length 1 (so that a network of one agent loads it), copied to the CPU."""
    return {name: t[k : k + 1].detach().cpu().clone() for name, t in net.state_dict().items()}
