"""The DQN training loop: `train(spec) -> TrialResult`, for one seed or a group of seeds.

A group of K seeds of one configuration trains in lockstep as K independent agents: each has its
own environment, replay buffer, exploration draws, weights and optimizer state, and its own
random streams derived from its seed alone. The arithmetic is stacked along a leading seed axis
so that K agents cost little more than one. A single trial is the group with K = 1.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from dqn_agent.buffer import ReplayBuffer
from dqn_agent.config import AgentConfig, TrialSpec, hidden_sizes_text
from dqn_agent.envs import make_env, space_sizes
from dqn_agent.exploration import epsilon_at
from dqn_agent.networks import QNetwork, clip_grad_norm_per_agent
from dqn_agent.targets import td_loss, td_target, update_target


class Progress(NamedTuple):
    """What a progress callback is told, about every 1,000 env steps and after each evaluation."""

    env_step: int
    total_env_steps: int | None
    episodes: int
    last_eval_return: float | None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class TrialResult:
    """Everything one trial produced: tables of episodes and evaluations, figures, weights."""

    spec: TrialSpec
    episodes: pd.DataFrame
    """One row per finished training episode."""
    evals: pd.DataFrame
    """One row per greedy evaluation (step 0, every `eval.every_steps`, and the end)."""
    wall_s: float
    """Wall-clock seconds the trial (or its whole group) took."""
    env_steps: int
    """Env steps taken in training (evaluation steps not counted)."""
    state_dict: dict[str, torch.Tensor]
    """Final online-network weights, on the CPU, shaped for a network of one agent."""
    obs_dim: int
    n_actions: int

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.wall_s if self.wall_s > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """Headline figures of the trial, as plain data."""
        final = float(self.evals["eval_return_mean"].iloc[-1])
        return {
            "trial_id": self.spec.trial_id,
            "env_steps": self.env_steps,
            "episodes": len(self.episodes),
            "wall_s": self.wall_s,
            "env_steps_per_s": self.env_steps_per_s,
            "final_eval_return": final,
            "best_eval_return": float(self.evals["eval_return_mean"].max()),
        }

    def save(self, path: str) -> None:
        """Write the final weights with their config (see `dqn_agent.checkpoint.load`)."""
        from dqn_agent.checkpoint import save_weights

        save_weights(
            path,
            state_dict=self.state_dict,
            config=self.spec.agent,
            env_id=self.spec.env_id,
            obs_dim=self.obs_dim,
            n_actions=self.n_actions,
        )


class _SeedStreams:
    """Independent random streams of one seed: init, exploration, replay sampling, envs."""

    def __init__(self, seed: int) -> None:
        init, explore, replay, env, eval_env = np.random.SeedSequence(seed).spawn(5)
        self.init = torch.Generator().manual_seed(int(init.generate_state(1)[0]))
        self.replay = torch.Generator().manual_seed(int(replay.generate_state(1)[0]))
        self.explore = np.random.default_rng(explore)
        self.env_seed = int(env.generate_state(1)[0])
        self.eval_seed = int(eval_env.generate_state(1)[0])


def train(spec: TrialSpec, *, progress: ProgressCallback | None = None) -> TrialResult:
    """Train one DQN agent as `spec` says and return its tables, figures and weights."""
    return train_group([spec], progress=progress)[0]


def train_group(
    specs: Sequence[TrialSpec], *, progress: ProgressCallback | None = None
) -> list[TrialResult]:
    """Train several seeds of one configuration at once; one result per spec, in order.

    The specs must differ only in seed (and label). A seed's results are the same whether it
    trains alone or in a group. Budgets in episodes need a group of one, since agents of a group
    finish their episodes at different steps.
    """
    _check_group(specs)
    first = specs[0]
    config, device = first.agent, torch.device(first.device)
    n_agents = len(specs)
    streams = [_SeedStreams(s.seed) for s in specs]

    envs = [make_env(first.env_id) for _ in specs]
    obs_dim, n_actions = space_sizes(envs[0])
    obs_list = [env.reset(seed=st.env_seed)[0] for env, st in zip(envs, streams, strict=True)]
    evaluator = _Evaluator(first.env_id, [st.eval_seed for st in streams], first.eval.episodes)

    online = QNetwork(n_agents, obs_dim, n_actions, config.hidden_sizes, dueling=config.dueling)
    online.reset_parameters([st.init for st in streams])
    online.to(device)
    target = copy.deepcopy(online)
    optimizer = torch.optim.Adam(online.parameters(), lr=config.lr)
    buffer = ReplayBuffer(n_agents, config.buffer_size, obs_dim, device=device)
    log = _Log(specs)

    total_steps = first.budget.env_steps
    max_episodes = first.budget.episodes
    every = first.eval.every_steps
    start = time.perf_counter()

    log.add_eval(0, evaluator.run(online, device), start)
    step = 0
    while (total_steps is None or step < total_steps) and (
        max_episodes is None or log.episodes_done[0] < max_episodes
    ):
        actions = _act(online, obs_list, streams, epsilon_at(step, config), n_actions, device)
        next_list = []
        rewards, terms = np.zeros(n_agents, np.float32), np.zeros(n_agents, np.float32)
        stored_next = []
        for k, env in enumerate(envs):
            next_obs, reward, terminated, truncated, _ = env.step(actions[k])
            rewards[k], terms[k] = float(reward), float(terminated)
            stored_next.append(next_obs)
            log.on_step(k, float(reward))
            if terminated or truncated:
                log.end_episode(k, step + 1, start)
                next_obs, _ = env.reset()
            next_list.append(next_obs)
        buffer.add(
            torch.as_tensor(np.stack(obs_list), dtype=torch.float32, device=device),
            torch.as_tensor(actions, device=device),
            torch.as_tensor(rewards, device=device),
            torch.as_tensor(np.stack(stored_next), dtype=torch.float32, device=device),
            torch.as_tensor(terms, device=device),
        )
        obs_list = next_list
        step += 1

        if step >= config.learning_starts and step % config.train_every == 0:
            for _ in range(config.gradient_steps):
                log.add_update(*_gradient_step(online, target, optimizer, buffer, streams, config))
        if step % config.target_update_every == 0:
            update_target(online, target, tau=config.tau)

        finished = (total_steps is not None and step >= total_steps) or (
            max_episodes is not None and log.episodes_done[0] >= max_episodes
        )
        if step % every == 0 or finished:
            log.add_eval(step, evaluator.run(online, device), start)
        if progress is not None and (step % 1000 == 0 or step % every == 0 or finished):
            progress(Progress(step, total_steps, log.episodes_done[0], log.last_eval_return()))

    wall_s = time.perf_counter() - start
    for env in envs:
        env.close()
    evaluator.close()
    return [
        TrialResult(
            spec=spec,
            episodes=log.episode_table(k),
            evals=log.eval_table(k),
            wall_s=wall_s,
            env_steps=step,
            state_dict=_agent_weights(online, k),
            obs_dim=obs_dim,
            n_actions=n_actions,
        )
        for k, spec in enumerate(specs)
    ]


def _check_group(specs: Sequence[TrialSpec]) -> None:
    if not specs:
        raise ValueError("train_group needs at least one TrialSpec")
    first = specs[0]
    for spec in specs[1:]:
        same = (spec.env_id, spec.agent, spec.budget, spec.eval, spec.device)
        if same != (first.env_id, first.agent, first.budget, first.eval, first.device):
            raise ValueError(
                "a group's specs must differ only in seed: "
                f"{spec.trial_id} differs from {first.trial_id} in more than the seed"
            )
    seeds = [s.seed for s in specs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a group's seeds must be distinct, got {seeds}")
    if first.budget.episodes is not None and len(specs) > 1:
        raise ValueError("a budget in episodes needs a group of one seed; use env_steps to group")


def _act(
    online: QNetwork,
    obs_list: Sequence[np.ndarray[Any, Any]],
    streams: Sequence[_SeedStreams],
    epsilon: float,
    n_actions: int,
    device: torch.device,
) -> list[int]:
    """Epsilon-greedy actions, one per agent, each from that agent's own exploration stream."""
    explore = [st.explore.random() < epsilon for st in streams]
    actions = [
        int(st.explore.integers(n_actions)) if e else -1
        for st, e in zip(streams, explore, strict=True)
    ]
    if not all(explore):
        obs = torch.as_tensor(np.stack(obs_list), dtype=torch.float32, device=device)
        with torch.no_grad():
            greedy = online(obs.unsqueeze(1)).argmax(dim=-1).squeeze(1).tolist()  # (K,)
        actions = [g if a < 0 else a for a, g in zip(actions, greedy, strict=True)]
    return actions


def _gradient_step(
    online: QNetwork,
    target: QNetwork,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    streams: Sequence[_SeedStreams],
    config: AgentConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One TD update of every agent; returns each agent's loss and mean Q(s, a), both (K,)."""
    batch = buffer.sample(config.batch_size, [st.replay for st in streams])
    y = td_target(batch, online, target, gamma=config.gamma, double=config.double)
    q_taken = online(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)  # (K, batch)
    loss, per_agent_loss = td_loss(q_taken, y, config.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    if config.max_grad_norm is not None:
        clip_grad_norm_per_agent(list(online.parameters()), config.max_grad_norm)
    optimizer.step()
    return per_agent_loss, q_taken.detach().mean(dim=1)


def _agent_weights(online: QNetwork, k: int) -> dict[str, torch.Tensor]:
    """Agent k's weights, keeping a seed axis of length 1 so a 1-agent network loads them."""
    return {name: t[k : k + 1].detach().cpu().clone() for name, t in online.state_dict().items()}


class _Evaluator:
    """Greedy evaluation: each agent plays `episodes` episodes at once on its own env copies.

    The copies of agent k are seeded once, from agent k's evaluation seed, and then keep their
    random state from one evaluation to the next.
    """

    def __init__(self, env_id: str, seeds: Sequence[int], episodes: int) -> None:
        self.envs = [[make_env(env_id) for _ in range(episodes)] for _ in seeds]
        self.seeds: list[int | None] = list(seeds)

    def run(self, online: QNetwork, device: torch.device) -> list[tuple[float, float]]:
        """(mean, std) of the greedy return of each agent over its evaluation episodes."""
        n_agents, n_eps = len(self.envs), len(self.envs[0])
        obs = [
            [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(copies)]
            for copies, seed in zip(self.envs, self.seeds, strict=True)
        ]
        self.seeds = [None] * n_agents
        returns = np.zeros((n_agents, n_eps))
        running = np.ones((n_agents, n_eps), dtype=bool)
        while running.any():
            x = torch.as_tensor(np.array(obs), dtype=torch.float32, device=device)
            with torch.no_grad():
                actions = online(x).argmax(dim=-1).cpu().numpy()  # (K, episodes)
            for k, i in zip(*np.nonzero(running), strict=True):
                o, r, terminated, truncated, _ = self.envs[k][i].step(int(actions[k, i]))
                obs[k][i] = o
                returns[k, i] += float(r)
                running[k, i] = not (terminated or truncated)
        return [(float(r.mean()), float(r.std())) for r in returns]

    def close(self) -> None:
        for copies in self.envs:
            for env in copies:
                env.close()


class _Log:
    """Rows of the episode and evaluation tables, kept per agent while training runs."""

    def __init__(self, specs: Sequence[TrialSpec]) -> None:
        self.specs = specs
        n = len(specs)
        self.episodes: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.evals: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.episodes_done = [0] * n
        self._return = [0.0] * n
        self._length = [0] * n
        self._loss_sum = torch.zeros(n)
        self._q_sum = torch.zeros(n)
        self._updates = 0

    def on_step(self, k: int, reward: float) -> None:
        self._return[k] += reward
        self._length[k] += 1

    def end_episode(self, k: int, env_step: int, start: float) -> None:
        self.episodes[k].append(
            {
                "episode": self.episodes_done[k],
                "env_step": env_step,
                "episode_return": self._return[k],
                "episode_length": self._length[k],
                "wall_s": time.perf_counter() - start,
            }
        )
        self.episodes_done[k] += 1
        self._return[k], self._length[k] = 0.0, 0

    def add_update(self, loss: torch.Tensor, q_mean: torch.Tensor) -> None:
        self._loss_sum += loss.cpu()
        self._q_sum += q_mean.cpu()
        self._updates += 1

    def add_eval(self, env_step: int, results: Sequence[tuple[float, float]], start: float) -> None:
        n = self._updates
        for k, (mean, std) in enumerate(results):
            self.evals[k].append(
                {
                    "env_step": env_step,
                    "eval_return_mean": mean,
                    "eval_return_std": std,
                    "wall_s": time.perf_counter() - start,
                    "episodes_done": self.episodes_done[k],
                    "q_mean": float(self._q_sum[k]) / n if n else float("nan"),
                    "td_loss": float(self._loss_sum[k]) / n if n else float("nan"),
                }
            )
        self._loss_sum.zero_()
        self._q_sum.zero_()
        self._updates = 0

    def last_eval_return(self) -> float | None:
        return float(self.evals[0][-1]["eval_return_mean"]) if self.evals[0] else None

    def _table(self, rows: list[dict[str, Any]], k: int, columns: list[str]) -> pd.DataFrame:
        spec = self.specs[k]
        table = pd.DataFrame(rows, columns=columns)
        ids: dict[str, str | int] = {
            "trial_id": spec.trial_id,
            "config": spec.label,
            "hidden_sizes": hidden_sizes_text(spec.agent.hidden_sizes),
            "seed": spec.seed,
            "env_id": spec.env_id,
        }
        for i, (name, value) in enumerate(ids.items()):
            table.insert(i, name, value)
        return table

    def episode_table(self, k: int) -> pd.DataFrame:
        columns = ["episode", "env_step", "episode_return", "episode_length", "wall_s"]
        table = self._table(self.episodes[k], k, columns)
        return table.astype({"episode": "int64", "env_step": "int64", "episode_length": "int64"})

    def eval_table(self, k: int) -> pd.DataFrame:
        columns = [
            "env_step",
            "eval_return_mean",
            "eval_return_std",
            "wall_s",
            "episodes_done",
            "q_mean",
            "td_loss",
        ]
        return self._table(self.evals[k], k, columns)
