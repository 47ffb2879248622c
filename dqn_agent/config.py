"""Typed settings of a DQN trial: the agent's hyperparameters, the budget and the evaluation.

Every setting is a field of a frozen dataclass with a one-line docstring, checked when the object
is built: a bad value raises a `ConfigError` (a `ValueError`) that names the field and the allowed
values, long before any environment is made or any file is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

LossName = Literal["mse", "huber"]
NetworkName = Literal["mlp", "minatar", "nature"]
NETWORKS: tuple[NetworkName, ...] = ("mlp", "minatar", "nature")
"""The Q-network families a config can name: one for vector observations, two for images."""
CONV_NETWORKS: tuple[NetworkName, ...] = ("minatar", "nature")
"""The convolutional families, for image observations (channel-first)."""
DEFAULT_CHANNELS: dict[NetworkName, tuple[int, ...]] = {"minatar": (16,), "nature": (32, 64, 64)}
"""Convolution channels of each convolutional family when `channels` is not given."""
NATURE_LAYERS = 3
"""The Nature DQN network has three convolutions (8x8 stride 4, 4x4 stride 2, 3x3 stride 1)."""
ScheduleName = Literal["exponential", "linear"]
OptimizerName = Literal["adam", "rmsprop"]


class ConfigError(ValueError):
    """A setting refused, as data: the field, its value, what is allowed and, for a clash, the
    other field. Code that reports it (`sweeps.spec`) reads these, never the message's wording."""

    field: str
    """Name of the dataclass field refused, e.g. 'lr' or 'env_steps'."""
    value: object
    """The value refused, as given."""
    allowed: str
    """What the field accepts, as text, e.g. 'integers >= 1'."""
    other: str | None
    """The field whose value makes this one invalid ('buffer_size' for a batch_size above it);
    None when the value is invalid whatever the other settings are."""
    section: str
    """Where the field lives in a spec ('budget', 'eval'); '' for the agent's and the trial's."""

    def __init__(
        self,
        field: str,
        value: object,
        allowed: str,
        *,
        other: str | None = None,
        section: str = "",
    ) -> None:
        # The fields are the args, so that the error pickles (a Ray task may raise it).
        super().__init__(field, value, allowed)
        self.field = field
        self.value = value
        self.allowed = allowed
        self.other = other
        self.section = section

    def __str__(self) -> str:
        return _message(self)


def _message(error: ConfigError) -> str:
    """The human wording of a config error (its str()); nothing parses it."""
    name = f"{error.section}.{error.field}" if error.section else error.field
    return f"{name}={error.value!r} is invalid: allowed values are {error.allowed}"


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Hyperparameters of one DQN agent. The defaults solve CartPole-v1 within 50,000 steps."""

    network: NetworkName = "mlp"
    """Q-network family: 'mlp' (fully connected layers of `hidden_sizes`, ReLU between) for
    vector observations; for images, 'minatar' (3x3 convolutions of `channels`, stride 1, then
    `hidden_sizes`: the MinAtar paper's network) or 'nature' (the Nature DQN network: 8x8
    stride 4, 4x4 stride 2 and 3x3 stride 1 convolutions of `channels`, then `hidden_sizes`)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the Q-network's fully connected hidden layers, input side first (e.g. (64, 64));
    for a convolutional network, those after the convolutions (MinAtar (128,), Nature (512,))."""
    channels: tuple[int, ...] | None = None
    """Output channels of each convolution of a convolutional network, input side first; None
    means the family's own ((16,) for 'minatar', (32, 64, 64) for 'nature'). Only for those."""
    lr: float = 2.3e-3
    """Learning rate of the optimizer."""
    gamma: float = 0.99
    """Discount factor of future rewards, in [0, 1]."""
    batch_size: int = 64
    """Transitions per gradient step, sampled uniformly from the replay buffer."""
    buffer_size: int = 100_000
    """Capacity of the replay buffer in transitions (oldest overwritten first)."""
    learning_starts: int = 1_000
    """Env steps before the first gradient step, filling the replay buffer. Actions follow the
    epsilon schedule, which starts at step 0, so they are mostly (not purely) random."""
    train_every: int = 256
    """Env steps between two rounds of gradient steps."""
    gradient_steps: int = 128
    """Gradient steps in each round."""
    target_update_every: int = 10
    """Env steps between two target-network updates (a copy, or a Polyak step if tau < 1),
    counted in env steps as in Stable-Baselines3, not in gradient steps. With gradient steps in
    rounds (train_every > 1), every update of a round uses the target from before the round."""
    tau: float = 1.0
    """Target update rate in (0, 1]: 1 copies the online weights, smaller values blend them in."""
    loss: LossName = "huber"
    """TD loss: 'mse' (squared error) or 'huber' (quadratic near zero, linear beyond 1)."""
    double: bool = False
    """Double DQN: the online network picks the next action, the target network scores it."""
    dueling: bool = False
    """Dueling head: Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)."""
    epsilon_start: float = 1.0
    """Exploration probability at step 0."""
    epsilon_end: float = 0.04
    """Exploration probability the schedule decays to."""
    epsilon_decay_steps: int = 8_000
    """Linear: steps to reach epsilon_end. Exponential: steps for the excess over the end to
    shrink by a factor e."""
    epsilon_schedule: ScheduleName = "linear"
    """Shape of the epsilon decay: 'exponential' or 'linear'."""
    max_grad_norm: float | None = 10.0
    """Clip each gradient step's global norm to this value; None turns clipping off."""
    optimizer: OptimizerName = "adam"
    """'adam' (torch's Adam) or 'rmsprop' (centered RMSprop, as MinAtar's DQN used)."""
    eps: float = 1e-8
    """The optimizer's epsilon, added to the denominator (Adam's default 1e-8; MinAtar 0.01)."""
    rmsprop_alpha: float = 0.95
    """RMSprop's smoothing constant of the squared-gradient average (MinAtar's 0.95)."""
    clip_rewards: bool = False
    """Learn from the sign of each reward (-1, 0, +1), as DQN on Atari; returns are logged raw."""
    terminal_on_life_loss: bool = False
    """Atari: treat the loss of a life as the end of the episode in the TD target only (the
    game goes on, and episode returns are those of whole games)."""

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ConfigError("network", self.network, " or ".join(repr(n) for n in NETWORKS))
        self._check_channels()
        sizes = tuple(self.hidden_sizes)
        object.__setattr__(self, "hidden_sizes", sizes)
        if not sizes or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in sizes):
            raise ConfigError("hidden_sizes", list(sizes), "a non-empty list of positive integers")
        if any(h > MAX_INT for h in sizes):
            allowed = "a non-empty list of positive integers up to 2**63 - 1"
            raise ConfigError("hidden_sizes", list(sizes), allowed)
        _check_range("lr", self.lr, low=0.0, low_open=True)
        _check_range("gamma", self.gamma, low=0.0, high=1.0)
        _check_range("tau", self.tau, low=0.0, high=1.0, low_open=True)
        for name in ("batch_size", "buffer_size", "train_every", "gradient_steps"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("target_update_every", self.target_update_every, minimum=1)
        _check_int("learning_starts", self.learning_starts, minimum=0)
        _check_int("epsilon_decay_steps", self.epsilon_decay_steps, minimum=1)
        if self.batch_size > self.buffer_size:
            allowed = f"at most buffer_size ({self.buffer_size})"
            raise ConfigError("batch_size", self.batch_size, allowed, other="buffer_size")
        if self.loss not in ("mse", "huber"):
            raise ConfigError("loss", self.loss, "'mse' or 'huber'")
        if self.epsilon_schedule not in ("exponential", "linear"):
            allowed = "'exponential' or 'linear'"
            raise ConfigError("epsilon_schedule", self.epsilon_schedule, allowed)
        for name in ("double", "dueling"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "true or false")
        _check_range("epsilon_start", self.epsilon_start, low=0.0, high=1.0)
        _check_range("epsilon_end", self.epsilon_end, low=0.0, high=1.0)
        if self.epsilon_end > self.epsilon_start:
            allowed = f"at most epsilon_start ({self.epsilon_start})"
            raise ConfigError("epsilon_end", self.epsilon_end, allowed, other="epsilon_start")
        if self.max_grad_norm is not None:
            _check_range("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        if self.optimizer not in ("adam", "rmsprop"):
            raise ConfigError("optimizer", self.optimizer, "'adam' or 'rmsprop'")
        _check_range("eps", self.eps, low=0.0, low_open=True)
        _check_range("rmsprop_alpha", self.rmsprop_alpha, low=0.0, high=1.0, low_open=True)
        for name in ("clip_rewards", "terminal_on_life_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "true or false")

    def _check_channels(self) -> None:
        if self.channels is None:
            return
        channels = tuple(self.channels)
        object.__setattr__(self, "channels", channels)
        if self.network == "mlp":
            allowed = "null (the default) with network 'mlp': only conv networks have channels"
            raise ConfigError("channels", list(channels), allowed, other="network")
        bad = any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels)
        if not channels or bad or any(c > 4096 for c in channels):
            raise ConfigError("channels", list(channels), "a non-empty list of integers 1 to 4096")
        if self.network == "nature" and len(channels) != NATURE_LAYERS:
            allowed = f"{NATURE_LAYERS} channel counts for network 'nature', e.g. [32, 64, 64]"
            raise ConfigError("channels", list(channels), allowed, other="network")

    @property
    def conv_channels(self) -> tuple[int, ...]:
        """The convolutions' channels: `channels`, or the family's own; () for 'mlp'."""
        if self.network == "mlp":
            return ()
        return self.channels if self.channels is not None else DEFAULT_CHANNELS[self.network]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AgentConfig:
        """Build from plain data (YAML, JSON); unknown names raise a `ValueError` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown agent hyperparameter(s) {unknown}: allowed names are {sorted(known)}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) that `from_dict` turns back into an equal config."""
        values = dataclasses.asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        values["channels"] = None if self.channels is None else list(self.channels)
        return values

    def identity(self) -> dict[str, Any]:
        """The settings that name a trial: `to_dict`, less each setting added after the first
        release while it keeps the default that its absence meant (see `ADDED_SETTINGS`)."""
        values = self.to_dict()
        for name, default in ADDED_SETTINGS.items():
            if values[name] == default:
                del values[name]
        return values


ADDED_SETTINGS: dict[str, Any] = {
    "network": "mlp",
    "channels": None,
    "optimizer": "adam",
    "eps": 1e-8,
    "rmsprop_alpha": 0.95,
    "clip_rewards": False,
    "terminal_on_life_loss": False,
}
"""Agent settings added after trial ids were first published, with the value that a spec or a
results folder written before them means. A trial's id hashes such a setting only where it
differs from that value, so existing specs keep their trial ids."""


def _check_range(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, value, "a number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}]"
        raise ConfigError(name, value, f"numbers in {left}{lo}, {hi}")


MAX_INT = 2**63 - 1
"""Largest integer setting: the results tables store integers as 64-bit signed numbers."""


def _check_int(name: str, value: object, *, minimum: int, section: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(name, value, f"integers >= {minimum}", section=section)
    if value > MAX_INT:
        raise ConfigError(name, value, f"integers from {minimum} to 2**63 - 1", section=section)


DEFAULT_ENV_STEPS = 50_000
"""A trial's budget when its spec gives none."""


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How long a trial trains: a number of env steps, or of finished training episodes."""

    env_steps: int | None = None
    """Env steps to train for (None when the budget is in episodes); 50,000 if neither is given."""
    episodes: int | None = None
    """Training episodes to finish (None when the budget is in env steps)."""

    def __post_init__(self) -> None:
        if self.env_steps is None and self.episodes is None:
            object.__setattr__(self, "env_steps", DEFAULT_ENV_STEPS)  # frozen: set once, here
        if (self.env_steps is None) == (self.episodes is None):
            raise ValueError("budget: give exactly one of env_steps or episodes")
        if self.env_steps is not None:
            _check_int("env_steps", self.env_steps, minimum=1, section="budget")
        if self.episodes is not None:
            _check_int("episodes", self.episodes, minimum=1, section="budget")


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """Greedy evaluation of the online network on an evaluation env seeded apart from training."""

    every_steps: int = 2_500
    """Env steps between two evaluations (also one at step 0 and one at the end)."""
    episodes: int = 10
    """Episodes averaged at each evaluation."""

    def __post_init__(self) -> None:
        _check_int("every_steps", self.every_steps, minimum=1, section="eval")
        _check_int("episodes", self.episodes, minimum=1, section="eval")


@dataclass(frozen=True, kw_only=True)
class TrialSpec:
    """The whole unit of work of one trial: what to train, on what, for how long, with which seed.

    Its `trial_id` is a hash of its content (never of a time or a device), so the same settings
    always name the same trial and a changed hyperparameter names a new one.
    """

    env_id: str
    """Gymnasium id of a flat-Box-observation, Discrete-action environment."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """Hyperparameters of the agent."""
    seed: int = 0
    """The only source of randomness: network init, exploration, replay sampling, envs."""
    budget: Budget = field(default_factory=Budget)
    """How long to train."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """When and how long to evaluate."""
    label: str = "default"
    """Short text naming what varies in the sweep, e.g. 'hidden_sizes=64x64'."""
    device: str = "cpu"
    """Torch device to train on ('cpu', 'cuda', 'cuda:1'); not part of the trial's identity."""

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, minimum=0)
        if not self.env_id:
            raise ValueError("env_id is empty: give a gymnasium id such as 'CartPole-v1'")

    def identity(self) -> dict[str, Any]:
        """The content that defines the trial (and so its id): everything but device and label."""
        return {
            "env_id": self.env_id,
            "agent": self.agent.identity(),
            "seed": self.seed,
            "budget": dataclasses.asdict(self.budget),
            "eval": dataclasses.asdict(self.eval),
        }

    @property
    def trial_id(self) -> str:
        """Stable short id: the first 12 hex digits of the SHA-256 of the identity as JSON."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_network(config: AgentConfig, env_id: str, obs_shape: Sequence[int]) -> None:
    """Refuse a network that cannot read the env's observations: an MLP for images, a
    convolutional network for vectors, or convolutions that leave no pixel of the image.

    Raises:
        ConfigError: naming `network` (or `channels`, for too many convolutions).
    """
    image = len(obs_shape) == 3
    if image and config.network == "mlp":
        allowed = f"'minatar' or 'nature' for {env_id}'s images {tuple(obs_shape)}"
        raise ConfigError("network", config.network, allowed)
    if not image and config.network != "mlp":
        allowed = f"'mlp' for {env_id}'s vector observations {tuple(obs_shape)}"
        raise ConfigError("network", config.network, allowed)
    if not image:
        return
    sizes = conv_output_sizes(config, obs_shape)
    if sizes[-1][1] < 1 or sizes[-1][2] < 1:
        if config.network == "nature":
            allowed = f"'minatar' for {env_id}'s small images {tuple(obs_shape)}"
            raise ConfigError("network", config.network, allowed)
        most = (min(obs_shape[1], obs_shape[2]) - 1) // 2
        allowed = f"at most {most} convolutions for {env_id}'s images {tuple(obs_shape)}"
        raise ConfigError("channels", list(config.conv_channels), allowed, other="network")


def conv_layers(config: AgentConfig) -> list[tuple[int, int, int]]:
    """(kernel size, stride, output channels) of each convolution `config.network` has:
    `minatar` 3x3 stride 1 convolutions, `nature` 8x8/4, 4x4/2 and 3x3/1; none for `mlp`."""
    channels = config.conv_channels
    if config.network == "nature":
        return [(8, 4, channels[0]), (4, 2, channels[1]), (3, 1, channels[2])]
    return [(3, 1, c) for c in channels]


def conv_output_sizes(config: AgentConfig, obs_shape: Sequence[int]) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the image after each convolution (no padding), the input
    first: what `check_network` checks and `dqn_agent.memory` counts."""
    sizes = [(obs_shape[0], obs_shape[1], obs_shape[2])]
    for kernel, stride, out in conv_layers(config):
        _, height, width = sizes[-1]
        sizes.append((out, (height - kernel) // stride + 1, (width - kernel) // stride + 1))
    return sizes


def hidden_sizes_text(sizes: Sequence[int]) -> str:
    """Layer widths as the text the results carry, e.g. (64, 64) -> '64x64'."""
    return "x".join(str(h) for h in sizes)


#: Shipped defaults for environments whose good settings differ from CartPole's.
PRESETS: dict[str, AgentConfig] = {
    "CartPole-v1": AgentConfig(),
    "LunarLander-v3": AgentConfig(
        hidden_sizes=(256, 256),
        lr=6.3e-4,
        batch_size=128,
        buffer_size=50_000,
        learning_starts=0,
        train_every=4,
        gradient_steps=1,
        target_update_every=250,
        epsilon_end=0.1,
        epsilon_decay_steps=12_000,
        max_grad_norm=10.0,
    ),
}


MINATAR_PRESET = AgentConfig(
    network="minatar",
    hidden_sizes=(128,),
    optimizer="rmsprop",
    lr=2.5e-4,
    rmsprop_alpha=0.95,
    eps=0.01,
    gamma=0.99,
    batch_size=32,
    buffer_size=100_000,
    learning_starts=5_000,
    train_every=1,
    gradient_steps=1,
    target_update_every=1_000,
    loss="huber",
    epsilon_start=1.0,
    epsilon_end=0.1,
    epsilon_decay_steps=100_000,
    max_grad_norm=None,
)
"""The DQN of the MinAtar paper (Young & Tian, 2019, and its `examples/dqn.py`): one 3x3
convolution of 16 channels, 128 units, centered RMSprop (lr 2.5e-4, alpha 0.95, eps 0.01),
batch 32, replay of 100k, an update every step after 5,000 steps, a target copy every 1,000
updates, Huber loss, epsilon 1.0 to 0.1 linearly over 100k steps. One difference: there epsilon
stays 1.0 for the first 5,000 steps and then decays; here it decays from step 0."""

ATARI_PRESET = AgentConfig(
    network="nature",
    hidden_sizes=(512,),
    lr=1e-4,
    gamma=0.99,
    batch_size=32,
    buffer_size=1_000_000,
    learning_starts=80_000,
    train_every=4,
    gradient_steps=1,
    target_update_every=1_000,
    loss="mse",
    epsilon_start=1.0,
    epsilon_end=0.01,
    epsilon_decay_steps=1_000_000,
    max_grad_norm=0.5,
    clip_rewards=True,
    terminal_on_life_loss=True,
)
"""CleanRL's `dqn_atari.py` defaults: the Nature network, Adam (lr 1e-4), replay of 1M, batch
32, an update every 4 steps after 80k, a target copy every 1,000 steps, squared-error loss,
gradient norm clipped at 0.5, epsilon 1.0 to 0.01 over the first 1M steps (10% of its 10M),
rewards clipped to their sign, a life lost treated as terminal. (CleanRL ends the episode on a
life lost; here only the TD target does, and episode returns stay whole games'.)"""


def default_config(env_id: str) -> AgentConfig:
    """The shipped hyperparameters for `env_id`: its preset, MinAtar's for 'MinAtar/...' ids,
    CleanRL's Atari settings for 'ALE/...' ids, CartPole's otherwise."""
    if env_id in PRESETS:
        return PRESETS[env_id]
    if env_id.startswith("MinAtar/"):
        return MINATAR_PRESET
    if env_id.startswith("ALE/"):
        return ATARI_PRESET
    return AgentConfig()
