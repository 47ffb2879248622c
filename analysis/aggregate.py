"""Aggregates over seeds: curves with bands, per-trial scores and the summary table.

Every interval is a bootstrap over seeds (`analysis.stats.bootstrap_ci`: the expanded percentile
interval, NaN for a single seed) drawn from the generator passed in, so results are reproducible.

Summary table (`summary_table`; `dqn-sweep summary --format json` writes it as a list of
objects). One row per configuration and environment; these keys are a contract (add, never
rename):

===========================  ==============================================================
``config``                   label of what varies (``hidden_sizes=64x64``; ``<sweep>/`` is
                             prefixed when two loaded sweeps share a label on one env)
``env_id``                   environment id
``sweep``                    results folder(s) the row comes from
``n_seeds``                  complete trials (seeds) behind every statistic below
``n_failed``                 failed trials, left out of every statistic
``final_mean``               mean over seeds of the final return: a trial's final return is
                             the ``eval_return_mean`` of its last evaluation
``final_mean_ci``            ``[low, high]``: 95% bootstrap interval of ``final_mean``
``final_iqm``                interquartile mean (25% trimmed mean) of the final returns
``final_iqm_ci``             ``[low, high]``: 95% bootstrap interval of ``final_iqm``
``auc``                      mean over seeds of the area under the evaluation curve divided by
                             the env steps it spans, i.e. the mean evaluation return over
                             training (a return; higher means learning sooner and better)
``threshold``                return to reach: the argument, or the env's default
                             (`DEFAULT_THRESHOLDS`); null when unknown
``steps_to_threshold_median``  median over seeds of the first evaluation env step with
                             ``eval_return_mean >= threshold``; a seed that never reaches it
                             counts as infinitely late (censored at its budget), so this is
                             null unless more than half the seeds reach it
``n_reached_threshold``      seeds that reached the threshold
``wall_s``                   mean over complete trials of the wall-clock seconds of the
                             task that trained each (seeds trained together share one)
``env_steps_per_s``          mean over complete trials of ``env_steps / wall_s``
``ci_method``                how the intervals were made (``95% bootstrap over seeds,
                             expanded percentile``: see `analysis.stats.bootstrap_ci`; with
                             fewer than `analysis.stats.FEW_SEEDS` seeds an interval is the
                             seeds' range, which holds the mean less often than stated)
===========================  ==============================================================

Unknown values (no complete seed, no threshold, an older folder without timings) are NaN in
the DataFrame and null in JSON.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from analysis.alignment import GROUP, SEED
from analysis.load import COMPLETE, Results
from analysis.options import DEFAULT_RESAMPLES
from analysis.stats import (
    DEFAULT_CONFIDENCE,
    INTERVAL_METHOD,
    area_under_curve,
    bootstrap_ci,
    censored_median,
    iqm,
    mean,
    probability_of_improvement_ci,
    steps_to_threshold,
)

DEFAULT_THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "LunarLander-v3": 200.0,
}
"""Gymnasium's ``reward_threshold`` of the classic tasks, copied so gymnasium is not needed."""

SUMMARY_KEYS = (
    "config",
    "env_id",
    "sweep",
    "n_seeds",
    "n_failed",
    "final_mean",
    "final_mean_ci",
    "final_iqm",
    "final_iqm_ci",
    "auc",
    "threshold",
    "steps_to_threshold_median",
    "n_reached_threshold",
    "wall_s",
    "env_steps_per_s",
    "ci_method",
)
"""Column order of the summary table (see the module docstring)."""

CURVE_COLUMNS = (
    "config",
    "env_id",
    "x",
    "n_seeds",
    "mean",
    "mean_low",
    "mean_high",
    "iqm",
    "iqm_low",
    "iqm_high",
    "std",
)

SCORE_COLUMNS = (
    "sweep",
    "config",
    "env_id",
    "trial_id",
    "seed",
    "final_return",
    "final_env_step",
    "auc",
    "threshold",
    "steps_to_threshold",
)


def default_threshold(env_id: str) -> float:
    """The return that counts as solving `env_id`, or NaN when this table does not know it."""
    return DEFAULT_THRESHOLDS.get(env_id, math.nan)


def entry_rng(rng: np.random.Generator, *names: str) -> np.random.Generator:
    """The generator for one entry of a table (a use and a configuration, say), derived from
    `rng`'s seed and `names` without drawing from `rng`.

    So one seed gives an entry the same interval in every figure and table, whichever others
    were computed before it or whatever other configurations the sweep holds. A generator not
    made from a seed sequence is used as it is.
    """
    seed_seq = rng.bit_generator.seed_seq
    if not isinstance(seed_seq, np.random.SeedSequence):
        return rng
    key = zlib.crc32("\x00".join(names).encode("utf-8"))
    child = np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, key))
    return np.random.default_rng(child)


def aggregate_curves(
    aligned: pd.DataFrame,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Per configuration and grid point: mean and IQM over seeds with bootstrap intervals.

    Args:
        aligned: per-seed curves from `analysis.alignment.align` (every seed of a configuration on
            one grid).
        rng: source of the bootstrap's randomness.
        n_resamples: bootstrap resamples.
        confidence: interval coverage.

    Returns:
        One row per configuration, environment and grid point with columns `CURVE_COLUMNS`:
        ``mean``/``iqm`` with ``_low``/``_high`` interval ends, and ``std``, the across-seed
        standard deviation (ddof=1; a measure of stability). A point where a seed is NaN (before
        its first episode, say) is NaN. ``attrs`` keeps the aligned table's and adds the
        confidence and the number of resamples.
    """
    rows: list[pd.DataFrame] = []
    for (config, env_id), group in aligned.groupby(GROUP, sort=False):
        wide = group.pivot(index=SEED, columns="x", values="value")
        values = wide.to_numpy(dtype=np.float64)  # (n_seeds, n_points)
        mine = entry_rng(rng, "curve", str(config), str(env_id))
        m = bootstrap_ci(values, mean, rng=mine, n_resamples=n_resamples, confidence=confidence)
        q = bootstrap_ci(values, iqm, rng=mine, n_resamples=n_resamples, confidence=confidence)
        n_seeds = values.shape[0]
        std = values.std(axis=0, ddof=1) if n_seeds > 1 else np.full(values.shape[1], np.nan)
        part = pd.DataFrame(
            {
                "x": wide.columns.to_numpy(dtype=np.float64),
                "n_seeds": n_seeds,
                "mean": m.estimate,
                "mean_low": m.low,
                "mean_high": m.high,
                "iqm": q.estimate,
                "iqm_low": q.low,
                "iqm_high": q.high,
                "std": std,
            }
        )
        part.insert(0, "env_id", str(env_id))
        part.insert(0, "config", str(config))
        rows.append(part)
    if rows:
        out = pd.concat(rows, ignore_index=True)
    else:
        out = pd.DataFrame({column: [] for column in CURVE_COLUMNS})
    out.attrs.update(aligned.attrs)
    out.attrs.update(confidence=confidence, n_resamples=n_resamples)
    return out


def per_trial_scores(results: Results, *, threshold: float | None = None) -> pd.DataFrame:
    """One row per complete trial: final return, normalised AUC and steps to the threshold.

    Computed on each trial's own evaluations, so no alignment is involved.

    Args:
        results: from `load_results`.
        threshold: return to reach; None takes each environment's `default_threshold`.

    Returns:
        Columns `SCORE_COLUMNS`; ``final_env_step`` is the step of the last evaluation.
    """
    records: list[dict[str, Any]] = []
    for _, rows in results.evals.groupby(SEED, sort=False):
        steps = rows["env_step"].to_numpy(dtype=np.float64)
        values = rows["eval_return_mean"].to_numpy(dtype=np.float64)
        first = rows.iloc[0]
        env_id = str(first["env_id"])
        thr = default_threshold(env_id) if threshold is None else float(threshold)
        records.append(
            {
                "sweep": first["sweep"],
                "config": first["config"],
                "env_id": env_id,
                "trial_id": first["trial_id"],
                "seed": int(first["seed"]),
                "final_return": float(values[-1]),
                "final_env_step": float(steps[-1]),
                "auc": float(area_under_curve(steps, values)),
                "threshold": thr,
                "steps_to_threshold": float(steps_to_threshold(steps, values, thr)),
            }
        )
    if not records:
        return pd.DataFrame({column: [] for column in SCORE_COLUMNS})
    return pd.DataFrame.from_records(records, columns=list(SCORE_COLUMNS))


def _mean_or_nan(values: pd.Series) -> float:
    """Mean of the finite values, NaN when there are none (timings of older folders)."""
    finite = values.to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def summary_table(
    results: Results,
    *,
    threshold: float | None = None,
    rng: np.random.Generator | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """The summary table: one row per configuration and environment (keys in module docstring).

    Args:
        results: from `load_results`; failed trials are counted in ``n_failed`` only.
        threshold: return to reach; None takes each environment's `default_threshold`.
        rng: bootstrap generator; None means ``np.random.default_rng(0)`` so that the table is
            reproducible by default.
        n_resamples: bootstrap resamples.
        confidence: interval coverage.

    Returns:
        Columns `SUMMARY_KEYS`; the ``*_ci`` cells are ``[low, high]`` lists.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    scores = per_trial_scores(results, threshold=threshold)
    records: list[dict[str, Any]] = []
    for (config, env_id), trials in results.trials.groupby(GROUP, sort=False):
        mine = scores[(scores["config"] == config) & (scores["env_id"] == env_id)]
        finals = mine["final_return"].to_numpy(dtype=np.float64)  # (n_seeds,)
        complete = trials[trials["status"] == COMPLETE]
        if finals.size:
            entry = entry_rng(rng, "final", str(config), str(env_id))
            m = bootstrap_ci(
                finals, mean, rng=entry, n_resamples=n_resamples, confidence=confidence
            )
            q = bootstrap_ci(finals, iqm, rng=entry, n_resamples=n_resamples, confidence=confidence)
            final_mean, final_mean_ci = float(m.estimate), [float(m.low), float(m.high)]
            final_iqm, final_iqm_ci = float(q.estimate), [float(q.low), float(q.high)]
        else:
            final_mean, final_mean_ci = math.nan, [math.nan, math.nan]
            final_iqm, final_iqm_ci = math.nan, [math.nan, math.nan]
        steps = mine["steps_to_threshold"].to_numpy(dtype=np.float64)
        thr = default_threshold(str(env_id)) if threshold is None else float(threshold)
        records.append(
            {
                "config": config,
                "env_id": env_id,
                "sweep": ", ".join(pd.unique(trials["sweep"]).astype(str)),
                "n_seeds": int(finals.size),
                "n_failed": int(len(trials) - len(complete)),
                "final_mean": final_mean,
                "final_mean_ci": final_mean_ci,
                "final_iqm": final_iqm,
                "final_iqm_ci": final_iqm_ci,
                # NaN propagates (a seed with a NaN evaluation), as in final_mean.
                "auc": float(mine["auc"].mean(skipna=False)) if finals.size else math.nan,
                "threshold": thr,
                "steps_to_threshold_median": censored_median(steps),
                "n_reached_threshold": int(np.isfinite(steps).sum()),
                "wall_s": _mean_or_nan(complete["wall_s"]),
                "env_steps_per_s": _mean_or_nan(complete["env_steps_per_s"]),
                "ci_method": f"{confidence:.0%} bootstrap over seeds, {INTERVAL_METHOD}",
            }
        )
    table = pd.DataFrame.from_records(records, columns=list(SUMMARY_KEYS))
    table.attrs.update(confidence=confidence, n_resamples=n_resamples)
    return table


def improvement_matrix(
    scores: pd.DataFrame,
    *,
    rng: np.random.Generator,
    column: str = "final_return",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Probability of improvement P(X > Y) for every ordered pair of configurations.

    A configuration run on several environments is compared within each environment both have
    and the probabilities averaged, resampling seeds within environments (stratified, as
    rliable does), so return scales of different tasks never mix.

    Args:
        scores: per-trial scores from `per_trial_scores`.
        rng: bootstrap generator.
        column: the per-trial score to compare.
        n_resamples: bootstrap resamples.
        confidence: interval coverage.

    Returns:
        One row per ordered pair: ``config_x, config_y, probability, low, high``; the
        probability that a seed of ``config_x`` scores higher than one of ``config_y``.
    """
    configs = list(pd.unique(scores["config"]))
    records: list[dict[str, Any]] = []
    for i, cx in enumerate(configs):
        for cy in configs[i + 1 :]:
            x = scores[scores["config"] == cx]
            y = scores[scores["config"] == cy]
            if not set(x["env_id"]) & set(y["env_id"]):
                continue
            p = probability_of_improvement_ci(
                x[column].to_numpy(dtype=np.float64),
                y[column].to_numpy(dtype=np.float64),
                rng=entry_rng(rng, "improvement", str(cx), str(cy), column),
                n_resamples=n_resamples,
                confidence=confidence,
                strata_x=x["env_id"].to_numpy(dtype=str),
                strata_y=y["env_id"].to_numpy(dtype=str),
            )
            est, low, high = float(p.estimate), float(p.low), float(p.high)
            records.append(
                {"config_x": cx, "config_y": cy, "probability": est, "low": low, "high": high}
            )
            # Ties count one half, so P(Y > X) = 1 - P(X > Y) exactly, resample by resample.
            records.append(
                {
                    "config_x": cy,
                    "config_y": cx,
                    "probability": 1 - est,
                    "low": 1 - high,
                    "high": 1 - low,
                }
            )
    columns = ["config_x", "config_y", "probability", "low", "high"]
    return pd.DataFrame.from_records(records, columns=columns)
