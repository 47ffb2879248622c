"""The frame replay buffer: observations rebuilt from frames stored once, checked against what
was added (a reference stacker, and gymnasium's own `FrameStackObservation`) across episode
ends, time-limit truncations and wraps of the ring."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation, TimeLimit

from dqn_agent.buffer import Batch
from dqn_agent.frames import FrameReplayBuffer
from dqn_agent.memory import SLOT_SCALAR_BYTES, frame_buffer_bytes


@dataclass(frozen=True)
class Sent:
    """One agent's transition as handed to `add`; its reward is the step's index, so that a
    sampled transition names the step it came from."""

    obs: torch.Tensor  # (stack * C, H, W), uint8 or bool
    action: int
    final_obs: torch.Tensor  # what the action led to, before any reset
    terminated: bool
    truncated: bool


History = list[list[Sent]]
"""What was added: one row per env step, one `Sent` per agent."""


def _add(buffer: FrameReplayBuffer, history: History, row: list[Sent]) -> None:
    """Add one step of every agent, rewarded with the step's index, and record it."""
    buffer.add(
        torch.stack([s.obs for s in row]),
        torch.tensor([s.action for s in row]),
        torch.full((len(row),), float(len(history))),
        torch.stack([s.final_obs for s in row]),
        torch.tensor([s.terminated for s in row]),
        torch.tensor([s.truncated for s in row]),
    )
    history.append(row)


def _sampleable_steps(buffer: FrameReplayBuffer, n_added: int) -> range:
    """The steps the rules allow to be sampled: all but the newest and, once the ring has
    wrapped, all but the oldest stack - 1 of the last `capacity`."""
    if n_added >= buffer.capacity:
        return range(n_added - buffer.capacity + buffer.stack - 1, n_added - 1)
    return range(0, n_added - 1)


def _sample_grid(buffer: FrameReplayBuffer, points: int) -> Batch:
    """Sample on an ascending grid of `points` uniforms in [0, 1), the same for every agent."""
    grid = (torch.arange(points) + 0.5) / points
    return buffer.sample(grid.expand(buffer.n_agents, points))


def _check_every_slot(buffer: FrameReplayBuffer, history: History) -> int:
    """Sample every sampleable slot, and only those, and compare with what was added: obs,
    action, reward, terminated, and next_obs wherever it matters (not terminated). Returns how
    many of the compared transitions were truncated and not terminated."""
    batch = _sample_grid(buffer, 8 * buffer.capacity)  # finer than any slot's share of [0, 1)
    expected_steps = set(_sampleable_steps(buffer, len(history)))
    truncated = 0
    for k in range(buffer.n_agents):
        steps = [int(r) for r in batch.rewards[k].tolist()]
        assert set(steps) == expected_steps
        for step, b in {step: b for b, step in enumerate(steps)}.items():
            sent = history[step][k]
            assert torch.equal(batch.obs[k, b], sent.obs.to(torch.uint8)), (k, step)
            assert int(batch.actions[k, b]) == sent.action
            assert float(batch.terminated[k, b]) == float(sent.terminated)
            if not sent.terminated:
                assert torch.equal(batch.next_obs[k, b], sent.final_obs.to(torch.uint8)), (k, step)
                truncated += sent.truncated
    return truncated


def _check_side_store(buffer: FrameReplayBuffer, history: History) -> None:
    """The side store holds exactly the truncated, not terminated, transitions still in the
    ring: none is kept after its slot is overwritten."""
    in_ring = range(max(len(history) - buffer.capacity, 0), len(history))
    expected = {
        (k, step % buffer.capacity)
        for step in in_ring
        for k, sent in enumerate(history[step])
        if sent.truncated and not sent.terminated
    }
    assert set(buffer.final_frames) == expected


def _stack_of(episode: list[torch.Tensor], stack: int) -> torch.Tensor:
    """The reference stack rule: the last `stack` frames of the episode so far, oldest first,
    its first frame repeated while it is shorter than the stack."""
    p = len(episode) - 1
    return torch.cat([episode[max(p - stack + 1 + j, 0)] for j in range(stack)])


def _random_history(
    n_agents: int, n_steps: int, frame_shape: tuple[int, int, int], stack: int, *, binary: bool
) -> History:
    """Random frames (uint8, or bool like MinAtar's) in random episodes; each step ends an
    episode by termination with probability 0.15, by truncation with 0.1, by both with 0.015."""
    g = torch.Generator().manual_seed(0)

    def frame() -> torch.Tensor:
        if binary:
            return torch.rand(frame_shape, generator=g) < 0.3
        return torch.randint(0, 256, frame_shape, generator=g, dtype=torch.uint8)

    episodes = [[frame()] for _ in range(n_agents)]
    history: History = []
    for _ in range(n_steps):
        row = []
        for k in range(n_agents):
            nxt = frame()
            terminated, truncated = (
                torch.rand(2, generator=g) < torch.tensor([0.15, 0.1])
            ).tolist()
            action = int(torch.randint(0, 256, (), generator=g))
            final = _stack_of([*episodes[k], nxt], stack)
            row.append(Sent(_stack_of(episodes[k], stack), action, final, terminated, truncated))
            episodes[k] = [frame()] if terminated or truncated else [*episodes[k], nxt]
        history.append(row)
    return history


@pytest.mark.parametrize(
    ("frame_shape", "stack", "binary"),
    [((4, 10, 10), 1, True), ((3, 5, 5), 1, False), ((2, 5, 5), 3, False)],
    ids=["minatar-like-bool", "uint8-stack1", "uint8-stack3"],
)
def test_round_trip_recovers_every_transition(
    frame_shape: tuple[int, int, int], stack: int, binary: bool
) -> None:
    """After every add, before and after the ring wraps, each sampleable slot gives back
    exactly what was added, actions up to 255 included."""
    buffer = FrameReplayBuffer(2, capacity=11, frame_shape=frame_shape, stack=stack)
    history: History = []
    truncated_checked = 0
    for row in _random_history(2, 40, frame_shape, stack, binary=binary):
        _add(buffer, history, row)
        if len(history) >= 2:
            truncated_checked += _check_every_slot(buffer, history)
        _check_side_store(buffer, history)
    assert buffer.full and truncated_checked > 0


class _Tape(gym.Env[npt.NDArray[np.uint8], np.int64]):
    """A tiny image env whose (6, 6) uint8 frames name themselves: pixels 0..2 of the top row
    hold the agent, the episode and the step in it, the rest is noise. An episode terminates
    after a random 1 to 7 steps."""

    def __init__(self, agent: int, seed: int) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (6, 6), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self._agent, self._rng = agent, np.random.default_rng(seed)
        self._episode, self._t, self._length = -1, 0, 0

    def _frame(self) -> npt.NDArray[np.uint8]:
        frame = self._rng.integers(0, 256, (6, 6), dtype=np.uint8)
        frame[0, :3] = (self._agent, self._episode, self._t)
        return frame

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
        super().reset(seed=seed)
        self._episode, self._t = self._episode + 1, 0
        self._length = int(self._rng.integers(1, 8))
        return self._frame(), {}

    def step(
        self, action: np.int64
    ) -> tuple[npt.NDArray[np.uint8], SupportsFloat, bool, bool, dict[str, Any]]:
        self._t += 1
        return self._frame(), 0.0, self._t >= self._length, False, {}


def test_stacks_match_gymnasium_frame_stacking_across_resets_and_wraps() -> None:
    """Three agents with episodes of their own lengths, cut by time limits of 3, 5 and 9 steps,
    stacked 4 by `FrameStackObservation` (padding "reset", as for Atari): the buffer gives back
    the stacks the envs returned, right after resets too, and the true final stack for
    truncated transitions, while a ring of 13 wraps five times."""
    stack, capacity, limits = 4, 13, (3, 5, 9)
    envs = [
        FrameStackObservation(
            TimeLimit(_Tape(k, seed=10 + k), max_episode_steps=limit), stack, padding_type="reset"
        )
        for k, limit in enumerate(limits)
    ]
    buffer = FrameReplayBuffer(len(envs), capacity, frame_shape=(1, 6, 6), stack=stack)
    rng = np.random.default_rng(0)
    obs = [torch.tensor(env.reset(seed=k)[0]) for k, env in enumerate(envs)]
    history: History = []
    truncated_checked = 0
    for _ in range(5 * capacity + 3):
        row = []
        for k, env in enumerate(envs):  # same-step autoreset, as the vector envs do
            action = int(rng.integers(3))
            final, _, terminated, truncated, _ = env.step(np.int64(action))
            row.append(Sent(obs[k], action, torch.tensor(final), terminated, truncated))
            obs[k] = torch.tensor(env.reset()[0] if terminated or truncated else final)
        _add(buffer, history, row)
        if len(history) >= 2:
            truncated_checked += _check_every_slot(buffer, history)
        _check_side_store(buffer, history)
    sent = [s for row in history for s in row]
    assert sum(s.terminated and s.truncated for s in sent) > 0  # a time limit on the last step
    assert sum(s.terminated for s in sent) > 10 and truncated_checked > 10


def test_sampling_covers_exactly_the_sampleable_slots_in_ring_order() -> None:
    """The newest slot and, after a wrap, the oldest stack - 1 are never drawn; every other slot
    is; ascending uniforms walk the slots from oldest to newest; the same uniforms draw the same
    transitions."""
    stack, capacity = 4, 10
    buffer = FrameReplayBuffer(2, capacity, frame_shape=(1, 3, 3), stack=stack)
    history: History = []
    for n_added, row in enumerate(_random_history(2, 35, (1, 3, 3), stack, binary=False), 1):
        _add(buffer, history, row)
        if n_added < 2:
            continue
        batch = _sample_grid(buffer, 1000)
        steps = batch.rewards[0].tolist()
        allowed = _sampleable_steps(buffer, n_added)
        assert set(steps) == set(allowed) and steps == sorted(steps)
        assert n_added - 1 not in steps  # the newest: its next frame is not written yet
        if n_added >= capacity:  # the oldest stack - 1: their stacks reach overwritten slots
            oldest_kept = n_added - capacity
            assert not set(steps) & set(range(oldest_kept, oldest_kept + stack - 1))
        edges = buffer.sample(torch.tensor([[0.0, 1.0 - 1e-7]] * 2)).rewards
        assert edges.tolist() == [[allowed[0], allowed[-1]]] * 2
        again = _sample_grid(buffer, 1000)
        assert all(torch.equal(x, y) for x, y in zip(batch, again, strict=True))


@pytest.mark.parametrize(
    ("frame_shape", "stack", "per_transition"),
    [((1, 84, 84), 4, 7_067), ((4, 10, 10), 1, 411)],
    ids=["atari", "minatar-breakout"],
)
def test_bytes_per_transition_is_what_is_allocated(
    frame_shape: tuple[int, int, int], stack: int, per_transition: int
) -> None:
    """The planner's formula, the buffer's own count and the tensors' sizes agree."""
    n_agents, capacity = 3, 7
    buffer = FrameReplayBuffer(n_agents, capacity, frame_shape, stack)
    allocated = sum(
        t.nbytes
        for t in (
            buffer.frames,
            buffer.actions,
            buffer.rewards,
            buffer.terminated,
            buffer.ended,
            buffer.position,
        )
    )
    assert buffer.bytes_per_transition() == per_transition
    assert frame_buffer_bytes(frame_shape, capacity) == per_transition * capacity
    assert allocated == per_transition * capacity * n_agents
    assert per_transition == math.prod(frame_shape) + SLOT_SCALAR_BYTES


def test_atari_memory_for_a_hundred_thousand_transitions() -> None:
    """About 707 MB an agent, against 22.6 GB for obs and next_obs stored whole as float32."""
    assert frame_buffer_bytes((1, 84, 84), 100_000) == 706_700_000


def test_sampling_before_two_adds_raises() -> None:
    """Empty, or holding only a transition whose next frame is not written yet, the buffer has
    nothing to sample; after a second add it has the first transition."""
    buffer = FrameReplayBuffer(2, capacity=5, frame_shape=(1, 4, 4), stack=2)
    uniforms = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="no transition can be sampled"):
        buffer.sample(uniforms)
    history: History = []
    rows = _random_history(2, 2, (1, 4, 4), 2, binary=False)
    _add(buffer, history, rows[0])
    with pytest.raises(RuntimeError, match="no transition can be sampled"):
        buffer.sample(uniforms)
    _add(buffer, history, rows[1])
    assert buffer.sample(uniforms).rewards.tolist() == [[0.0] * 3] * 2


def test_refuses_observations_it_cannot_store() -> None:
    """A capacity no larger than the stack, observations of the wrong shape and float frames
    (which uint8 would silently truncate) are refused."""
    with pytest.raises(ValueError, match="must exceed stack"):
        FrameReplayBuffer(1, capacity=4, frame_shape=(1, 4, 4), stack=4)
    buffer = FrameReplayBuffer(1, capacity=5, frame_shape=(1, 4, 4), stack=2)
    flags = torch.zeros(1, dtype=torch.bool)
    scalars = (torch.zeros(1, dtype=torch.long), torch.zeros(1))
    wrong_shape = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="expected"):
        buffer.add(wrong_shape, *scalars, wrong_shape, flags, flags)
    floats = torch.zeros(1, 2, 4, 4)
    with pytest.raises(TypeError, match="uint8 or bool"):
        buffer.add(floats, *scalars, floats, flags, flags)
