"""Learning curves with honest intervals, from results folders alone.

Reads the Parquet files of a results folder (never torch or Ray), puts every seed on a common
grid, aggregates over seeds with bootstrap intervals, and draws the figures and summary that
`dqn-sweep plot` and `dqn-sweep summary` write. See DESIGN.md, "Statistics, in one paragraph".
"""

from __future__ import annotations

from analysis.aggregate import (
    DEFAULT_THRESHOLDS,
    SUMMARY_KEYS,
    aggregate_curves,
    default_threshold,
    improvement_matrix,
    per_trial_scores,
    summary_table,
)
from analysis.align import (
    align,
    align_episodes,
    align_evals,
    bin_episode_returns,
    carry_last,
    smooth_per_seed,
)
from analysis.load import Results, ResultsError, load_results
from analysis.plots import (
    plot_final_performance,
    plot_learning_curves,
    plot_probability_of_improvement,
    plot_q_statistics,
    plot_seed_variance,
    plot_steps_to_threshold,
)
from analysis.report import format_summary, render_all
from analysis.stats import (
    Interval,
    area_under_curve,
    bootstrap_ci,
    censored_median,
    iqm,
    mean,
    probability_of_improvement,
    probability_of_improvement_ci,
    resample_indices,
    steps_to_threshold,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SUMMARY_KEYS",
    "Interval",
    "Results",
    "ResultsError",
    "aggregate_curves",
    "align",
    "align_episodes",
    "align_evals",
    "area_under_curve",
    "bin_episode_returns",
    "bootstrap_ci",
    "carry_last",
    "censored_median",
    "default_threshold",
    "format_summary",
    "improvement_matrix",
    "iqm",
    "load_results",
    "mean",
    "per_trial_scores",
    "plot_final_performance",
    "plot_learning_curves",
    "plot_probability_of_improvement",
    "plot_q_statistics",
    "plot_seed_variance",
    "plot_steps_to_threshold",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "render_all",
    "resample_indices",
    "smooth_per_seed",
    "steps_to_threshold",
    "summary_table",
]
