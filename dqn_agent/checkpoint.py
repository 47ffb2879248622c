"""Saving final weights together with their config, and loading them back as a greedy policy.

A saved file is enough to rebuild the network and act: nobody needs to remember the settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dqn_agent.config import AgentConfig
from dqn_agent.conv import StackedConvQNetwork, conv_factory
from dqn_agent.envs import make_env
from dqn_agent.networks import QNetwork

FORMAT_VERSION = 1
_KEYS = ("format", "config", "env_id", "obs_dim", "n_actions", "state_dict")
"""What `save_weights` writes; `load` needs each."""


def save_weights(
    path: str | os.PathLike[str],
    *,
    state_dict: dict[str, torch.Tensor],
    config: AgentConfig,
    env_id: str,
    obs_dim: int,
    n_actions: int,
    obs_shape: tuple[int, ...] = (),
) -> None:
    """Write weights and everything needed to rebuild their network, atomically. `obs_shape`
    (C, H, W) is needed for a convolutional network; vectors need `obs_dim` alone."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden until whole
    payload = {
        "format": FORMAT_VERSION,
        "config": config.to_dict(),
        "env_id": env_id,
        "obs_dim": obs_dim,
        "n_actions": n_actions,
        "obs_shape": list(obs_shape or (obs_dim,)),
        "state_dict": state_dict,
    }
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a torn file behind
        raise


class GreedyPolicy:
    """A trained Q-network that acts greedily: argmax_a Q(s, a)."""

    def __init__(
        self,
        network: nn.Module,
        *,
        config: AgentConfig,
        env_id: str,
        obs_shape: tuple[int, ...],
    ) -> None:
        self.network = network.eval()
        """A stacked network of one agent: (1, batch, *obs_shape) -> (1, batch, n_actions)."""
        self.config = config
        self.env_id = env_id
        self.obs_shape = obs_shape

    def q_values(self, obs: np.ndarray[Any, Any] | torch.Tensor) -> torch.Tensor:
        """Q-values of a batch of observations: (batch, *obs_shape) -> (batch, n_actions), on
        the network's device (the observations are moved there; images stay uint8)."""
        device = next(self.network.parameters()).device
        x = torch.as_tensor(obs, device=device)
        if x.dtype != torch.uint8:
            x = x.float()
        x = x.reshape(1, -1, *self.obs_shape)
        with torch.no_grad():
            q: torch.Tensor = self.network(x)[0]
        return q

    def act(self, obs: np.ndarray[Any, Any]) -> int:
        """The greedy action for one observation."""
        return int(self.q_values(obs).argmax(dim=-1)[0])

    def evaluate(self, *, episodes: int = 10, seed: int = 0) -> list[float]:
        """Returns of `episodes` greedy episodes on a fresh env seeded with `seed`."""
        env = make_env(self.env_id)
        returns = []
        obs, _ = env.reset(seed=seed)
        for _ in range(episodes):
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(self.act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            obs, _ = env.reset()
        env.close()
        return returns


def load(path: str | os.PathLike[str], *, device: str = "cpu") -> GreedyPolicy:
    """Rebuild a policy from a file written by `save_weights` (or `TrialResult.save`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the path is a folder, or the file is not a weights file of this format
            (another torch file, a damaged one, something else); the message names the path.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder: pass one weights file, such as <results>/models/<trial_id>.pt"
        )
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # unpickling raises many types for files that are not ours
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot be read as a torch file ({first_line})") from None
    ours = isinstance(payload, dict) and all(key in payload for key in _KEYS)
    if not ours or payload["format"] != FORMAT_VERSION:
        raise ValueError(f"{path}: not a dqn_agent weights file of format {FORMAT_VERSION}")
    config = AgentConfig.from_dict(payload["config"])
    obs_dim, n_actions = int(payload["obs_dim"]), int(payload["n_actions"])
    # Files written before images existed hold vectors and no shape.
    obs_shape = tuple(int(n) for n in payload.get("obs_shape", [obs_dim]))
    network: nn.Module
    if config.network == "mlp":
        network = QNetwork(1, obs_dim, n_actions, config.hidden_sizes, dueling=config.dueling)
    else:
        network = StackedConvQNetwork(conv_factory(config, obs_shape), obs_shape, n_actions, [0])
    network.load_state_dict(payload["state_dict"])
    return GreedyPolicy(
        network.to(device), config=config, env_id=str(payload["env_id"]), obs_shape=obs_shape
    )
