"""Making environments and checking that the agent can handle their spaces.

Three kinds of environment, told apart by their ids:

- gymnasium's own and any registered env with a flat Box of observations ('CartPole-v1'):
  made as registered;
- MinAtar's five games ('MinAtar/Breakout-v0' and the -v1 ids with minimal action sets), from
  the `minatar` package: observations (10, 10, C) booleans, turned channel-first and uint8,
  (C, 10, 10), by gymnasium's `TransformObservation`;
- Atari ('ALE/Breakout-v5'), from `ale-py`, with the standard DQN preprocessing of gymnasium's
  wrappers: the v5 game at frame skip 1 (sticky actions 0.25, as v5 has them), then
  `AtariPreprocessing` (up to 30 no-op starts, a frame skip of 4 with the last two frames
  max-pooled, 84x84 grayscale), then `FrameStackObservation` of 4: observations (4, 84, 84) uint8.

Gymnasium 1.x loads no plugins, so the MinAtar and ALE ids are registered here, on first use.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

FRAME_STACK = 4
"""Frames stacked into an Atari observation."""


class UnsupportedEnvError(ValueError):
    """The environment id is unknown, or its spaces are not a Box of vectors or images ->
    Discrete."""


def is_minatar(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


@functools.cache
def _register_minatar() -> None:
    try:
        from minatar import gym as minatar_gym  # imported only when a MinAtar id is used
    except ImportError as exc:
        raise UnsupportedEnvError(
            "MinAtar ids need the 'minatar' package: pip install minatar (make setup has it)"
        ) from exc
    minatar_gym.register_envs()


@functools.cache
def _register_atari() -> None:
    try:
        import ale_py  # imported only when an ALE id is used
    except ImportError as exc:
        raise UnsupportedEnvError(
            "ALE ids need the 'ale-py' package: pip install ale-py (make setup has it)"
        ) from exc
    gym.register_envs(ale_py)


def make_env(env_id: str) -> gym.Env[Any, Any]:
    """Make `env_id` and check its spaces; raises `UnsupportedEnvError` with what to change.

    Image observations come channel-first, as uint8 (see the module's docstring)."""
    if is_minatar(env_id):
        _register_minatar()
    elif is_atari(env_id):
        _register_atari()
    try:
        with warnings.catch_warnings():
            # MinAtar's -v0 ids (all six actions) are what published results use, not stale.
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            env = _make(env_id)
    except gym.error.DependencyNotInstalled as exc:
        raise UnsupportedEnvError(f"env {env_id!r} needs a package: {exc}") from exc
    except gym.error.Error as exc:
        raise UnsupportedEnvError(
            f"env {env_id!r} is not a registered gymnasium environment ({exc}); "
            "use an id such as 'CartPole-v1', 'LunarLander-v3', 'MinAtar/Breakout-v0' or "
            "'ALE/Breakout-v5'"
        ) from exc
    check_spaces(env_id, env.observation_space, env.action_space)
    return env


def _make(env_id: str) -> gym.Env[Any, Any]:
    if is_minatar(env_id):
        env = gym.make(env_id)
        height, width, channels = env.observation_space.shape or (0, 0, 0)
        space = gym.spaces.Box(0, 1, (channels, height, width), dtype=np.uint8)
        return gym.wrappers.TransformObservation(env, _channel_first, space)
    if is_atari(env_id):
        # The preprocessing does the frame skipping (with max-pooling), so the game must not.
        env = gym.make(env_id, frameskip=1)
        env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)
        return gym.wrappers.FrameStackObservation(env, FRAME_STACK)
    return gym.make(env_id)


def _channel_first(obs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A MinAtar state (10, 10, C) of booleans as (C, 10, 10) uint8."""
    return np.ascontiguousarray(obs.transpose(2, 0, 1), dtype=np.uint8)


def check_spaces(
    env_id: str, observation_space: gym.Space[Any], action_space: gym.Space[Any]
) -> None:
    """DQN here needs a Box of observations, flat (vectors) or (C, H, W) (images), and a
    Discrete set of actions."""
    shape = observation_space.shape if isinstance(observation_space, gym.spaces.Box) else ()
    channel_first = len(shape) == 3 and shape[0] <= min(shape[1], shape[2])
    if len(shape) != 1 and not channel_first:
        raise UnsupportedEnvError(
            f"env {env_id!r} has observation space {observation_space}: this DQN needs a flat "
            "Box (a 1-D vector of numbers) or channel-first images (C, H, W) with no more "
            "channels than rows or columns; wrap the env (e.g. FlattenObservation, or "
            "ReshapeObservation / TransformObservation to put channels first) or pick another"
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedEnvError(
            f"env {env_id!r} has action space {action_space}: DQN needs a Discrete set of "
            "actions; discretise the actions or use an algorithm for continuous control"
        )


def space_sizes(env: gym.Env[Any, Any]) -> tuple[int, int]:
    """(observation dimension, number of actions) of a checked env; for images the dimension
    is the number of pixels times channels."""
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    return obs_dim, n_actions


def observation_shape(env: gym.Env[Any, Any]) -> tuple[int, ...]:
    """(obs_dim,) for vector observations, (C, H, W) for images."""
    return tuple(int(n) for n in env.observation_space.shape or (1,))


def is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3


def frames_per_observation(env_id: str) -> int:
    """How many frames an observation stacks: 4 for Atari, 1 otherwise."""
    return FRAME_STACK if is_atari(env_id) else 1
