"""Normalized scores: where a return lies between a random policy's and a reference score.

    normalized = (score - random) / (reference - random)

0 is the random policy, 1 the reference; scores of different environments become comparable,
which aggregates across environments need. `SCORES` ships both ends for the classic-control
environments and LunarLander: the random end measured by the project
(`python -m benchmarks.bench_random_scores`, 100 episodes of uniformly random actions,
`benchmarks/results/random_scores.md`), the reference end gymnasium's solved threshold
(`reward_threshold`) or, for CartPole-v1, the episode's maximum return. MinAtar's random scores
are measured too, but no reference is shipped: give one (`ScoreRange`) to normalize them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ScoreRange:
    """The two ends of an environment's normalized scale."""

    random: float
    """Mean return of uniformly random actions."""
    reference: float
    """The score normalized to 1."""
    source: str
    """Where the reference comes from."""

    def __post_init__(self) -> None:
        if self.reference == self.random:
            raise ValueError(
                f"reference score {self.reference:g} equals the random score: a normalized "
                "score would divide by zero; give a reference the random policy does not reach"
            )


SCORES: dict[str, ScoreRange] = {
    "CartPole-v1": ScoreRange(21.61, 500.0, "the maximum return (500 steps)"),
    "Acrobot-v1": ScoreRange(-499.85, -100.0, "gymnasium's reward_threshold (solved)"),
    "MountainCar-v0": ScoreRange(-200.0, -110.0, "gymnasium's reward_threshold (solved)"),
    "LunarLander-v3": ScoreRange(-192.50, 200.0, "gymnasium's reward_threshold (solved)"),
}
"""Shipped score ranges, by env id."""

RANDOM_SCORES: dict[str, float] = {
    "MinAtar/Breakout-v0": 0.50,
    "MinAtar/SpaceInvaders-v0": 2.88,
    "MinAtar/Asterix-v0": 0.36,
    "MinAtar/Freeway-v0": 0.17,
    "MinAtar/Seaquest-v0": 0.11,
}
"""Random-policy scores measured where no reference score is shipped."""


def score_range(env_id: str, overrides: Mapping[str, ScoreRange] | None = None) -> ScoreRange:
    """The range to normalize `env_id`'s scores with: the override if given, else shipped.

    Raises:
        KeyError: naming the env and what to give, where neither has one.
    """
    if overrides and env_id in overrides:
        return overrides[env_id]
    if env_id in SCORES:
        return SCORES[env_id]
    hint = (
        f" (its random score, {RANDOM_SCORES[env_id]:g}, is measured: give a reference)"
        if env_id in RANDOM_SCORES
        else ""
    )
    raise KeyError(f"no random and reference scores for {env_id!r}{hint}")


def normalized(
    scores: npt.ArrayLike, env_id: str, overrides: Mapping[str, ScoreRange] | None = None
) -> npt.NDArray[np.float64]:
    """`scores` of `env_id` (any shape) on its normalized scale (`score_range`)."""
    span = score_range(env_id, overrides)
    return (np.asarray(scores, dtype=np.float64) - span.random) / (span.reference - span.random)
