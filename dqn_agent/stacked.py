"""Any one-agent Q-network, stacked over the seed axis so that K agents run as one computation.

A user's network maps observations (batch, obs_dim) to Q-values (batch, n_actions) for one
agent. `StackedModule` holds K copies of it, each initialised from its own seed, with every
parameter stored as one tensor whose first axis is the agent: the layout the learners expect.
`torch.func.vmap` evaluates the K copies at once:

    def layer_norm_mlp(obs_dim: int, n_actions: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(obs_dim, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, n_actions)
        )

    result = dqn_agent.train(spec, network=layer_norm_mlp)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

NetworkFactory = Callable[[int, int], nn.Module]
"""Builds one agent's Q-network from (obs_dim, n_actions); the module maps observations
(batch, obs_dim) to Q-values (batch, n_actions)."""


class StackedModule(nn.Module):
    """K copies of a one-agent module, evaluated together: (K, batch, obs) -> (K, batch, out).

    The copies live in `agents`, a module of the factory's structure whose every parameter and
    buffer has a leading axis of K: its state dict names are the factory's, prefixed 'agents.'.
    """

    def __init__(self, factory: NetworkFactory, obs_dim: int, n_actions: int, seeds: Sequence[int]):
        super().__init__()
        copies = []
        for seed in seeds:
            # Each copy draws its initial weights from torch's global generator, seeded for
            # that agent alone, so an agent's weights do not depend on its group.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                copies.append(factory(obs_dim, n_actions))
        params, buffers = stack_module_state(copies)
        # The structure to call with each agent's tensors; it holds no weights of its own.
        self._template = [copy.deepcopy(copies[0]).to("meta")]  # a list: not a submodule
        self.agents = copies[0]
        for name, value in params.items():
            _replace(self.agents, name, nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            _replace(self.agents, name, value.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (K, batch, n_actions) of observations (K, batch, obs_dim)."""
        template = self._template[0]
        params: dict[str, torch.Tensor] = dict(self.agents.named_parameters())
        buffers: dict[str, torch.Tensor] = dict(self.agents.named_buffers())

        def one_agent(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor
        ) -> torch.Tensor:
            out: torch.Tensor = functional_call(template, (p, b), (x,))
            return out

        q: torch.Tensor = vmap(one_agent)(params, buffers, obs)
        return q

    def agent_module(self, k: int) -> nn.Module:
        """Agent k's network as an ordinary module of the factory's structure (a copy)."""
        single = copy.deepcopy(self._template[0]).to_empty(device="cpu")
        single.load_state_dict(
            {name: t[k].detach().cpu() for name, t in self.agents.state_dict().items()}
        )
        return single


def _replace(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Put `value` where the dotted `name` points, as a parameter or a buffer."""
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    delattr(owner, leaf)
    if isinstance(value, nn.Parameter):
        owner.register_parameter(leaf, value)
    else:
        owner.register_buffer(leaf, value)


def init_seeds(generators: Sequence[torch.Generator]) -> list[int]:
    """One seed per agent for torch's global generator, drawn from each agent's init stream."""
    return [int(torch.randint(2**62, (1,), generator=g)) for g in generators]
