"""The DQN training loop: `train(spec) -> TrialResult`, for one seed or a group of seeds.

A group of K seeds of one configuration trains in lockstep as K independent agents: each has its
own environment, replay buffer, exploration draws, weights and optimizer state, and its own
random streams derived from its seed alone. The arithmetic is stacked along a leading seed axis
so that K agents cost little more than one. A single trial is the group with K = 1.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

from dqn_agent.buffer import ReplayBuffer
from dqn_agent.checkpoint import save_weights
from dqn_agent.config import TrialSpec, check_network, hidden_sizes_text
from dqn_agent.conv import StackedConvQNetwork, conv_factory
from dqn_agent.envs import frames_per_observation, is_image
from dqn_agent.evaluation import make_evaluator
from dqn_agent.exploration import epsilon_at
from dqn_agent.frames import FrameReplayBuffer
from dqn_agent.fused import FusedLearner
from dqn_agent.learner import Learner, ReferenceLearner, UpdateStats
from dqn_agent.networks import QNetwork
from dqn_agent.stacked import NetworkFactory, StackedModule, init_seeds
from dqn_agent.vector_env import make_vector_env

LearnerName = Literal["auto", "fused", "reference"]


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
    custom_network: bool = False
    """Whether a `network` given to `train` built the Q-network (then `save` cannot rebuild it)."""
    obs_shape: tuple[int, ...] = ()
    """Shape of one observation: (obs_dim,) for vectors, (C, H, W) for images."""

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
        if self.custom_network:
            raise ValueError(
                "this trial's Q-network came from a custom `network`, which a weights file "
                "cannot rebuild: save `result.state_dict` with torch.save and load it into "
                "your module (each tensor has a seed axis of length 1 first)"
            )
        save_weights(
            path,
            state_dict=self.state_dict,
            config=self.spec.agent,
            env_id=self.spec.env_id,
            obs_dim=self.obs_dim,
            n_actions=self.n_actions,
            obs_shape=self.obs_shape,
        )


WINDOW = 256
"""Env steps between refills of the random draws and flushes of the episode log. Fixed, so a
seed's random streams are consumed on the same schedule whatever its group."""


class _SeedStreams:
    """Independent random streams of one seed: init, exploration, replay sampling, envs.

    The exploration and replay streams are generators on the agents' device: a CUDA generator
    on a GPU, so that each agent's draws (a batch's worth per gradient step) are made there, by
    one call per agent every `WINDOW` steps. Drawn by CPU generators, a group of 1,000 agents
    spent 0.23 s of host time per window on them, 0.9 ms per env step. On a CPU they are the
    CPU generators they always were, and draw the same numbers."""

    def __init__(self, seed: int, device: torch.device) -> None:
        init, explore, replay, env, eval_env = np.random.SeedSequence(seed).spawn(5)
        self.init = _torch_generator(init, torch.device("cpu"))
        self.explore = _torch_generator(explore, device)
        self.replay = _torch_generator(replay, device)
        self.env_seed = int(env.generate_state(1)[0])
        self.eval_seed = int(eval_env.generate_state(1)[0])


def _torch_generator(
    seed_sequence: np.random.SeedSequence, device: torch.device
) -> torch.Generator:
    seed = int(seed_sequence.generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(seed)


class _Draws:
    """Uniform random numbers for the whole group, drawn in blocks per agent from that agent's
    own generator on the agents' device, so that stepping never waits for the host.

    explore: (K, WINDOW, 2) per window of env steps: [explore?, which random action].
    replay: (K, WINDOW, batch) per WINDOW gradient steps: which stored transitions to sample.
    """

    def __init__(self, streams: Sequence[_SeedStreams], batch_size: int) -> None:
        self.streams, self.batch_size = streams, batch_size
        self.explore = torch.empty(0)
        self.replay = torch.empty(0)
        self._replay_used = WINDOW

    def _block(self, generators: Sequence[torch.Generator], *shape: int) -> torch.Tensor:
        return torch.stack([torch.rand(*shape, generator=g, device=g.device) for g in generators])

    def refill_explore(self) -> None:
        self.explore = self._block([s.explore for s in self.streams], WINDOW, 2)

    def next_replay(self) -> torch.Tensor:
        """Uniforms for one gradient step's sample, (K, batch)."""
        if self._replay_used == WINDOW:
            self.replay = self._block([s.replay for s in self.streams], WINDOW, self.batch_size)
            self._replay_used = 0
        u = self.replay[:, self._replay_used]
        self._replay_used += 1
        return u


def train(
    spec: TrialSpec,
    *,
    progress: ProgressCallback | None = None,
    learner: LearnerName = "auto",
    network: NetworkFactory | None = None,
) -> TrialResult:
    """Train one DQN agent as `spec` says and return its tables, figures and weights.

    `network`, if given, builds the Q-network (see `dqn_agent.stacked`) in place of the one
    `spec.agent.network` names; it trains through the reference learner. `learner`: 'auto'
    (the fused learner where it applies, else the reference), 'fused' or 'reference'."""
    return train_group([spec], progress=progress, learner=learner, network=network)[0]


def train_group(
    specs: Sequence[TrialSpec],
    *,
    progress: ProgressCallback | None = None,
    env_backend: str = "auto",
    learner: LearnerName = "auto",
    network: NetworkFactory | None = None,
) -> list[TrialResult]:
    """Train several seeds of one configuration at once; one result per spec, in order.

    The specs must differ only in seed (and label). A seed's results are the same whether it
    trains alone or in a group. Budgets in episodes need a group of one, since agents of a group
    finish their episodes at different steps. `env_backend`: 'auto' (batched torch CartPole for
    CartPole-v1, gymnasium's vector env otherwise), 'gymnasium' or 'torch'. `learner` and
    `network` as for `train`.
    """
    _check_group(specs)
    if learner not in ("auto", "fused", "reference"):
        raise ValueError(
            f"learner={learner!r} is invalid: allowed are 'auto', 'fused', 'reference'"
        )
    with flush_denormals():
        return _train_group(specs, progress, env_backend, learner, network)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat float32 values below 1.2e-38 ("denormals") as zero while the block runs.

    Adam keeps a momentum m <- 0.9 m + 0.1 g per weight. Where the gradient stays exactly zero
    (every weight out of a dead ReLU unit), m shrinks into the denormal range and then stays
    there: 0.9 times the smallest denormal rounds back to itself. On x86 CPUs each arithmetic
    operation on a denormal takes a slow path, and after 2,000 steps a third of a [256, 256]
    group's momenta were denormal, which made its Adam step eight times slower. Flushing them to
    zero changes numbers only below 1.2e-38. The setting belongs to the calling thread; it is
    put back as it was when the block ends.
    """
    was_on = _denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def _denormals_flushed() -> bool:
    """Whether this thread already flushes denormals: then one times a denormal is zero."""
    return bool((torch.tensor([1e-40]) * 1.0).item() == 0.0)


def _train_group(
    specs: Sequence[TrialSpec],
    progress: ProgressCallback | None,
    env_backend: str,
    learner_name: LearnerName,
    network: NetworkFactory | None,
) -> list[TrialResult]:
    first = specs[0]
    config, device = first.agent, torch.device(first.device)
    n_agents = len(specs)
    streams = [_SeedStreams(s.seed, device) for s in specs]

    envs = make_vector_env(
        first.env_id, [st.env_seed for st in streams], device=device, backend=env_backend
    )
    obs_dim, obs_shape, n_actions = envs.obs_dim, envs.obs_shape, envs.n_actions
    if network is None:  # a network of the user's own reads what it was written for
        check_network(config, first.env_id, obs_shape)
    evaluator = make_evaluator(
        envs, first.env_id, [st.eval_seed for st in streams], first.eval.episodes, device
    )
    inits = [st.init for st in streams]
    learner = _make_learner(learner_name, network, first, obs_shape, n_actions, inits)
    buffer = make_buffer(first.env_id, n_agents, config.buffer_size, obs_shape, device)
    draws = _Draws(streams, config.batch_size)
    log = _Log(specs, device)

    total_steps = first.budget.env_steps
    max_episodes = first.budget.episodes
    every = first.eval.every_steps
    start = time.perf_counter()

    obs = envs.reset()
    log.add_eval(0, evaluator(learner.greedy_actions), start)
    step = episodes_done = 0
    finished = False
    while not finished:
        if step % WINDOW == 0:
            draws.refill_explore()
        actions = learner.act(obs, draws.explore[:, step % WINDOW], epsilon_at(step, config))
        out = envs.step(actions)
        # What the agent learns from: the rewards' signs and lives as episodes, if so set.
        reward = out.reward.sign() if config.clip_rewards else out.reward
        terminal = out.terminated
        if config.terminal_on_life_loss and out.life_lost is not None:
            terminal = terminal | out.life_lost
        buffer.add(obs, actions, reward, out.final_obs, terminal, out.truncated)
        done = out.terminated | out.truncated
        log.on_step(step % WINDOW, step + 1, out.reward, done, start)
        obs = out.next_obs
        step += 1
        if max_episodes is not None:
            episodes_done += int(done[0])  # a group of one: its only agent

        if step >= config.learning_starts and step % config.train_every == 0:
            for _ in range(config.gradient_steps):
                batch = buffer.sample(draws.next_replay())
                log.add_update(learner.update(batch))
        if step % config.target_update_every == 0:
            learner.update_target()

        finished = (total_steps is not None and step >= total_steps) or (
            max_episodes is not None and episodes_done >= max_episodes
        )
        evaluate = step % every == 0 or finished
        report = progress is not None and (step % 1000 == 0 or evaluate)
        if step % WINDOW == 0 or evaluate or report:
            log.flush()  # episode rows must be complete before an eval row or a report
        if evaluate:
            log.add_eval(step, evaluator(learner.greedy_actions), start)
        if report and progress is not None:
            progress(Progress(step, total_steps, log.episodes_done[0], log.last_eval_return()))

    wall_s = time.perf_counter() - start
    envs.close()
    return [
        TrialResult(
            spec=spec,
            episodes=log.episode_table(k),
            evals=log.eval_table(k),
            wall_s=wall_s,
            env_steps=step,
            state_dict=learner.agent_state_dict(k),
            obs_dim=obs_dim,
            n_actions=n_actions,
            custom_network=network is not None,
            obs_shape=obs_shape,
        )
        for k, spec in enumerate(specs)
    ]


def _make_learner(
    name: LearnerName,
    network: NetworkFactory | None,
    spec: TrialSpec,
    obs_shape: tuple[int, ...],
    n_actions: int,
    inits: Sequence[torch.Generator],
) -> Learner:
    """The learner for a group: the fused one for the built-in MLP with Adam unless told
    otherwise, the reference one for anything else. Agent k's initial weights come from
    `inits[k]` alone."""
    config, device = spec.agent, torch.device(spec.device)
    obs_dim = math.prod(obs_shape)
    fused_fits = network is None and config.network == "mlp" and config.optimizer == "adam"
    if name == "fused" and not fused_fits:
        raise ValueError(
            "learner='fused' supports only the built-in networks of 'network: mlp', trained "
            "with Adam; use learner='reference' (or 'auto')"
        )
    if network is None and config.network != "mlp":
        factory = conv_factory(config, obs_shape)
        conv = StackedConvQNetwork(factory, obs_shape, n_actions, init_seeds(inits)).to(device)
        return ReferenceLearner(conv, config)
    if network is not None:
        stacked = StackedModule(network, obs_dim, n_actions, init_seeds(inits)).to(device)
        return ReferenceLearner(stacked, config)
    online = QNetwork(len(inits), obs_dim, n_actions, config.hidden_sizes, dueling=config.dueling)
    online.reset_parameters(inits)
    online.to(device)
    if name == "reference" or not fused_fits:
        return ReferenceLearner(online, config)
    return FusedLearner(online, config)


def make_buffer(
    env_id: str,
    n_agents: int,
    capacity: int,
    obs_shape: tuple[int, ...],
    device: torch.device,
) -> ReplayBuffer | FrameReplayBuffer:
    """The replay memory for these observations: float rows for vectors; for images, uint8
    frames stored once each (an Atari observation's 4 frames are rebuilt when sampled)."""
    if not is_image(obs_shape):
        return ReplayBuffer(n_agents, capacity, obs_shape[0], device=device)
    stack = frames_per_observation(env_id)
    channels, height, width = obs_shape
    frame_shape = (channels // stack, height, width)
    return FrameReplayBuffer(n_agents, capacity, frame_shape, stack, device=device)


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
    if torch.device(first.device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {first.device!r}: torch {torch.__version__} here cannot use a GPU (a "
            "CPU-only build, or no CUDA driver); train on 'cpu', or install a CUDA build of torch"
        )


class _Log:
    """Rows of the episode and evaluation tables, kept per agent while training runs.

    Rewards and episode ends are recorded on the device, one row of a (WINDOW, K) table per env
    step, and summed into episodes on the host only at flushes, so that stepping never waits
    for the host.
    """

    def __init__(self, specs: Sequence[TrialSpec], device: torch.device) -> None:
        self.specs = specs
        n = len(specs)
        self.episodes: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.evals: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.episodes_done = [0] * n
        self._reward = torch.zeros(WINDOW, n, device=device)
        self._done = torch.zeros(WINDOW, n, dtype=torch.bool, device=device)
        self._env_step = np.zeros(WINDOW, dtype=np.int64)
        self._wall_s = np.zeros(WINDOW)
        self._filled = self._flushed = 0
        self._return = np.zeros(n)  # of each agent's episode in progress, up to the last flush
        self._length = np.zeros(n, dtype=np.int64)
        self._loss_sum = torch.zeros(0, device=device)  # (K, batch) once updates begin
        self._q_sum = torch.zeros(0, device=device)
        self._updates = 0

    def on_step(
        self, row: int, env_step: int, reward: torch.Tensor, done: torch.Tensor, start: float
    ) -> None:
        """Record row `row` of the window (global `env_step`): rewards and episode ends, (K,)."""
        if row == 0:
            self._filled = self._flushed = 0
        self._reward[row] = reward
        self._done[row] = done
        self._env_step[row] = env_step
        self._wall_s[row] = time.perf_counter() - start
        self._filled = row + 1

    def flush(self) -> None:
        """Sum the rewards recorded since the last flush into episodes; ended ones become rows."""
        rows = range(self._flushed, self._filled)
        rewards = self._reward[self._flushed : self._filled].cpu().numpy()
        dones = self._done[self._flushed : self._filled].cpu().numpy()
        for t, row in enumerate(rows):
            self._return += rewards[t]
            self._length += 1
            for k in np.flatnonzero(dones[t]):
                self.episodes[k].append(
                    {
                        "episode": self.episodes_done[k],
                        "env_step": int(self._env_step[row]),
                        "episode_return": float(self._return[k]),
                        "episode_length": int(self._length[k]),
                        "wall_s": float(self._wall_s[row]),
                    }
                )
                self.episodes_done[k] += 1
            self._return[dones[t]] = 0.0
            self._length[dones[t]] = 0
        self._flushed = self._filled

    def add_update(self, stats: UpdateStats) -> None:
        """Record one update: loss and Q(s, a) of each sampled transition, (K, batch). They are
        summed as they come and averaged over the batch only at the next evaluation row."""
        loss, q_taken = stats
        if self._updates == 0:
            self._loss_sum, self._q_sum = loss.clone(), q_taken.clone()
        else:
            self._loss_sum += loss
            self._q_sum += q_taken
        self._updates += 1

    def add_eval(self, env_step: int, results: Sequence[tuple[float, float]], start: float) -> None:
        n = self._updates
        losses = self._loss_sum.mean(dim=1).tolist() if n else []
        qs = self._q_sum.mean(dim=1).tolist() if n else []
        for k, (mean, std) in enumerate(results):
            self.evals[k].append(
                {
                    "env_step": env_step,
                    "eval_return_mean": mean,
                    "eval_return_std": std,
                    "wall_s": time.perf_counter() - start,
                    "episodes_done": self.episodes_done[k],
                    "q_mean": qs[k] / n if n else float("nan"),
                    "td_loss": losses[k] / n if n else float("nan"),
                }
            )
        self._updates = 0

    def last_eval_return(self) -> float | None:
        return float(self.evals[0][-1]["eval_return_mean"]) if self.evals[0] else None

    def _table(self, rows: list[dict[str, Any]], k: int, columns: dict[str, str]) -> pd.DataFrame:
        """Agent k's rows as a table: the trial's ids, then `columns` (name: dtype).

        Built column by column: for 1,000 agents of 300 episodes each, 2.7 s on one core,
        against 7.0 s from the rows with the ids inserted after."""
        spec = self.specs[k]
        n = len(rows)
        ids: dict[str, str | int] = {
            "trial_id": spec.trial_id,
            "config": spec.label,
            "hidden_sizes": hidden_sizes_text(spec.agent.hidden_sizes),
            "seed": spec.seed,
            "env_id": spec.env_id,
        }
        data: dict[str, Any] = {
            name: pd.Series([value] * n, dtype="str")
            if isinstance(value, str)
            else np.full(n, value, dtype=np.int64)
            for name, value in ids.items()
        }
        for name, dtype in columns.items():
            data[name] = np.array([row[name] for row in rows], dtype=dtype)
        return pd.DataFrame(data)

    def episode_table(self, k: int) -> pd.DataFrame:
        return self._table(self.episodes[k], k, EPISODE_COLUMNS)

    def eval_table(self, k: int) -> pd.DataFrame:
        return self._table(self.evals[k], k, EVAL_COLUMNS)


EPISODE_COLUMNS = {
    "episode": "int64",
    "env_step": "int64",
    "episode_return": "float64",
    "episode_length": "int64",
    "wall_s": "float64",
}
"""Columns of a trial's episode table after its ids, with their dtypes."""

EVAL_COLUMNS = {
    "env_step": "int64",
    "eval_return_mean": "float64",
    "eval_return_std": "float64",
    "wall_s": "float64",
    "episodes_done": "int64",
    "q_mean": "float64",
    "td_loss": "float64",
}
"""Columns of a trial's evaluation table after its ids, with their dtypes."""
