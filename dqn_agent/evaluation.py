"""Greedy evaluation of a group of agents on environments seeded apart from training.

Each agent plays `episodes` episodes at once, greedily (argmax_a Q), and is scored by the mean
and standard deviation of their returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from dqn_agent.envs import make_env
from dqn_agent.networks import HostQNetwork, QNetwork
from dqn_agent.placement import numpy_for
from dqn_agent.vector_env import MAX_EPISODE_STEPS, TorchCartPole, VectorEnv, step_cartpole

Greedy = Callable[[torch.Tensor], torch.Tensor]
"""argmax_a Q(s, a) of each agent's observations: (K, n, *obs_shape) -> (K, n)."""

Evaluator = Callable[[Greedy], list[tuple[float, float]]]
"""Takes the agents' greedy policy, returns (mean, std) of each agent's evaluation returns."""


def greedy_policy(online: QNetwork, *, numpy: bool | None = None) -> Greedy:
    """argmax_a Q(s, a) of each observation (K, n, obs_dim) -> (K, n). By default, on a CPU the
    network is evaluated by numpy, whose calls cost less for these few observations (see
    `HostQNetwork`), and on a GPU by torch; `numpy` forces one or the other."""
    if numpy is None:
        numpy = numpy_for(online.advantage.weight.device)
    if numpy:
        host = HostQNetwork(online)
        return lambda obs: torch.from_numpy(host(obs.numpy()).argmax(axis=-1))

    def by_torch(obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            actions: torch.Tensor = online(obs).argmax(dim=-1)
            return actions

    return by_torch


def make_evaluator(
    train_envs: VectorEnv, env_id: str, seeds: Sequence[int], episodes: int, device: torch.device
) -> Evaluator:
    """The evaluator that matches the training envs: batched torch CartPole or gymnasium."""
    if isinstance(train_envs, TorchCartPole):
        return TorchCartPoleEvaluator(seeds, episodes, device)
    return GymnasiumEvaluator(env_id, seeds, episodes, device)


class TorchCartPoleEvaluator:
    """All agents' evaluation episodes of CartPole-v1 as one batch on the device."""

    def __init__(self, seeds: Sequence[int], episodes: int, device: torch.device) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.episodes, self.device = episodes, device

    def __call__(self, greedy: Greedy) -> list[tuple[float, float]]:
        starts = [
            torch.rand(self.episodes, 4, generator=g, dtype=torch.float64) * 0.1 - 0.05
            for g in self.generators
        ]
        state = torch.stack(starts).to(self.device)  # (K, episodes, 4)
        # float64, as the gymnasium evaluator's numpy returns: a float32 mean of 3 returns
        # would be stored as 9.666666984558105, not 9.666666666666666.
        returns = torch.zeros(state.shape[:2], dtype=torch.float64, device=self.device)
        running = torch.ones(state.shape[:2], dtype=torch.bool, device=self.device)
        for t in range(MAX_EPISODE_STEPS):
            actions = greedy(state.float())  # (K, episodes)
            state, fell = step_cartpole(state, actions)
            returns += running  # +1 for every step taken, the falling one included
            running &= ~fell
            if t % 50 == 49 and not bool(running.any()):
                break
        # Each agent's figures from its own row, by numpy on the host: a reduction over the
        # rows of a (K, episodes) tensor may add them in another order for K = 1 than for
        # several agents, and then a seed's std differed in its last bit with its group.
        return [(float(r.mean()), float(r.std())) for r in returns.cpu().numpy()]


class GymnasiumEvaluator:
    """Each agent plays its episodes on its own env copies, all stepped in lockstep.

    The copies of agent k are seeded once, from agent k's evaluation seed, and then keep their
    random state from one evaluation to the next.
    """

    def __init__(
        self, env_id: str, seeds: Sequence[int], episodes: int, device: torch.device
    ) -> None:
        self.envs = [[make_env(env_id) for _ in range(episodes)] for _ in seeds]
        self.seeds: list[int | None] = list(seeds)
        self.device = device

    def __call__(self, greedy: Greedy) -> list[tuple[float, float]]:
        n_agents, n_eps = len(self.envs), len(self.envs[0])
        obs = [
            [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(copies)]
            for copies, seed in zip(self.envs, self.seeds, strict=True)
        ]
        self.seeds = [None] * n_agents
        returns = np.zeros((n_agents, n_eps))
        running = np.ones((n_agents, n_eps), dtype=bool)
        while running.any():
            x = torch.as_tensor(np.array(obs), device=self.device)
            if x.dtype != torch.uint8:  # images stay uint8, as in training
                x = x.float()
            actions = greedy(x).cpu().numpy()  # (K, episodes)
            for k, i in zip(*np.nonzero(running), strict=True):
                o, r, terminated, truncated, _ = self.envs[k][i].step(int(actions[k, i]))
                obs[k][i] = o
                returns[k, i] += float(r)
                running[k, i] = not (terminated or truncated)
        return [(float(r.mean()), float(r.std())) for r in returns]
