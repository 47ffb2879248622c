"""The choices and defaults that `dqn-sweep plot` and `dqn-sweep summary` offer.

Kept apart from the modules that use them, which import pandas, scipy and matplotlib, so that
building the command line (for `--help`, or for another command) imports none of those.
"""

from __future__ import annotations

from typing import Literal

Metric = Literal["eval", "episode"]
XAxis = Literal["env_step", "episode", "wall_s"]
SummaryFormat = Literal["markdown", "csv", "json"]

METRICS: tuple[Metric, ...] = ("eval", "episode")
X_AXES: tuple[XAxis, ...] = ("env_step", "episode", "wall_s")
SUMMARY_FORMATS: tuple[SummaryFormat, ...] = ("markdown", "csv", "json")
FIGURE_FORMATS = ("png", "svg", "pdf")

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples per interval."""
MAX_RESAMPLES = 100_000
"""The most `--resamples` a command accepts: a bootstrap holds one row of indices and one of
estimates per resample (10 seeds and 200 grid points: 170 MB at this bound), and intervals stop
changing long before."""
