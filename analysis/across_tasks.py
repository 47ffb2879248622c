"""Statistics across tasks: normalized scores and rliable's aggregate metrics.

One study runs several seeds (runs) on several tasks (environments). Returns of different tasks
have different scales, so each task's scores are first normalized (`normalize`: 0 is a random
policy, 1 a reference score), and the aggregates then combine tasks. The definitions are those of
rliable (Agarwal et al., 2021, "Deep reinforcement learning at the edge of the statistical
precipice"), checked against it in the tests.

Layout: a score matrix is ``(n_runs, n_tasks)``, one row per run (seed) and one column per task,
as in rliable. The aggregates (`aggregate_mean`, `aggregate_median`, `aggregate_iqm`,
`aggregate_optimality_gap`, `score_distribution`) also accept leading batch axes,
``(..., n_runs, n_tasks)``, and reduce only the last two: the bootstrap passes all its resamples
at once that way.

Intervals come from the stratified bootstrap (`stratified_bootstrap_ci`): each task's column is
resampled with replacement from that task's own runs, independently of the other tasks, so every
resample has the study's design (the same tasks, the same number of runs on each) and scores of
different tasks never mix. The interval is the percentile interval, rliable's default (not the
expanded interval `analysis.stats.bootstrap_ci` uses for a single task: its widening is derived
for the mean of n seeds, which an aggregate over tasks is not). As in `analysis.stats`, the
interval is widened to hold the estimate in the rare case it does not, NaN propagates, and with a
single run there is no interval (NaN). Randomness comes only from the `np.random.Generator`
passed in, so the same generator seed gives the same interval (rliable draws from NumPy's global
state).

This module reads arrays only; rliable itself is not imported (the tests use it as a reference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from analysis.options import DEFAULT_RESAMPLES
from analysis.stats import DEFAULT_CONFIDENCE, FloatArray, IndexArray, Interval, iqm

AggregateStatistic = Callable[[FloatArray], FloatArray]
"""Maps scores ``(..., n_runs, n_tasks)`` to ``(..., *out)``: leading axes are batch axes (the
bootstrap's resamples) and ``out`` is ``()`` for a number or ``(k,)`` for k numbers, such as a
performance profile. `aggregate_iqm` and the other aggregates here are such statistics."""

# Bootstrap blocks are (resamples, runs, tasks, ...) float64 arrays: cap one at 2**23 elements
# (64 MiB) and loop over blocks of resamples beyond that.
_MAX_BLOCK_ELEMENTS = 2**23


def normalize(
    scores: npt.ArrayLike,
    random: npt.ArrayLike,
    reference: npt.ArrayLike,
    *,
    task_names: Sequence[str] | None = None,
) -> FloatArray:
    """Normalized scores: ``(score - random) / (reference - random)``, task by task.

    0 is the score of a random policy on that task and 1 the reference score (a human, the best
    known agent, the task's solved threshold), so scores of different tasks share one scale.

    Args:
        scores: ``(..., n_tasks)``, e.g. ``(n_runs, n_tasks)``; the last axis is the task.
        random: ``(n_tasks,)`` random-policy scores (or one number for all tasks).
        reference: ``(n_tasks,)`` reference scores (or one number for all tasks).
        task_names: optional ``(n_tasks,)`` names, used in error messages.

    Returns:
        The shape of `scores`.

    Raises:
        ValueError: if a task's reference score equals its random score (nothing to scale by),
            naming the task, or if the shapes do not match.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim < 1:
        raise ValueError("scores must have a task axis (the last one)")
    n_tasks = s.shape[-1]
    low = _per_task(random, n_tasks, "random")
    high = _per_task(reference, n_tasks, "reference")
    if task_names is not None and len(task_names) != n_tasks:
        raise ValueError(f"task_names must name {n_tasks} tasks, got {len(task_names)}")
    span = high - low
    flat = [int(task) for task in np.flatnonzero(span == 0.0)]
    if flat:
        names = ", ".join(
            f"task {t} ({task_names[t]!r}: {low[t]:g})"
            if task_names is not None
            else f"task {t} ({low[t]:g})"
            for t in flat
        )
        raise ValueError(
            f"the reference score equals the random score on {names}, "
            "so those scores cannot be normalized"
        )
    return np.asarray((s - low) / span, dtype=np.float64)


def _per_task(values: npt.ArrayLike, n_tasks: int, what: str) -> FloatArray:
    """`values` as an ``(n_tasks,)`` array: one number is repeated for every task."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0:
        return np.full(n_tasks, float(v))
    if v.shape != (n_tasks,):
        raise ValueError(f"{what} must have shape ({n_tasks},) (one per task), got {v.shape}")
    return v


def _score_matrix(scores: npt.ArrayLike) -> FloatArray:
    """`scores` as float64, checked to be ``(..., n_runs, n_tasks)`` with runs and tasks."""
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"scores must be (n_runs, n_tasks), got shape {a.shape}")
    if a.shape[-2] == 0 or a.shape[-1] == 0:
        raise ValueError(f"scores need at least one run and one task, got shape {a.shape}")
    return a


def aggregate_mean(scores: npt.ArrayLike) -> FloatArray:
    """Mean over tasks of each task's mean score over runs (rliable's ``aggregate_mean``).

    With the same number of runs on every task this is the mean of all scores. Dominated by the
    tasks with the largest normalized scores.

    Args:
        scores: ``(..., n_runs, n_tasks)``.

    Returns:
        ``(...)``: 0-d for one matrix.
    """
    a = _score_matrix(scores)
    return np.asarray(a.mean(axis=-2).mean(axis=-1), dtype=np.float64)


def aggregate_median(scores: npt.ArrayLike) -> FloatArray:
    """Median over tasks of each task's mean score over runs (rliable's ``aggregate_median``).

    Runs are averaged first, then the median is taken over the ``n_tasks`` task means (not over
    all run x task scores). With an even number of tasks it is the mean of the middle two.

    Args:
        scores: ``(..., n_runs, n_tasks)``.

    Returns:
        ``(...)``: 0-d for one matrix.
    """
    a = _score_matrix(scores)
    return np.asarray(np.median(a.mean(axis=-2), axis=-1), dtype=np.float64)


def aggregate_iqm(scores: npt.ArrayLike) -> FloatArray:
    """Interquartile mean of all run x task scores together (rliable's ``aggregate_iqm``).

    The scores of all runs on all tasks are pooled into one sample of ``n_runs * n_tasks``
    values and the middle 50% are averaged, exactly ``scipy.stats.trim_mean(scores, 0.25,
    axis=None)`` (`analysis.stats.iqm` on the pooled scores). Tasks are not averaged first.

    Args:
        scores: ``(..., n_runs, n_tasks)``.

    Returns:
        ``(...)``: 0-d for one matrix.
    """
    a = _score_matrix(scores)
    return iqm(a.reshape(*a.shape[:-2], -1), axis=-1)


def aggregate_optimality_gap(scores: npt.ArrayLike, gamma: float = 1.0) -> FloatArray:
    """How far the scores fall short of `gamma`: ``gamma - mean(min(score, gamma))``.

    rliable's ``aggregate_optimality_gap``: scores above `gamma` are clipped to it (exceeding
    the target earns nothing), then the mean is over all run x task scores. Lower is better;
    0 means every run reached `gamma` on every task.

    Args:
        scores: ``(..., n_runs, n_tasks)``.
        gamma: the target normalized score (1: the reference score).

    Returns:
        ``(...)``: 0-d for one matrix.
    """
    a = _score_matrix(scores)
    return np.asarray(gamma - np.minimum(a, gamma).mean(axis=(-2, -1)), dtype=np.float64)


def score_distribution(scores: npt.ArrayLike, thresholds: npt.ArrayLike) -> FloatArray:
    """Fraction of all run x task scores strictly above each threshold.

    The run-score distribution that rliable's ``create_performance_profile`` plots by default
    (``use_score_distribution=True``): for threshold tau, the share of the ``n_runs * n_tasks``
    scores with ``score > tau``. A matrix holding NaN gives NaN at every threshold (a missing
    score is neither above nor below; rliable would count it as below).

    Args:
        scores: ``(..., n_runs, n_tasks)``.
        thresholds: ``(n_thresholds,)``.

    Returns:
        ``(..., n_thresholds)``.
    """
    a = _score_matrix(scores)
    taus = np.asarray(thresholds, dtype=np.float64)
    if taus.ndim != 1:
        raise ValueError(f"thresholds must be one-dimensional, got shape {taus.shape}")
    pooled = a.reshape(*a.shape[:-2], -1)  # (..., n_runs * n_tasks)
    out = np.empty((*pooled.shape[:-1], taus.size))
    for k, tau in enumerate(taus):  # a loop over thresholds keeps memory at one block
        out[..., k] = (pooled > tau).mean(axis=-1)
    missing = np.isnan(pooled).any(axis=-1, keepdims=True)
    return np.asarray(np.where(missing, np.nan, out), dtype=np.float64)


def stratified_indices(
    n_runs: int, n_tasks: int, n_resamples: int, rng: np.random.Generator
) -> IndexArray:
    """Run indices for a bootstrap that resamples runs within each task.

    Entry ``[b, i, t]`` is the run of task ``t`` that fills row ``i`` of resample ``b``: every
    task's column is drawn with replacement from that task's own ``n_runs`` runs, independently
    of the other tasks (rliable's ``StratifiedBootstrap``). Use with `stratified_resample`.

    Args:
        n_runs: runs (seeds) per task.
        n_tasks: number of tasks.
        n_resamples: number of bootstrap resamples.
        rng: the only source of randomness.

    Returns:
        ``(n_resamples, n_runs, n_tasks)`` integers in ``[0, n_runs)``.
    """
    if n_runs < 1 or n_tasks < 1:
        raise ValueError(f"need at least one run and one task, got {n_runs} and {n_tasks}")
    return rng.integers(0, n_runs, size=(n_resamples, n_runs, n_tasks), dtype=np.intp)


def stratified_resample(scores: npt.ArrayLike, indices: npt.ArrayLike) -> FloatArray:
    """The resampled score matrices that `stratified_indices` describe.

    ``out[b, i, t, ...] = scores[indices[b, i, t], t, ...]``: column ``t`` of every resample only
    holds scores of task ``t``. Trailing axes (e.g. evaluation points of a learning curve) go
    along with their run.

    Args:
        scores: ``(n_runs, n_tasks, ...)``.
        indices: ``(n_resamples, n_runs, n_tasks)`` run indices.

    Returns:
        ``(n_resamples, n_runs, n_tasks, ...)``.
    """
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"scores must be (n_runs, n_tasks, ...), got shape {a.shape}")
    idx = np.asarray(indices, dtype=np.intp)
    if idx.ndim != 3 or idx.shape[2] != a.shape[1]:
        raise ValueError(
            f"indices must be (n_resamples, n_runs, {a.shape[1]}), got shape {idx.shape}"
        )
    return np.asarray(a[idx, np.arange(a.shape[1])], dtype=np.float64)


def _bootstrap_values(
    scores: FloatArray,
    statistic: Callable[[FloatArray], FloatArray],
    rng: np.random.Generator,
    n_resamples: int,
) -> FloatArray:
    """`statistic` of `n_resamples` stratified resamples of ``(n_runs, n_tasks, ...)`` scores.

    The statistic gets ``(block, n_runs, n_tasks, ...)`` resamples and returns ``(block, ...)``;
    the result stacks the blocks into ``(n_resamples, ...)``.
    """
    n_runs, n_tasks = scores.shape[:2]
    block = max(1, _MAX_BLOCK_ELEMENTS // scores.size)
    values = []
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = stratified_indices(n_runs, n_tasks, size, rng)
        values.append(np.asarray(statistic(stratified_resample(scores, idx)), dtype=np.float64))
    return np.concatenate(values, axis=0)


def _percentile_interval(
    estimate: FloatArray, boot: FloatArray, confidence: float, n_runs: int
) -> Interval:
    """Percentile interval of bootstrap values ``(n_resamples, *out)`` around `estimate`."""
    if n_runs < 2:  # every resample is the data: one run says nothing about the spread
        nan = np.full(estimate.shape, np.nan)
        return Interval(estimate, nan, nan.copy())
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    # fmin/fmax skip NaN; a NaN estimate comes with NaN bootstrap values, so NaN propagates.
    return Interval(
        estimate,
        np.asarray(np.fmin(low, estimate), dtype=np.float64),
        np.asarray(np.fmax(high, estimate), dtype=np.float64),
    )


def _check_bootstrap_arguments(n_resamples: int, confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def stratified_bootstrap_ci(
    score_matrices: Mapping[str, npt.ArrayLike],
    statistic: AggregateStatistic = aggregate_iqm,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Interval]:
    """Point estimate and stratified-bootstrap percentile interval of an aggregate, per study.

    rliable's ``get_interval_estimates`` (with its defaults: percentile method, runs resampled
    within tasks, tasks kept). For each matrix, `n_resamples` resamples are drawn, each task's
    column with replacement from its own runs (`stratified_indices`); `statistic` is computed on
    all resamples at once, and the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of those values (NumPy's linear interpolation, as
    rliable's). The matrices are bootstrapped one after another, in the mapping's order, from
    the one generator.

    Args:
        score_matrices: name (an algorithm, a configuration) to its ``(n_runs, n_tasks)`` scores,
            normally normalized (`normalize`); the number of runs may differ between names.
        statistic: an `AggregateStatistic`, e.g. `aggregate_iqm`, or
            ``lambda s: score_distribution(s, taus)`` for k numbers at once.
        rng: the only source of randomness; the same seed gives the same intervals.
        n_resamples: bootstrap resamples per matrix.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        For each name, an `Interval` whose arrays have the statistic's shape: 0-d for a number,
        ``(k,)`` for k numbers. With a single run, low and high are NaN.
    """
    _check_bootstrap_arguments(n_resamples, confidence)
    intervals: dict[str, Interval] = {}
    for name, matrix in score_matrices.items():
        a = _score_matrix(matrix)
        if a.ndim != 2:
            raise ValueError(f"{name}: scores must be (n_runs, n_tasks), got shape {a.shape}")
        estimate = np.asarray(statistic(a), dtype=np.float64)
        boot = _bootstrap_values(a, statistic, rng, n_resamples)
        intervals[name] = _percentile_interval(estimate, boot, confidence, a.shape[0])
    return intervals


def performance_profile(
    scores: npt.ArrayLike,
    thresholds: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Performance profile (run-score distribution) with a stratified-bootstrap band.

    rliable's ``create_performance_profile`` with its defaults: at each threshold tau, the
    fraction of all run x task scores above tau (`score_distribution`), and its percentile
    interval from resampling runs within tasks (`stratified_bootstrap_ci`).

    Args:
        scores: ``(n_runs, n_tasks)`` normalized scores.
        thresholds: ``(n_thresholds,)`` values of tau, e.g. ``np.linspace(0, 2, 81)``.
        rng: the only source of randomness.
        n_resamples: bootstrap resamples.
        confidence: coverage of the band, in (0, 1).

    Returns:
        Estimate, low and high, each ``(n_thresholds,)``.
    """
    taus = np.asarray(thresholds, dtype=np.float64)

    def profile(s: FloatArray) -> FloatArray:
        return score_distribution(s, taus)

    return stratified_bootstrap_ci(
        {"scores": scores}, profile, rng=rng, n_resamples=n_resamples, confidence=confidence
    )["scores"]


def sample_efficiency_curve(
    scores: npt.ArrayLike,
    statistic: AggregateStatistic = aggregate_iqm,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """An aggregate (by default the IQM) at each evaluation point, with a bootstrap band.

    rliable's sample-efficiency curve: at each point, the aggregate of the ``(n_runs, n_tasks)``
    scores there and its stratified-bootstrap percentile interval. One resample draws runs
    within tasks and keeps each drawn run's whole curve (a run is one training run), so the band
    is smooth along the curve; at each point on its own the bootstrap is the same as rliable's,
    which draws afresh at every point, so the intervals agree in distribution.

    Args:
        scores: ``(n_runs, n_tasks, n_points)`` normalized scores at each evaluation point.
        statistic: an `AggregateStatistic`, applied at each point.
        rng: the only source of randomness.
        n_resamples: bootstrap resamples.
        confidence: coverage of the band, in (0, 1).

    Returns:
        Estimate, low and high, each ``(n_points,)``.
    """
    _check_bootstrap_arguments(n_resamples, confidence)
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(f"scores must be (n_runs, n_tasks, n_points), got shape {a.shape}")

    def per_point(resamples: FloatArray) -> FloatArray:  # (block, runs, tasks, points)
        return statistic(np.moveaxis(resamples, -1, 1))  # on (block, points, runs, tasks)

    estimate = np.asarray(statistic(np.moveaxis(a, -1, 0)), dtype=np.float64)  # (n_points,)
    boot = _bootstrap_values(a, per_point, rng, n_resamples)  # (n_resamples, n_points)
    return _percentile_interval(estimate, boot, confidence, a.shape[0])


def _improvement_across_tasks(x: FloatArray, y: FloatArray) -> FloatArray:
    """P(X > Y) + P(X = Y) / 2 per task, averaged over tasks.

    Args:
        x: ``(..., n_x, n_tasks)``; y: ``(..., n_y, n_tasks)``.

    Returns:
        ``(...)``.
    """
    # sign is 1, 0 or -1 for >, = and <, so (mean sign + 1) / 2 counts ties as one half.
    sign = np.sign(x[..., :, None, :] - y[..., None, :, :])  # (..., n_x, n_y, n_tasks)
    per_task = (sign.mean(axis=(-3, -2)) + 1.0) / 2.0  # (..., n_tasks)
    return np.asarray(per_task.mean(axis=-1), dtype=np.float64)


def _paired_tasks(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    a = _score_matrix(x)
    b = _score_matrix(y)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"x and y must be (n_runs, n_tasks) on the same tasks, got {a.shape} and {b.shape}"
        )
    return a, b


def probability_of_improvement_across_tasks(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Average probability of improvement of X over Y (rliable's ``probability_of_improvement``).

    On each task, the probability that a random run of X scores higher than a random run of Y:
    the Mann-Whitney U statistic divided by ``n_x * n_y``, ties counting one half (identical
    samples give 0.5). Then the mean over tasks, so each task weighs the same. Only scores on
    the same task are compared, so they need not be normalized. NaN propagates.

    Args:
        x: ``(n_x, n_tasks)`` scores of X, one row per run.
        y: ``(n_y, n_tasks)`` scores of Y on the same tasks (same column order).
    """
    a, b = _paired_tasks(x, y)
    return float(_improvement_across_tasks(a, b))


def probability_of_improvement_across_tasks_ci(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """`probability_of_improvement_across_tasks` with a stratified-bootstrap percentile interval.

    X's and Y's runs are resampled independently (they are different runs), each within tasks,
    as rliable's ``StratifiedIndependentBootstrap``. Shapes as in
    `probability_of_improvement_across_tasks`; returns 0-d arrays. With a single run on
    either side, low and high are NaN.
    """
    _check_bootstrap_arguments(n_resamples, confidence)
    a, b = _paired_tasks(x, y)
    (n_x, n_tasks), n_y = a.shape, b.shape[0]
    estimate = np.asarray(_improvement_across_tasks(a, b))
    boot = np.empty(n_resamples)
    block = max(1, _MAX_BLOCK_ELEMENTS // (n_x * n_y * n_tasks))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        xs = stratified_resample(a, stratified_indices(n_x, n_tasks, size, rng))
        ys = stratified_resample(b, stratified_indices(n_y, n_tasks, size, rng))
        boot[start : start + size] = _improvement_across_tasks(xs, ys)
    return _percentile_interval(estimate, boot, confidence, min(n_x, n_y))
