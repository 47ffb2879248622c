"""How much memory a group of agents will take, worked out before anything is allocated.

`task_memory` adds up what `dqn_agent.training.train_group` holds for a group of K agents:

- the replay memory: for vector observations, K x capacity rows of 2 x obs_dim + 3 float32
  numbers (`ReplayBuffer`); for images, K x capacity slots of one uint8 frame and 11 bytes
  (`FrameReplayBuffer`: C x H x W + 11 bytes a transition);
- the networks: online and target weights, their gradients and two tensors of optimizer state
  (Adam's moments, or centered RMSprop's two averages), 5 float32 numbers per parameter;
- a training batch: the observations as floats and every layer's activations, kept for the
  backward pass, for the online network on the batch and the target (and, for Double DQN, the
  online) network on the next observations, and as many again for their gradients;
- the process itself: Python, torch, gymnasium and pandas, and the env's package, constants
  measured on the development machine (`PROCESS_BYTES`, `MINATAR_PACKAGE_BYTES`).

Pure arithmetic on the config and the observation shape: `dqn-sweep validate` uses it without
importing torch. `benchmarks/bench_memory.py` compares it with measured peaks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dqn_agent.config import AgentConfig, conv_layers, conv_output_sizes

SLOT_SCALAR_BYTES = 1 + 4 + 1 + 1 + 4
"""Bytes a `FrameReplayBuffer` slot holds besides its frame: action (uint8), reward (float32),
terminated and ended (bool, one byte each) and the position in the episode (int32)."""

FLOAT_BYTES = 4
NETWORK_COPIES = 5
"""float32 numbers per parameter: online, target, gradient and two optimizer states."""
BATCH_PASSES = 4
"""Activations kept per sampled transition, counted in forward passes: the online network on
the batch and the target on the next observations, then their gradients as many again (a
Double DQN adds one more pass)."""

PROCESS_BYTES = 300 * 2**20
"""A training process before its buffers: Python with torch, gymnasium and pandas; measured
290 MB of peak resident memory on the development machine."""

MINATAR_PACKAGE_BYTES = 90 * 2**20
"""What importing MinAtar's package adds (it imports matplotlib and seaborn): measured 88 MB."""


def frame_buffer_bytes(frame_shape: Sequence[int], capacity: int) -> int:
    """Bytes `FrameReplayBuffer` allocates for one agent: capacity x (C x H x W + 11)."""
    return capacity * (math.prod(frame_shape) + SLOT_SCALAR_BYTES)


def vector_buffer_bytes(obs_dim: int, capacity: int) -> int:
    """Bytes `ReplayBuffer` allocates for one agent: capacity rows of [obs, next_obs, action,
    reward, terminated], float32."""
    return capacity * (2 * obs_dim + 3) * FLOAT_BYTES


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a group's training takes, by part."""

    replay: int
    networks: int
    batches: int
    process: int = PROCESS_BYTES
    """The process itself: `PROCESS_BYTES`, and the env package's own."""

    @property
    def total(self) -> int:
        return self.replay + self.networks + self.batches + self.process

    def describe(self) -> str:
        """'2.1 GB (replay 1.6 GB, networks 0.1 GB, batches 0.0 GB, process 0.4 GB)'."""
        parts = ("replay", "networks", "batches", "process")
        inner = ", ".join(f"{name} {gigabytes(getattr(self, name))}" for name in parts)
        return f"{gigabytes(self.total)} ({inner})"


def gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def task_memory(
    config: AgentConfig,
    obs_shape: Sequence[int],
    n_actions: int,
    n_agents: int,
    *,
    frames_per_observation: int = 1,
    env_package_bytes: int = 0,
) -> MemoryEstimate:
    """What training `n_agents` agents of `config` together takes, on observations of
    `obs_shape` ((obs_dim,) or (C, H, W), C counting every stacked frame's channels), in a
    process whose env package takes `env_package_bytes` (see `env_package_bytes`)."""
    if len(obs_shape) == 3:
        channels, height, width = obs_shape
        frame = (channels // frames_per_observation, height, width)
        replay = frame_buffer_bytes(frame, config.buffer_size)
    else:
        replay = vector_buffer_bytes(obs_shape[0], config.buffer_size)
    params, activations = _network_size(config, obs_shape, n_actions)
    passes = BATCH_PASSES + (1 if config.double else 0)
    per_transition = passes * activations + 3 * math.prod(obs_shape)  # and obs as floats
    batches = config.batch_size * per_transition * FLOAT_BYTES
    return MemoryEstimate(
        replay=n_agents * replay,
        networks=n_agents * params * NETWORK_COPIES * FLOAT_BYTES,
        batches=n_agents * batches,
        process=PROCESS_BYTES + env_package_bytes,
    )


def env_package_bytes(env_id: str) -> int:
    """What the package of `env_id` adds to a process: MinAtar's imports matplotlib."""
    return MINATAR_PACKAGE_BYTES if env_id.startswith("MinAtar/") else 0


def _network_size(config: AgentConfig, obs_shape: Sequence[int], n_actions: int) -> tuple[int, int]:
    """(parameters, activations per observation) of one agent's Q-network."""
    params = activations = 0
    features = math.prod(obs_shape)
    if config.network != "mlp":
        sizes = conv_output_sizes(config, obs_shape)
        for (kernel, _, out), (c_in, _, _), size in zip(
            conv_layers(config), sizes[:-1], sizes[1:], strict=True
        ):
            params += out * (c_in * kernel * kernel + 1)
            activations += math.prod(size)
        features = math.prod(sizes[-1])
    widths = [features, *config.hidden_sizes]
    for fan_in, fan_out in itertools.pairwise(widths):
        params += (fan_in + 1) * fan_out
        activations += fan_out
    heads = n_actions + (1 if config.dueling else 0)
    params += (widths[-1] + 1) * heads
    activations += heads
    return params, activations
