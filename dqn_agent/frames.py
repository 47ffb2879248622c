"""Replay memory for image observations: every frame is stored once, as uint8.

Why not store observations whole. An Atari observation is a stack of the last 4 frames,
(4, 84, 84), and the next observation shares 3 of them; a transition's next observation is also
the following transition's observation. Storing obs and next_obs in full, as `ReplayBuffer`
does for vectors, would keep every frame 8 times: 56,448 bytes a transition as uint8, four
times that as float32. Here each env step writes one slot holding only the newest frame of the
observation the agent acted on, and `sample` rebuilds both stacks from neighbouring slots, as
Dopamine's replay memory does.

Layout. One slot per env step, the same slot for all agents of a group (they step in lockstep
and share the write position, as in `ReplayBuffer`). Slot t of agent k holds:

    frames[k, t]      uint8 (C, H, W)  the newest frame of obs_t, the observation acted on
    actions[k, t]     uint8            a_t (so at most 256 actions; Atari has 18)
    rewards[k, t]     float32          r_t
    terminated[k, t]  bool             the episode really ended: the target is r_t alone
    ended[k, t]       bool             terminated or truncated: slot t + 1 starts an episode
    position[k, t]    int32            the index of obs_t in its episode, 0 for a reset one

Stack rule. An observation is `stack` frames (Atari 4; MinAtar 1, the frame being the whole
observation), oldest first, each of C channels (Atari 1, MinAtar 4 to 10): (stack * C, H, W).
Its frames are those of its own episode, the first frame repeated while the episode is younger
than the stack: gymnasium's `FrameStackObservation(env, stack)` with padding_type "reset". So
obs_t is the frames of slots t - min(stack - 1 - j, position_t) for j = 0 .. stack - 1. The
next observation, obs_{t+1}, holds the last stack - 1 of those and the frame of slot t + 1:
both come from one gather of stack + 1 frames, slots t - min(stack - 1 - i, position_t) for
i = 0 .. stack (i = stack is slot t + 1), of which obs_t is the first `stack` and next_obs the
last `stack`.

Episode ends. The next observation of transition t is:
- not ended: the frame of slot t + 1, written by the next `add`; until then the newest slot
  cannot be sampled.
- terminated: irrelevant, since the target multiplies it by 0. `sample` returns what the gather
  gives, the ending episode's frames followed by the first frame of the next episode: well
  formed, never used (Dopamine does the same).
- truncated and not terminated (a time limit cut the episode): the target still bootstraps,
  from the true final observation, whose newest frame slot t + 1 does not hold (it holds the
  next episode's first frame). These rare frames live in a side store, `final_frames`, keyed by
  (agent, slot) and dropped when their slot is overwritten; `sample` patches them in. An env
  whose episodes only terminate never fills it, and its sampling reads nothing back.

Which slots can be sampled. In ring order from oldest to newest, a contiguous range: all but
the newest slot (its successor is not written yet) and, once the ring has wrapped, all but the
oldest stack - 1 slots as well (frames of their stacks have been overwritten). Each uniform u
picks slot first + floor(u * count) of that range, so sampling is uniform over it and a
function of the uniforms alone.

Memory. Per agent and slot: C * H * W bytes of frame + 1 (action) + 4 (reward) + 1
(terminated) + 1 (ended) + 4 (position) = C * H * W + 11 bytes
(`dqn_agent.memory.frame_buffer_bytes`). Atari, (1, 84, 84): 7,067 bytes, so 100,000
transitions take about 707 MB an agent; MinAtar Breakout, (4, 10, 10): 411 bytes. Not
counted, and small: one int32 episode position per agent, and one frame per truncated episode
still in the ring.

Reads from the device. `sample` reads nothing back unless the side store holds frames (then:
which of the sampled transitions were truncated). `add` reads which agents were truncated and
not terminated, to keep their final frames. It reads the flags on the device they are given
on: an env stepped on the host (as gymnasium's image envs are, whose observations come from the
host anyway) can pass them from there, and this read then adds no wait for a GPU.
"""

from __future__ import annotations

import torch

from dqn_agent.buffer import Batch


class FrameReplayBuffer:
    """A ring of the last `capacity` transitions of each of `n_agents` agents, whose
    observations are stacks of `stack` frames of shape `frame_shape` (C, H, W).

    The first `add` must be of observations that start episodes (straight after a reset): the
    buffer counts each agent's position in its episode from there.
    """

    def __init__(
        self,
        n_agents: int,
        capacity: int,
        frame_shape: tuple[int, int, int],
        stack: int,
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        if stack < 1:
            raise ValueError(f"stack must be at least 1, got {stack}")
        if capacity <= stack:
            raise ValueError(f"capacity ({capacity}) must exceed stack ({stack})")
        self.n_agents, self.capacity, self.stack = n_agents, capacity, stack
        self.frame_shape = frame_shape
        self.device = torch.device(device)
        slots = (n_agents, capacity)
        self.frames = torch.zeros(*slots, *frame_shape, dtype=torch.uint8, device=self.device)
        self.actions = torch.zeros(slots, dtype=torch.uint8, device=self.device)
        self.rewards = torch.zeros(slots, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(slots, dtype=torch.bool, device=self.device)
        self.ended = torch.zeros(slots, dtype=torch.bool, device=self.device)
        self.position = torch.zeros(slots, dtype=torch.int32, device=self.device)
        self.final_frames: dict[tuple[int, int], torch.Tensor] = {}
        """The newest frame of the final observation of each truncated, not terminated,
        transition still in the ring, keyed by (agent, slot)."""
        self._episode_position = torch.zeros(n_agents, dtype=torch.int32, device=self.device)
        """Each agent's position in its current episode: that of the observation added next."""
        self._first_row = torch.arange(n_agents, device=self.device).unsqueeze(1) * capacity
        """Where each agent's slice starts in the slots viewed as one column."""
        self._window_back = torch.arange(stack - 1, -2, -1, device=self.device)
        """How far back from slot t the stack + 1 frames of obs_t and next_obs_t lie, before
        the episode start clamps them: stack - 1, ..., 1, 0, and -1 for slot t + 1."""
        self.pos = 0
        """Index the next transition is written to."""
        self.full = False
        """True once the ring has wrapped: every slot then holds a transition."""

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def bytes_per_transition(self) -> int:
        """Bytes allocated per slot for one agent, read off the tensors' element sizes; equal to
        `frame_buffer_bytes(frame_shape, 1)`: C * H * W + 11."""
        per_slot = (
            self.frames,
            self.actions,
            self.rewards,
            self.terminated,
            self.ended,
            self.position,
        )
        return sum(t.element_size() * t[0, 0].numel() for t in per_slot)

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        final_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        """Write one transition per agent into the next slot.

        obs (K, stack * C, H, W) uint8 or bool: what each agent acted on; final_obs, the same
        shape: the observation its action led to, before any reset; actions (K,) int64, below
        256; rewards (K,); terminated and truncated (K,) bool (or 0/1). Only the newest frame of
        obs is stored, and of final_obs only where the episode was truncated and not terminated.
        """
        self._check_observations("obs", obs)
        self._check_observations("final_obs", final_obs)
        t, c = self.pos, self.frame_shape[0]
        if self.final_frames:  # the transitions of slot t are about to be overwritten
            self.final_frames = {key: f for key, f in self.final_frames.items() if key[1] != t}
        terminated, truncated = terminated.bool(), truncated.bool()
        ended = (terminated | truncated).to(self.device)
        self.frames[:, t] = obs[:, -c:]  # copies across devices and dtypes (bool -> 0/1)
        self.actions[:, t] = actions
        self.rewards[:, t] = rewards
        self.terminated[:, t] = terminated
        self.ended[:, t] = ended
        self.position[:, t] = self._episode_position
        for k in (truncated & ~terminated).nonzero().flatten().tolist():
            self.final_frames[(k, t)] = final_obs[k, -c:].to(self.device, torch.uint8, copy=True)
        self._episode_position = torch.where(ended, 0, self._episode_position + 1)
        self.pos = (t + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, uniforms: torch.Tensor) -> Batch:
        """Draw sampleable transitions uniformly, with replacement: uniforms (K, batch) in
        [0, 1), each agent's from its own generator, pick which (see the module's docstring).

        obs and next_obs, (K, batch, stack * C, H, W) uint8, are views of one gathered window of
        stack + 1 frames per transition and share its middle frames: read them, do not write
        into them. next_obs is meaningless where terminated is 1.
        """
        first, count = self._sampleable()
        if count <= 0:
            raise RuntimeError(
                "no transition can be sampled yet: the replay buffer needs two added steps"
            )
        offset = (uniforms * count).long().clamp_(max=count - 1)
        idx = (first + offset) % self.capacity  # (K, batch): slots, in each agent's slice
        rows = idx + self._first_row  # the same slots, in the flattened slices
        back = torch.minimum(self._window_back, self.position.take(rows).long().unsqueeze(-1))
        window_rows = (idx.unsqueeze(-1) - back) % self.capacity + self._first_row.unsqueeze(-1)
        window = self.frames.view(-1, *self.frame_shape).index_select(0, window_rows.view(-1))
        window = window.view(*idx.shape, self.stack + 1, *self.frame_shape)
        if self.final_frames:
            self._patch_final_frames(window, idx, rows)
        stacked = (*idx.shape, self.stack * self.frame_shape[0], *self.frame_shape[1:])
        return Batch(
            obs=window[:, :, :-1].reshape(stacked),
            actions=self.actions.take(rows).long(),
            rewards=self.rewards.take(rows),
            next_obs=window[:, :, 1:].reshape(stacked),
            terminated=self.terminated.take(rows).float(),
        )

    def _sampleable(self) -> tuple[int, int]:
        """The first slot, in ring order, of the range that can be sampled, and its length."""
        if self.full:
            return (self.pos + self.stack - 1) % self.capacity, self.capacity - self.stack
        return 0, self.pos - 1

    def _patch_final_frames(
        self, window: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor
    ) -> None:
        """Put the true final frame, from the side store, as the newest frame of next_obs
        (window[..., stack, :, :, :]) of each sampled transition that was truncated and not
        terminated: the gather put the next episode's first frame there."""
        cut = self.ended.take(rows) & ~self.terminated.take(rows)
        agent, draw = cut.nonzero().unbind(1)  # reads back which draws were cut...
        if agent.numel() == 0:
            return
        keys = torch.stack((agent, idx[agent, draw]), dim=1).tolist()  # ...and their slots
        finals = [self.final_frames[(k, slot)] for k, slot in keys]
        window[agent, draw, self.stack] = torch.stack(finals)

    def _check_observations(self, name: str, obs: torch.Tensor) -> None:
        """Refuse observations of the wrong shape or of a type that would not survive uint8."""
        c, h, w = self.frame_shape
        expected = (self.n_agents, self.stack * c, h, w)
        if tuple(obs.shape) != expected:
            raise ValueError(f"{name} has shape {tuple(obs.shape)}, expected {expected}")
        if obs.dtype not in (torch.uint8, torch.bool):
            raise TypeError(f"{name} must be uint8 or bool frames, got {obs.dtype}")
