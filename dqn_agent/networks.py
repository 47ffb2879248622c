"""Q-networks for a group of independent agents, stacked along a leading seed axis.

A group of K agents (one per seed) shares nothing but the arithmetic: each agent's weights are one
slice of a (K, fan_in, fan_out) tensor, and a batched matrix product evaluates all K networks in
one call. With K = 1 this is an ordinary MLP. Each slice is initialised from its own seed's
generator, so an agent's weights do not depend on which other seeds share its group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

NARROW = 16
"""Layers with fewer outputs than this (the Q-value heads, and any hidden layer as narrow) store
their weights transposed, and are evaluated transposed for batches at least this large (see
`StackedLinear`)."""


class StackedLinear(nn.Module):
    """K independent affine maps y_k = x_k W_k + b_k, evaluated as one batched product.

    The weight has shape (K, in, out). A narrow layer (fewer than `NARROW` outputs: a Q-value
    head, with one output per action, or a narrow hidden layer) keeps it in memory transposed,
    as (K, out, in) seen through a transposed view, as `nn.Linear` does. CPU matrix kernels
    vectorise along the last axis of their result, and one with a handful of outputs there
    wastes most of each vector; with the weight stored this way, the products of a training
    batch can be computed transposed, with the long axis last, from contiguous operands.
    Measured on a (10, 64, 64) batch into 2 outputs, that ran three times faster, and its weight
    gradient twice as fast (see `dqn_agent.backprop`).
    """

    def __init__(self, n_agents: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.out_major = fan_out < NARROW
        """Whether the weight is stored as (K, out, in): `weight.transpose(1, 2)` is contiguous."""
        if self.out_major:
            weight = torch.empty(n_agents, fan_out, fan_in).transpose(1, 2)
        else:
            weight = torch.empty(n_agents, fan_in, fan_out)
        self.weight = nn.Parameter(weight)  # (K, in, out), whichever way it is stored
        self.bias = nn.Parameter(torch.empty(n_agents, 1, fan_out))  # (K, 1, out)

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """PyTorch's default `nn.Linear` init, drawn for agent k from `generators[k]`."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            for k, gen in enumerate(generators):
                w = torch.rand(self.weight.shape[1:], generator=gen) * 2 * bound - bound
                b = torch.rand(self.bias.shape[1:], generator=gen) * 2 * bound - bound
                self.weight[k].copy_(w)
                self.bias[k].copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(K, batch, in) @ (K, in, out) + (K, 1, out) -> (K, batch, out)."""
        if self.out_major and x.shape[1] > 1:
            # (K, out, in) @ (K, in, batch) + (K, out, 1): the same sums, the batch axis last.
            # The result is returned as a transposed view. A single observation per agent
            # (acting) runs faster the plain way. Batches of 2 to 15 take this way too: the
            # plain way, for a head of one output (a dueling network's value) and 128 inputs or
            # more, summed a lone agent's products in another order than a group's.
            weight_t, bias_t = self.weight.transpose(1, 2), self.bias.transpose(1, 2)
            return torch.baddbmm(bias_t, weight_t, x.transpose(1, 2)).transpose(1, 2)
        return torch.baddbmm(self.bias, x, self.weight)


class QNetwork(nn.Module):
    """An MLP from observations to one Q-value per action, for K agents at once.

    With `dueling`, the last hidden layer feeds two heads, a state value V(s) and advantages
    A(s, a), combined as V + A - mean(A) so that V and A are identifiable.
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int],
        *,
        dueling: bool = False,
    ) -> None:
        super().__init__()
        widths = [obs_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(
            StackedLinear(n_agents, fan_in, fan_out)
            for fan_in, fan_out in itertools.pairwise(widths)
        )
        self.advantage = StackedLinear(n_agents, widths[-1], n_actions)
        self.value = StackedLinear(n_agents, widths[-1], 1) if dueling else None

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """Initialise every layer, agent k from `generators[k]`, in a fixed layer order."""
        for layer in self.layers():
            layer.reset_parameters(generators)

    def hidden_layers(self) -> list[StackedLinear]:
        """The hidden affine layers, input side first; each is followed by a ReLU."""
        return list(cast("Iterable[StackedLinear]", self.hidden))  # a ModuleList of them

    def layers(self) -> list[StackedLinear]:
        """All affine layers, input side first, heads last."""
        heads = [self.advantage] if self.value is None else [self.advantage, self.value]
        return [*self.hidden_layers(), *heads]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values: obs (K, batch, obs_dim) -> (K, batch, n_actions)."""
        x = obs
        for layer in self.hidden_layers():
            x = layer(x).relu_()  # in place: the product is a fresh tensor of its own
        advantage: torch.Tensor = self.advantage(x)  # (K, batch, n_actions)
        if self.value is None:
            return advantage
        value: torch.Tensor = self.value(x)  # (K, batch, 1)
        return value + advantage - advantage.mean(dim=-1, keepdim=True)


class HostQNetwork:
    """A CPU `QNetwork` evaluated by numpy, for acting and evaluation: a few observations per
    agent at a time.

    There each product is a (few, in) by (in, out) matrix per agent, and the time goes to the
    calls, not the arithmetic: the Q-values of one observation for each of ten agents took torch
    37 us and numpy 12 us for [64, 64] networks, 143 and 112 us for [256, 256] (numpy's calls
    cost less, and its stacked product loops over small matrices with less set-up). The arrays
    are views of the network's own weights, not copies, so every update shows through; make it
    after `flatten_parameters`, which moves the weights.
    """

    def __init__(self, net: QNetwork) -> None:
        if net.advantage.weight.device.type != "cpu":
            raise ValueError("HostQNetwork needs a network on the CPU")

        def arrays(layer: StackedLinear) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
            return layer.weight.detach().numpy(), layer.bias.detach().numpy()

        self.hidden = [arrays(layer) for layer in net.hidden_layers()]
        self.advantage = arrays(net.advantage)
        self.value = None if net.value is None else arrays(net.value)

    def __call__(self, obs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Q-values: obs (K, n, obs_dim) float32 -> (K, n, n_actions), as `QNetwork.forward`."""
        x = obs
        for weight, bias in self.hidden:
            x = np.matmul(x, weight)
            x += bias
            np.maximum(x, 0.0, out=x)
        advantage: np.ndarray[Any, Any] = np.matmul(x, self.advantage[0]) + self.advantage[1]
        if self.value is None:
            return advantage
        value: np.ndarray[Any, Any] = np.matmul(x, self.value[0]) + self.value[1]
        q: np.ndarray[Any, Any] = value + advantage - advantage.mean(axis=-1, keepdims=True)
        return q


FLAT_ALIGN = 64
"""Elements the flat parameter buffer is padded to a multiple of: whole SIMD vectors (16 float32
with AVX-512), twice over for unrolled loops, with room to spare."""


def flatten_parameters(net: nn.Module) -> nn.Parameter:
    """Move every parameter of `net` into one flat buffer, and give each a `.grad` in a second
    one; return the first as a single parameter whose `.grad` is the second.

    Each parameter keeps its shape and memory layout, as a view of its stretch of the buffer, so
    the network computes as before. Adam is elementwise: stepping the flat parameter updates
    every weight exactly as stepping each would, but with the optimizer's bookkeeping done once
    instead of once per weight and bias, which for a small network costs more than the update.

    The buffer is padded with zeros (which Adam leaves at zero) to a multiple of `FLAT_ALIGN`
    elements. Torch's fused CPU Adam updates most elements in SIMD vectors and the last few,
    past the last whole vector, one at a time, and the two ways round differently. Where an
    agent's weights fall in the buffer depends on how many agents share it, so without the
    padding a seed's weights could depend on its group.
    """
    params = list(net.parameters())
    first = params[0]
    size = sum(p.numel() for p in params)
    padded = -(-size // FLAT_ALIGN) * FLAT_ALIGN
    flat = torch.zeros(padded, device=first.device, dtype=first.dtype)
    flat_grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        view = flat.as_strided(p.shape, p.stride(), offset)
        view.copy_(p.detach())
        p.data = view
        p.grad = flat_grad.as_strided(p.shape, p.stride(), offset)
        offset += p.numel()
    whole = nn.Parameter(flat)
    whole.grad = flat_grad
    return whole


def per_agent_grad_norm(parameters: Sequence[nn.Parameter]) -> torch.Tensor:
    """Global gradient norm of each agent: sqrt of the sum of squares over its slices. -> (K,)

    The parameters' sums are added one at a time, the same additions in the same order for any
    K. Summing them stacked, as ``torch.stack(squares).sum(dim=0)``, adds a lone agent's column
    in another order than K columns side by side (from 8 parameters up, as in a dueling network
    with two hidden layers), so a clipped seed's weights depended on its group."""
    squares = [p.grad.pow(2).flatten(1).sum(dim=1) for p in parameters if p.grad is not None]
    total = squares[0]
    for square in squares[1:]:
        total = total + square
    return total.sqrt()


def clip_grad_norm_per_agent(parameters: Sequence[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale each agent's gradients so that its global norm is at most `max_norm`.

    The same rule as `torch.nn.utils.clip_grad_norm_`, applied agent by agent: one agent's large
    gradient never shrinks another's step. Returns the norms before clipping, shape (K,).
    """
    norms = per_agent_grad_norm(parameters)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (K,)
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(scale.view(-1, *([1] * (p.grad.dim() - 1))))
    return norms
