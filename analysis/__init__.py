"""Learning curves with honest intervals, from results folders alone.

Reads the Parquet files of a results folder (never torch or Ray), puts every seed on a common
grid, aggregates over seeds with bootstrap intervals, and draws the figures and summary that
`dqn-sweep plot` and `dqn-sweep summary` write. What a results folder holds is the contract in
`analysis.schema`; why the statistics are what they are is in docs/design.md ("Statistics").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.aggregate import (
        AGGREGATE_KEYS,
        DEFAULT_THRESHOLDS,
        SUMMARY_KEYS,
        AcrossEnvs,
        aggregate_curves,
        aggregate_table,
        default_threshold,
        improvement_matrix,
        per_trial_scores,
        performance_profiles,
        sample_efficiency,
        select_across_envs,
        summary_table,
    )
    from analysis.alignment import (
        align,
        align_episodes,
        align_evals,
        bin_episode_returns,
        carry_last,
        smooth_per_seed,
    )
    from analysis.load import Results, ResultsError, load_results
    from analysis.normalization import SCORES, ScoreRange, normalized, score_range
    from analysis.plots import (
        plot_aggregate_metrics,
        plot_final_performance,
        plot_learning_curves,
        plot_performance_profile,
        plot_probability_of_improvement,
        plot_q_statistics,
        plot_sample_efficiency,
        plot_seed_variance,
        plot_steps_to_threshold,
    )
    from analysis.report import draw_figures, format_summary, render_all
    from analysis.schema import SchemaError, check_file, check_folder
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

_MODULE_OF = {
    "AGGREGATE_KEYS": "analysis.aggregate",
    "AcrossEnvs": "analysis.aggregate",
    "aggregate_table": "analysis.aggregate",
    "performance_profiles": "analysis.aggregate",
    "sample_efficiency": "analysis.aggregate",
    "select_across_envs": "analysis.aggregate",
    "SCORES": "analysis.normalization",
    "ScoreRange": "analysis.normalization",
    "normalized": "analysis.normalization",
    "score_range": "analysis.normalization",
    "plot_aggregate_metrics": "analysis.plots",
    "plot_performance_profile": "analysis.plots",
    "plot_sample_efficiency": "analysis.plots",
    "draw_figures": "analysis.report",
    "DEFAULT_THRESHOLDS": "analysis.aggregate",
    "SUMMARY_KEYS": "analysis.aggregate",
    "aggregate_curves": "analysis.aggregate",
    "default_threshold": "analysis.aggregate",
    "improvement_matrix": "analysis.aggregate",
    "per_trial_scores": "analysis.aggregate",
    "summary_table": "analysis.aggregate",
    "align": "analysis.alignment",
    "align_episodes": "analysis.alignment",
    "align_evals": "analysis.alignment",
    "bin_episode_returns": "analysis.alignment",
    "carry_last": "analysis.alignment",
    "smooth_per_seed": "analysis.alignment",
    "Results": "analysis.load",
    "ResultsError": "analysis.load",
    "load_results": "analysis.load",
    "plot_final_performance": "analysis.plots",
    "plot_learning_curves": "analysis.plots",
    "plot_probability_of_improvement": "analysis.plots",
    "plot_q_statistics": "analysis.plots",
    "plot_seed_variance": "analysis.plots",
    "plot_steps_to_threshold": "analysis.plots",
    "format_summary": "analysis.report",
    "render_all": "analysis.report",
    "SchemaError": "analysis.schema",
    "check_file": "analysis.schema",
    "check_folder": "analysis.schema",
    "Interval": "analysis.stats",
    "area_under_curve": "analysis.stats",
    "bootstrap_ci": "analysis.stats",
    "censored_median": "analysis.stats",
    "iqm": "analysis.stats",
    "mean": "analysis.stats",
    "probability_of_improvement": "analysis.stats",
    "probability_of_improvement_ci": "analysis.stats",
    "resample_indices": "analysis.stats",
    "steps_to_threshold": "analysis.stats",
}
"""Where each name lives. Each is imported on first use (PEP 562), so that importing one light
module of the package, as the command line does to build its parsers (`analysis.options`),
does not first import pandas, scipy and matplotlib here."""


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


__all__ = [
    "AGGREGATE_KEYS",
    "DEFAULT_THRESHOLDS",
    "SCORES",
    "SUMMARY_KEYS",
    "AcrossEnvs",
    "Interval",
    "Results",
    "ResultsError",
    "SchemaError",
    "ScoreRange",
    "aggregate_curves",
    "aggregate_table",
    "align",
    "align_episodes",
    "align_evals",
    "area_under_curve",
    "bin_episode_returns",
    "bootstrap_ci",
    "carry_last",
    "censored_median",
    "check_file",
    "check_folder",
    "default_threshold",
    "draw_figures",
    "format_summary",
    "improvement_matrix",
    "iqm",
    "load_results",
    "mean",
    "normalized",
    "per_trial_scores",
    "performance_profiles",
    "plot_aggregate_metrics",
    "plot_final_performance",
    "plot_learning_curves",
    "plot_performance_profile",
    "plot_probability_of_improvement",
    "plot_q_statistics",
    "plot_sample_efficiency",
    "plot_seed_variance",
    "plot_steps_to_threshold",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "render_all",
    "resample_indices",
    "sample_efficiency",
    "score_range",
    "select_across_envs",
    "smooth_per_seed",
    "steps_to_threshold",
    "summary_table",
]
