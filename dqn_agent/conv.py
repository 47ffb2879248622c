"""Convolutional Q-networks for image observations, written for one agent.

Both take channel-first uint8 images (batch, C, H, W) and return Q-values (batch, n_actions).
Training stacks K of them, one per seed, in `StackedConvQNetwork`, which holds every agent's
weights in one tensor per layer (the layout the learners expect) and computes what the K
one-agent networks compute; the one-agent classes are the definition to read.

- `MinAtarQNetwork`: MinAtar's network (Young & Tian, 2019): 3x3 convolutions, stride 1, no
  padding (one of 16 channels in the paper), then fully connected layers (128 units).
- `NatureQNetwork`: the Nature DQN network (Mnih et al., 2015): 8x8 stride 4, 4x4 stride 2,
  3x3 stride 1 convolutions (32, 64, 64 channels), then 512 units; pixels scaled by 1/255.

With `dueling`, the last hidden layer feeds a state value and advantages, combined as
V + A - mean(A), as in the MLP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from dqn_agent.config import AgentConfig
from dqn_agent.stacked import NetworkFactory


class ConvQNetwork(nn.Module):
    """Convolutions, then fully connected layers, then a Q-value head (dueling or not)."""

    def __init__(
        self,
        convolutions: nn.Sequential,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden_sizes: Sequence[int],
        *,
        dueling: bool,
        scale: float,
    ) -> None:
        super().__init__()
        self.scale = scale
        """Multiplies the uint8 pixels before the first convolution (1/255 for Atari)."""
        self.convolutions = convolutions
        with torch.no_grad():  # the flattened size the convolutions leave, from a dummy image
            features = int(convolutions(torch.zeros(1, *obs_shape)).numel())
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        self.hidden = nn.Sequential(*layers)
        self.advantage = nn.Linear(features, n_actions)
        self.value = nn.Linear(features, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (batch, n_actions) of images (batch, C, H, W), uint8 or float."""
        x = self.convolutions(obs.float() * self.scale)
        h = self.hidden(x.flatten(start_dim=1))
        advantage: torch.Tensor = self.advantage(h)
        if self.value is None:
            return advantage
        value: torch.Tensor = self.value(h)
        return value + advantage - advantage.mean(dim=-1, keepdim=True)


class MinAtarQNetwork(ConvQNetwork):
    """MinAtar's network: 3x3 convolutions of `channels`, stride 1, ReLU after each."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        *,
        channels: Sequence[int] = (16,),
        hidden_sizes: Sequence[int] = (128,),
        dueling: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        in_channels = obs_shape[0]
        for out in channels:
            layers += [nn.Conv2d(in_channels, out, kernel_size=3, stride=1), nn.ReLU()]
            in_channels = out
        convolutions = nn.Sequential(*layers)
        super().__init__(
            convolutions, obs_shape, n_actions, hidden_sizes, dueling=dueling, scale=1.0
        )


class NatureQNetwork(ConvQNetwork):
    """The Nature DQN network: 8x8 stride 4, 4x4 stride 2, 3x3 stride 1, ReLU after each."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        *,
        channels: Sequence[int] = (32, 64, 64),
        hidden_sizes: Sequence[int] = (512,),
        dueling: bool = False,
    ) -> None:
        c1, c2, c3 = channels
        convolutions = nn.Sequential(
            nn.Conv2d(obs_shape[0], c1, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=1),
            nn.ReLU(),
        )
        super().__init__(
            convolutions, obs_shape, n_actions, hidden_sizes, dueling=dueling, scale=1 / 255
        )


class StackedConvQNetwork(nn.Module):
    """K agents' convolutional Q-networks as one module, each parameter with the seed axis
    first: what `StackedModule` makes of `conv_factory`'s network, without `vmap`.

    Agent k starts from the weights of `factory(obs_dim, n_actions)` built with torch's
    generator seeded with `seeds[k]`, exactly as `StackedModule` would start it, and computes
    what that one-agent network computes (tested against it and against torch's `nn.Conv2d`).

    Two ways to compute the K networks, the same arithmetic:

    - `per_agent` (the CPU's): agent by agent, with torch's `conv2d` and `linear` on agent k's
      slice of the weights. Each agent's computation is then the same calls on the same shapes
      whatever its group, so a seed trains to the same bits alone or in a group. The batched
      way does not give that on a CPU: measured here, batched matrix products (`bmm`) gave a
      lone agent's Q-values other last bits than the same agent's in a group of 3, for several
      layer shapes (1024 -> 128 on 10 images, 128 -> 6 on 32); so did `vmap` of `conv2d`, a
      grouped convolution. Nor does it save time on a CPU: a forward and backward pass of K
      MinAtar networks on a batch of 32 took 1.6 ms for K = 1 and 7.2 ms for K = 5, the time
      of five passes, against 2.0 and 9.9 ms agent by agent (timed with each agent's
      convolution as a matrix product of its patches; torch's `conv2d`, used now, is a little
      slower on the MinAtar layer, 0.86 against 0.73 ms for its forward and backward, and 2.5
      times faster on Atari's first, 12.8 against 31.9 ms).
    - batched (a GPU's): each layer one `baddbmm` over the agents, the images' patches
      (`F.unfold`: K, C_in * kh * kw, batch * H' * W') times the flattened convolution weights
      (K, C_out, C_in * kh * kw), so a group of K costs one kernel launch per layer, not K.

    The weights are stored as `nn.Conv2d` and `nn.Linear` store them, one slice per agent:
    convolutions (K, C_out, C_in, kh, kw), fully connected layers (K, out, in).
    """

    def __init__(
        self,
        factory: NetworkFactory,
        obs_shape: Sequence[int],
        n_actions: int,
        seeds: Sequence[int],
        *,
        per_agent: bool | None = None,
    ) -> None:
        super().__init__()
        agents: list[ConvQNetwork] = []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                agent = factory(math.prod(obs_shape), n_actions)
            if not isinstance(agent, ConvQNetwork):
                raise TypeError(f"{type(agent).__name__} is not a ConvQNetwork")
            agents.append(agent)
        self.per_agent = per_agent
        """Compute agent by agent (True), batched (False), or by device (None: on a CPU)."""
        self.scale = agents[0].scale
        convolutions = [
            [layer for layer in a.convolutions if isinstance(layer, nn.Conv2d)] for a in agents
        ]
        self.shapes = [(c.kernel_size, c.stride, c.out_channels) for c in convolutions[0]]
        """Each convolution's kernel size, stride and output channels."""
        self.conv_weights, self.conv_biases = _stack(convolutions)
        self.linear_weights, self.linear_biases = _stack(
            [[m for m in a.hidden if isinstance(m, nn.Linear)] for a in agents]
        )
        heads = [[a.advantage] if a.value is None else [a.advantage, a.value] for a in agents]
        self.head_weights, self.head_biases = _stack(heads)
        self.dueling = agents[0].value is not None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (K, batch, n_actions) of images (K, batch, C, H, W), uint8 or float."""
        x = obs.float() * self.scale
        per_agent = self.per_agent if self.per_agent is not None else obs.device.type == "cpu"
        if per_agent:
            # Each parameter split once into its agents' slices: autograd then joins their
            # gradients once, where indexing it K times would add K full-size zero tensors.
            slices = [[p.unbind(0) for p in group] for group in self._groups()]
            return torch.stack(
                [self._agent(x[k], *[[p[k] for p in g] for g in slices]) for k in range(len(x))]
            )
        return self._batched(x)

    def _groups(self) -> list[nn.ParameterList]:
        return [
            self.conv_weights,
            self.conv_biases,
            self.linear_weights,
            self.linear_biases,
            self.head_weights,
            self.head_biases,
        ]

    def _agent(
        self,
        x: torch.Tensor,
        conv_weights: Sequence[torch.Tensor],
        conv_biases: Sequence[torch.Tensor],
        linear_weights: Sequence[torch.Tensor],
        linear_biases: Sequence[torch.Tensor],
        head_weights: Sequence[torch.Tensor],
        head_biases: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """One agent's Q-values (batch, n_actions) of its images (batch, C, H, W), float, from
        its slices of the parameters."""
        for weight, bias, (_, stride, _) in zip(
            conv_weights, conv_biases, self.shapes, strict=True
        ):
            x = F.conv2d(x, weight, bias, stride=stride).relu_()
        h = x.flatten(start_dim=1)
        for weight, bias in zip(linear_weights, linear_biases, strict=True):
            h = F.linear(h, weight, bias).relu_()
        advantage = F.linear(h, head_weights[0], head_biases[0])
        if not self.dueling:
            return advantage
        value = F.linear(h, head_weights[1], head_biases[1])
        return value + advantage - advantage.mean(dim=-1, keepdim=True)

    def _batched(self, x: torch.Tensor) -> torch.Tensor:
        """All agents' Q-values, each layer one batched matrix product over the agents."""
        n_agents, batch = x.shape[:2]
        for weight, bias, (kernel, stride, out) in zip(
            self.conv_weights, self.conv_biases, self.shapes, strict=True
        ):
            height, width = _output_size(x, kernel, stride)
            patches = F.unfold(x.reshape(n_agents * batch, *x.shape[2:]), kernel, stride=stride)
            # (K * batch, CKK, L) -> (K, CKK, batch * L): one matrix of patches per agent.
            patches = patches.view(n_agents, batch, *patches.shape[1:]).transpose(1, 2)
            patches = patches.reshape(n_agents, patches.shape[1], -1)
            weight_rows = weight.flatten(start_dim=2)  # (K, C_out, C_in * kh * kw)
            y = torch.baddbmm(bias.unsqueeze(-1), weight_rows, patches).relu_()  # (K, out, b*L)
            x = y.view(n_agents, out, batch, height, width).transpose(1, 2)
        h = x.reshape(n_agents, batch, -1)  # each image's (C, H, W) flattened
        for weight, bias in zip(self.linear_weights, self.linear_biases, strict=True):
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2)).relu_()
        weight, bias = self.head_weights[0], self.head_biases[0]
        advantage = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        if not self.dueling:
            return advantage
        weight, bias = self.head_weights[1], self.head_biases[1]
        value = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        return value + advantage - advantage.mean(dim=-1, keepdim=True)


def _output_size(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[int, int]:
    """Height and width of a convolution's output (no padding) on images x (..., H, W)."""
    return (x.shape[-2] - kernel[0]) // stride[0] + 1, (x.shape[-1] - kernel[1]) // stride[1] + 1


def _stack(
    layers: Sequence[Sequence[nn.Conv2d | nn.Linear]],
) -> tuple[nn.ParameterList, nn.ParameterList]:
    """layers[k][i], layer i of agent k, as one weight and one bias per layer, agent axis
    first."""
    weights, biases = nn.ParameterList(), nn.ParameterList()
    for i in range(len(layers[0])):
        weights.append(nn.Parameter(torch.stack([agent[i].weight.detach() for agent in layers])))
        biases.append(nn.Parameter(torch.stack([_bias(agent[i]).detach() for agent in layers])))
    return weights, biases


def _bias(layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    if layer.bias is None:
        raise ValueError(f"{layer} has no bias")
    return layer.bias


def conv_factory(config: AgentConfig, obs_shape: Sequence[int]) -> NetworkFactory:
    """The one-agent network `config.network` names, for images of `obs_shape`, as a factory
    of (obs_dim, n_actions) for `StackedModule` (obs_dim is unused: the shape says more)."""
    family = MinAtarQNetwork if config.network == "minatar" else NatureQNetwork
    if config.network not in ("minatar", "nature"):
        raise ValueError(f"network {config.network!r} is not convolutional")

    def build(_obs_dim: int, n_actions: int) -> nn.Module:
        return family(
            obs_shape,
            n_actions,
            channels=config.conv_channels,
            hidden_sizes=config.hidden_sizes,
            dueling=config.dueling,
        )

    return build
