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

Across environments (`select_across_envs`, then `aggregate_table`, `performance_profiles` and
`sample_efficiency`): each run's final return is normalized with its environment's score range
(`analysis.normalization`), and rliable's aggregates (`analysis.across_tasks`) combine the
environments, with intervals from the stratified bootstrap (runs resampled within each
environment, the plain percentile interval). The aggregate table's keys are `AGGREGATE_KEYS`.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.across_tasks import (
    AggregateStatistic,
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    performance_profile,
    sample_efficiency_curve,
    stratified_bootstrap_ci,
)
from analysis.alignment import GROUP, SEED, align, carry_last
from analysis.load import COMPLETE, Results
from analysis.normalization import (
    SCORES_FORM,
    SCORES_OPTION,
    ScoreRange,
    score_range,
)
from analysis.options import DEFAULT_RESAMPLES
from analysis.stats import (
    DEFAULT_CONFIDENCE,
    INTERVAL_METHOD,
    FloatArray,
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


# Across environments: normalized scores and rliable's aggregates (analysis.across_tasks).

AGGREGATE_KEYS = (
    "config",
    "envs",
    "n_envs",
    "runs_per_env",
    "mean",
    "mean_ci",
    "median",
    "median_ci",
    "iqm",
    "iqm_ci",
    "optimality_gap",
    "optimality_gap_ci",
    "ci_method",
)
"""Column order of the aggregate table (`aggregate_table`; documented in docs/analysis.md)."""

AGGREGATES: dict[str, AggregateStatistic] = {
    "mean": aggregate_mean,
    "median": aggregate_median,
    "iqm": aggregate_iqm,
    "optimality_gap": aggregate_optimality_gap,
}
"""The aggregates of the table, by column name (`analysis.across_tasks` defines each)."""

AGGREGATE_CI_METHOD = "stratified bootstrap over seeds within each environment, percentile"

HOW_TO_GIVE_SCORES = (
    f"give one with {SCORES_OPTION} {SCORES_FORM} or per_env.<env>.scores in the sweep spec"
)


@dataclass(frozen=True)
class AcrossEnvs:
    """Which runs the aggregates across environments use, and their normalized final scores.

    An aggregate needs a score matrix per configuration, ``(n_runs, n_envs)``: the same
    environments for every configuration, and the same number of runs on each environment
    (`analysis.across_tasks` resamples runs within each column). `select_across_envs` chooses
    the environments, configurations and runs that make such matrices, and says in `notes`
    what it left out and why.
    """

    envs: tuple[str, ...]
    """The environments aggregated (those with a score range), in order of first appearance."""
    ranges: dict[str, ScoreRange]
    """The score range each of `envs` is normalized with."""
    runs: pd.DataFrame
    """The `per_trial_scores` rows used, ordered by configuration, environment and seed, with
    a ``normalized`` column: the normalized final return."""
    notes: tuple[str, ...]
    """What was left out and why, one line each (empty when nothing was)."""

    @property
    def configs(self) -> list[str]:
        """The configurations aggregated, in order of first appearance."""
        return [str(config) for config in pd.unique(self.runs["config"])]

    @property
    def runs_per_env(self) -> dict[str, int]:
        """Per configuration, its number of runs on each environment."""
        counts = self.runs.groupby("config", sort=False).size() // max(len(self.envs), 1)
        return {str(config): int(n) for config, n in counts.items()}

    def matrices(self) -> dict[str, FloatArray]:
        """Per configuration, its ``(runs_per_env, n_envs)`` normalized final scores; column
        ``j`` is ``envs[j]``, row ``i`` its ``i``-th seed there (seeds in increasing order)."""
        out: dict[str, FloatArray] = {}
        for config in self.configs:
            mine = self.runs[self.runs["config"] == config]
            columns = [
                mine.loc[mine["env_id"] == env_id, "normalized"].to_numpy(dtype=np.float64)
                for env_id in self.envs
            ]
            out[config] = np.stack(columns, axis=1)
        return out


def select_across_envs(
    scores: pd.DataFrame, overrides: Mapping[str, ScoreRange] | None = None
) -> AcrossEnvs | None:
    """The runs to aggregate across environments, or None when the scores hold one env only.

    - Environments: those with a score range (`analysis.normalization.score_range`: an
      override, else the shipped one). The others are left out, with a note saying how to give
      a range. Fewer than two with a range: nothing is aggregated (a note says why).
    - Configurations: those with a complete run on every aggregated environment; the others
      are left out, with a note naming what each lacks.
    - Runs: the stratified bootstrap resamples a configuration's runs within each environment
      from a matrix, so it needs as many runs on each. Where a configuration has more seeds on
      one environment than on another, its lowest-numbered seeds up to the smallest count are
      kept on each (never chosen by score), and a note names the seeds left out.

    Args:
        scores: per-trial scores (`per_trial_scores`); ``final_return`` is what is normalized.
        overrides: score ranges by env id that win over the shipped `SCORES`.

    Returns:
        An `AcrossEnvs` (whose ``runs`` is empty when nothing can be aggregated), or None.
    """
    all_envs = [str(env) for env in pd.unique(scores["env_id"])]
    if len(all_envs) < 2:
        return None
    ranges: dict[str, ScoreRange] = {}
    for env_id in all_envs:
        with contextlib.suppress(KeyError):  # no range: left out, and noted below
            ranges[env_id] = score_range(env_id, overrides)
    envs = tuple(env for env in all_envs if env in ranges)
    notes: list[str] = []
    missing = [env for env in all_envs if env not in ranges]
    if missing:
        notes.append(
            f"no score range for {', '.join(missing)}, so the aggregates across environments "
            f"leave {'it' if len(missing) == 1 else 'them'} out; {HOW_TO_GIVE_SCORES}"
        )
    empty = scores.iloc[:0].assign(normalized=np.empty(0))
    if len(envs) < 2:
        notes.append(
            "no aggregate across environments: it needs two or more environments with a score "
            f"range, and {_count(len(envs), 'has', 'have')} one"
        )
        return AcrossEnvs(envs, ranges, empty, tuple(notes))

    kept: list[pd.DataFrame] = []
    for config in pd.unique(scores["config"]):
        mine = scores[(scores["config"] == config) & scores["env_id"].isin(envs)]
        per_env = {env: mine[mine["env_id"] == env] for env in envs}
        lacking = [env for env, rows in per_env.items() if rows.empty]
        if lacking:
            notes.append(
                f"{config} is left out of the aggregates across environments: it has no "
                f"complete run on {', '.join(lacking)}"
            )
            continue
        fewest = min(len(rows) for rows in per_env.values())
        dropped: list[str] = []
        for env, rows in per_env.items():
            rows = rows.sort_values(["seed", "sweep", "trial_id"], kind="stable")
            if len(rows) > fewest:
                extra = ", ".join(str(seed) for seed in rows["seed"].iloc[fewest:])
                dropped.append(f"seed(s) {extra} on {env}")
            kept.append(rows.iloc[:fewest])
        if dropped:
            notes.append(
                f"{config}: the aggregates across environments use {fewest} run(s) on each "
                "environment (the stratified bootstrap needs as many on each), its "
                f"lowest-numbered seeds; left out: {'; '.join(dropped)}"
            )
    if not kept:
        return AcrossEnvs(envs, ranges, empty, tuple(notes))
    runs = pd.concat(kept, ignore_index=True)
    spans = [ranges[str(env)] for env in runs["env_id"]]
    low = np.array([span.random for span in spans], dtype=np.float64)
    high = np.array([span.reference for span in spans], dtype=np.float64)
    runs["normalized"] = (runs["final_return"].to_numpy(dtype=np.float64) - low) / (high - low)
    return AcrossEnvs(envs, {env: ranges[env] for env in envs}, runs, tuple(notes))


def _count(n: int, singular: str, plural: str) -> str:
    """``none has``, ``1 has`` or ``3 have``."""
    if n == 0:
        return f"none {singular}"
    return f"{n} {singular if n == 1 else plural}"


def aggregate_table(
    across: AcrossEnvs,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Mean, median, IQM and optimality gap of the normalized final returns, per configuration.

    Each over the configuration's ``(runs_per_env, n_envs)`` score matrix
    (`AcrossEnvs.matrices`), as rliable defines them (`analysis.across_tasks`), with a
    stratified-bootstrap percentile interval (`stratified_bootstrap_ci`: runs resampled within
    each environment). Each configuration and aggregate draws from its own generator
    (`entry_rng`), so its interval does not depend on the other configurations.

    Returns:
        One row per configuration, columns `AGGREGATE_KEYS` (``*_ci`` cells are ``[low, high]``
        lists; ``envs`` names the environments, comma-separated). ``attrs`` holds the
        confidence, the number of resamples and the score ranges (``ranges``: env id to
        ``(random, reference, source)``).
    """
    method = f"{confidence:.0%} {AGGREGATE_CI_METHOD}"
    runs_per_env = across.runs_per_env
    records: list[dict[str, Any]] = []
    for config, matrix in across.matrices().items():
        record: dict[str, Any] = {
            "config": config,
            "envs": ", ".join(across.envs),
            "n_envs": len(across.envs),
            "runs_per_env": runs_per_env[config],
        }
        for name, statistic in AGGREGATES.items():
            interval = stratified_bootstrap_ci(
                {config: matrix},
                statistic,
                rng=entry_rng(rng, "aggregate", name, config),
                n_resamples=n_resamples,
                confidence=confidence,
            )[config]
            record[name] = float(interval.estimate)
            record[f"{name}_ci"] = [float(interval.low), float(interval.high)]
        record["ci_method"] = method
        records.append(record)
    table = pd.DataFrame.from_records(records, columns=list(AGGREGATE_KEYS))
    table.attrs.update(
        confidence=confidence,
        n_resamples=n_resamples,
        ranges={env: (r.random, r.reference, r.source) for env, r in across.ranges.items()},
    )
    return table


def performance_profiles(
    across: AcrossEnvs,
    *,
    rng: np.random.Generator,
    n_thresholds: int = 101,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Per configuration, the fraction of its runs whose normalized final return exceeds tau.

    rliable's performance profile (`analysis.across_tasks.performance_profile`): the fraction
    of all run x environment scores above each tau, with a stratified-bootstrap band. Every
    configuration gets the same taus: `n_thresholds` evenly spaced from the lower of 0 and the
    lowest score to the higher of 1 and the highest score (random to reference, at least).

    Returns:
        Columns ``config, tau, fraction, low, high``, one row per configuration and tau.
    """
    values = across.runs["normalized"].to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    taus = np.linspace(low, high, n_thresholds)
    parts: list[pd.DataFrame] = []
    for config, matrix in across.matrices().items():
        profile = performance_profile(
            matrix,
            taus,
            rng=entry_rng(rng, "profile", config),
            n_resamples=n_resamples,
            confidence=confidence,
        )
        parts.append(
            pd.DataFrame(
                {
                    "config": config,
                    "tau": taus,
                    "fraction": profile.estimate,
                    "low": profile.low,
                    "high": profile.high,
                }
            )
        )
    return _across_table(parts, ["config", "tau", "fraction", "low", "high"], across, confidence)


def normalized_eval_curves(
    results: Results, across: AcrossEnvs
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per configuration, the normalized evaluation returns of its aggregated runs on one grid.

    Each run's evaluation curve (`analysis.alignment.align`: evaluation returns on the env-step
    axis) is read, as alignment reads it, as its last evaluation at or before each point of a
    grid common to the configuration's environments: every evaluation step of any of its runs,
    from the latest first one to the earliest last one. So no run is extrapolated past the end
    of its training, and environments trained for different budgets stop at the shortest.

    Returns:
        Per configuration, ``(grid, scores)``: ``grid`` is ``(n_points,)`` env steps and
        ``scores`` is ``(runs_per_env, n_envs, n_points)``, its run ``[i, j]`` being entry
        ``[i, j]`` of the configuration's `AcrossEnvs.matrices`.
    """
    aligned = align(results, metric="eval", x="env_step")
    curves = {(str(key[0]), str(key[1])): rows for key, rows in aligned.groupby(SEED, sort=False)}
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    for config in across.configs:
        mine = across.runs[across.runs["config"] == config]
        runs = {
            env: [
                curves[(str(sweep), str(trial))]
                for sweep, trial in zip(rows["sweep"], rows["trial_id"], strict=True)
            ]
            for env, rows in mine.groupby("env_id", sort=False)
        }
        every = [run for env in across.envs for run in runs[env]]
        xs = np.unique(np.concatenate([run["x"].to_numpy(dtype=np.float64) for run in every]))
        start = max(float(run["x"].min()) for run in every)
        end = min(float(run["x"].max()) for run in every)
        grid = xs[(xs >= start) & (xs <= end)]
        columns = []
        for env in across.envs:
            span = across.ranges[env]
            raw = np.stack(
                [
                    carry_last(
                        run["x"].to_numpy(np.float64), run["value"].to_numpy(np.float64), grid
                    )
                    for run in runs[env]
                ]
            )  # (runs_per_env, n_points)
            columns.append((raw - span.random) / (span.reference - span.random))
        out[config] = (grid, np.stack(columns, axis=1))
    return out


def sample_efficiency(
    results: Results,
    across: AcrossEnvs,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Per configuration, the IQM of the normalized evaluation return over env steps.

    rliable's sample-efficiency curve (`analysis.across_tasks.sample_efficiency_curve`): at
    each point of the configuration's grid (`normalized_eval_curves`), the IQM of all
    run x environment normalized scores, with a stratified-bootstrap band that resamples whole
    runs within each environment.

    Returns:
        Columns ``config, x, iqm, low, high``, one row per configuration and grid point.
    """
    parts: list[pd.DataFrame] = []
    for config, (grid, scores) in normalized_eval_curves(results, across).items():
        curve = sample_efficiency_curve(
            scores,
            aggregate_iqm,
            rng=entry_rng(rng, "sample_efficiency", config),
            n_resamples=n_resamples,
            confidence=confidence,
        )
        parts.append(
            pd.DataFrame(
                {
                    "config": config,
                    "x": grid,
                    "iqm": curve.estimate,
                    "low": curve.low,
                    "high": curve.high,
                }
            )
        )
    return _across_table(parts, ["config", "x", "iqm", "low", "high"], across, confidence)


def _across_table(
    parts: list[pd.DataFrame], columns: list[str], across: AcrossEnvs, confidence: float
) -> pd.DataFrame:
    """The configurations' `parts` as one table (empty with `columns` if none), carrying in
    ``attrs`` what its captions say: the confidence, the environments and the runs on each."""
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    out.attrs.update(confidence=confidence, envs=list(across.envs), runs=across.runs_per_env)
    return out
