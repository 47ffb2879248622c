"""The fused learner: `ReferenceLearner`'s DQN update for the built-in MLP, made fast on a CPU.

It takes the same step as `learner.ReferenceLearner.update` (read that first) and gives the same
gradients (tests/test_agent_learners.py), but spends less time around the arithmetic, which for
networks this small costs more than the arithmetic itself:

- the loss gradient is worked out by hand (`targets.td_loss_gradient`) and pushed through a
  hand-written backward pass into buffers allocated once (`backprop.Backprop`), with no autograd
  graph and no fresh memory per step;
- every weight lives in one flat tensor (`networks.flatten_parameters`), which Adam updates in
  one call of torch's fused kernel (`optimizer.FlatAdam`);
- on a CPU, acting and evaluation run the network in numpy (`networks.HostQNetwork`), whose
  calls cost less for a handful of observations.

It applies to `QNetwork` (`network: mlp`, with or without the dueling head); `make_learner`
picks it there and the reference learner everywhere else. The design document says what each
part bought (docs/design.md, "The fused learner").
"""

from __future__ import annotations

import copy

import torch

from dqn_agent.backprop import Backprop
from dqn_agent.buffer import Batch
from dqn_agent.config import AgentConfig
from dqn_agent.evaluation import greedy_policy
from dqn_agent.exploration import epsilon_greedy
from dqn_agent.learner import UpdateStats, agent_slice
from dqn_agent.networks import HostQNetwork, QNetwork, clip_grad_norm_per_agent, flatten_parameters
from dqn_agent.optimizer import FlatAdam
from dqn_agent.placement import numpy_for
from dqn_agent.targets import td_loss_gradient, td_target, update_target


class FusedLearner:
    """DQN for a stacked `QNetwork`, with hand-written gradients and a fused Adam step."""

    def __init__(self, online: QNetwork, config: AgentConfig) -> None:
        self.online, self.config = online, config
        self.target = copy.deepcopy(online)
        weights = flatten_parameters(online)  # every weight and bias, and their .grad, in one
        self.backprop = Backprop(online, config.batch_size)  # writes the .grad that Adam reads
        self.optimizer = FlatAdam(weights, lr=config.lr, eps=config.eps)
        device = online.advantage.weight.device
        self.host = HostQNetwork(online) if numpy_for(device) else None
        self._greedy = greedy_policy(online)  # numpy's views of the weights see every update

    def update(self, batch: Batch) -> UpdateStats:
        """The reference learner's step: TD targets, loss gradient, clipping, one Adam step."""
        stats = td_gradients(self.backprop, self.target, batch, self.config)
        if self.config.max_grad_norm is not None:
            clip_grad_norm_per_agent(list(self.online.parameters()), self.config.max_grad_norm)
        self.optimizer.step()
        return stats

    def update_target(self) -> None:
        update_target(self.online, self.target, tau=self.config.tau)

    def act(self, obs: torch.Tensor, u: torch.Tensor, epsilon: float) -> torch.Tensor:
        if self.host is not None:
            q = self.host(obs.numpy()[:, None, :])[:, 0]  # (K, n_actions)
            return torch.from_numpy(epsilon_greedy(q, u.numpy(), epsilon))
        with torch.no_grad():
            q_values: torch.Tensor = self.online(obs.unsqueeze(1)).squeeze(1)  # (K, n_actions)
        return epsilon_greedy(q_values, u, epsilon)

    def greedy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self._greedy(obs)

    def agent_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        return agent_slice(self.online, k)


def td_gradients(
    backprop: Backprop, target: QNetwork, batch: Batch, config: AgentConfig
) -> UpdateStats:
    """The update up to the optimizer: compute the TD targets of `batch` and write every agent's
    loss gradient into the online network's `.grad`. Returns the loss and Q(s, a) of each
    sampled transition, both (K, batch).

    Kept apart from the update so that `benchmarks.bench_compile` can compile exactly this:
    torch 2.13's compiler fails on the fused Adam kernel."""
    y = td_target(batch, backprop.net, target, gamma=config.gamma, double=config.double)
    q = backprop.forward(batch.obs)  # (K, batch, n_actions)
    taken = batch.actions.unsqueeze(-1)
    q_taken = q.gather(-1, taken).squeeze(-1)  # (K, batch)
    loss, grad_taken = td_loss_gradient(q_taken, y, config.loss)
    # The loss sees only Q(s, a): its gradient is zero at the actions not taken.
    backprop.backward(torch.zeros_like(q).scatter_(-1, taken, grad_taken.unsqueeze(-1)))
    return UpdateStats(loss, q_taken)
