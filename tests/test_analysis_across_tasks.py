"""Statistics across tasks: rliable's definitions, the stratified bootstrap, profiles, normalize.

rliable is the reference: its point estimates must match ours to float tolerance, and its
bootstrap intervals (drawn from NumPy's global state) must match ours in distribution. The tests
that need rliable skip when it is not installed; the others do not use it.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import scipy.stats

from analysis.across_tasks import (
    AggregateStatistic,
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    normalize,
    performance_profile,
    probability_of_improvement_across_tasks,
    probability_of_improvement_across_tasks_ci,
    sample_efficiency_curve,
    score_distribution,
    stratified_bootstrap_ci,
    stratified_indices,
    stratified_resample,
)
from analysis.stats import FloatArray, Interval


def _matrices() -> dict[str, FloatArray]:
    """Fixed score matrices (n_runs, n_tasks): continuous, tied, one run, one task."""
    rng = np.random.default_rng(12345)
    return {
        "5x4 uniform": rng.random((5, 4)),
        "10x3 normal": rng.normal(0.5, 1.0, size=(10, 3)),
        # Halves from 0 to 1.5: many ties within and across tasks, some above gamma = 1.
        "6x4 ties": rng.integers(0, 4, size=(6, 4)) / 2.0,
        "8x6 skewed": rng.gamma(0.8, 1.0, size=(8, 6)),
        "1x5 one run": rng.random((1, 5)),
        "7x1 one task": rng.normal(size=(7, 1)),
    }


MATRICES = _matrices()


def _pairs() -> dict[str, tuple[FloatArray, FloatArray]]:
    """(X, Y) score matrices on the same tasks, with different numbers of runs and ties."""
    rng = np.random.default_rng(54321)
    same = rng.random((5, 3))
    return {
        "5x4 vs 7x4": (rng.random((5, 4)), rng.random((7, 4)) + 0.2),
        "ties 6x3 vs 4x3": (
            rng.integers(0, 3, (6, 3)).astype(np.float64),
            rng.integers(0, 3, (4, 3)).astype(np.float64),
        ),
        "identical": (same, same.copy()),
        "separated": (rng.random((3, 2)) + 5.0, rng.random((4, 2))),
    }


PAIRS = _pairs()


@pytest.fixture(scope="module")
def metrics() -> ModuleType:
    module: ModuleType = pytest.importorskip("rliable.metrics")
    return module


@pytest.fixture
def rly(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """rliable's library, made to run on arch 8.

    rliable 1.2.0 requires arch < 8 and passes ``random_state=`` to arch's bootstrap, a keyword
    arch 8 removed (it is ``seed=`` now), so every rliable bootstrap raises TypeError there. The
    shim maps the one keyword to the other. It changes no draw: rliable's stratified bootstraps
    override ``update_indices`` to draw from ``np.random`` (global state) and never use arch's.
    """
    library: ModuleType = pytest.importorskip("rliable.library")
    arch_bootstrap = pytest.importorskip("arch.bootstrap")
    iid = arch_bootstrap.IIDBootstrap
    if "random_state" not in inspect.signature(iid.__init__).parameters:
        original = iid.__init__

        def init(
            self: Any, *args: Any, random_state: Any = None, seed: Any = None, **kw: Any
        ) -> None:
            original(self, *args, seed=random_state if seed is None else seed, **kw)

        monkeypatch.setattr(iid, "__init__", init)
    return library


# 1. Point estimates ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_aggregates_equal_rliables(name: str, metrics: ModuleType) -> None:
    scores = MATRICES[name]
    assert aggregate_mean(scores) == pytest.approx(metrics.aggregate_mean(scores), abs=1e-12)
    assert aggregate_median(scores) == pytest.approx(metrics.aggregate_median(scores), abs=1e-12)
    assert aggregate_iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores), abs=1e-12)
    for gamma in (1.0, 0.5):
        ours = aggregate_optimality_gap(scores, gamma)
        assert ours == pytest.approx(metrics.aggregate_optimality_gap(scores, gamma), abs=1e-12)


def test_median_is_over_task_means_and_iqm_over_pooled_scores() -> None:
    # Task means 1, 2 and 10: the median of task means is 2, while the median of the 6 pooled
    # scores would be (1 + 2) / 2 and the mean of medians something else again.
    scores = np.array([[0.0, 2.0, 0.0], [2.0, 2.0, 20.0]])
    assert aggregate_median(scores) == 2.0
    assert aggregate_mean(scores) == pytest.approx(13.0 / 3.0)
    # IQM of the 6 pooled scores [0, 0, 2, 2, 2, 20]: int(0.25 * 6) = 1 cut from each end.
    assert aggregate_iqm(scores) == pytest.approx(6.0 / 4.0)
    # Clipped at 1: [0, 1, 0, 1, 1, 1], mean 2/3.
    assert aggregate_optimality_gap(scores) == pytest.approx(1.0 / 3.0)


@pytest.mark.parametrize(
    "statistic", [aggregate_mean, aggregate_median, aggregate_iqm, aggregate_optimality_gap]
)
def test_leading_axes_are_batch_axes(statistic: AggregateStatistic) -> None:
    stack = np.stack([MATRICES["5x4 uniform"], MATRICES["6x4 ties"][:5]])  # (2, 5, 4)
    batched = statistic(stack)
    assert batched.shape == (2,)
    assert batched[0] == statistic(stack[0])
    assert batched[1] == statistic(stack[1])


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_probability_of_improvement_equals_rliables(name: str, metrics: ModuleType) -> None:
    x, y = PAIRS[name]
    ours = probability_of_improvement_across_tasks(x, y)
    assert ours == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert probability_of_improvement_across_tasks(y, x) == pytest.approx(1.0 - ours)


def test_probability_of_improvement_by_hand() -> None:
    # Task 0: X = [1, 3] vs Y = [2, 2]: pairs (1,2) (1,2) lose, (3,2) (3,2) win: 2/4.
    # Task 1: X = [5, 5] vs Y = [5, 4]: (5,5) ties twice (1/2 each), (5,4) wins twice: 3/4.
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 4.0]])
    assert probability_of_improvement_across_tasks(x, y) == pytest.approx((0.5 + 0.75) / 2)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement_across_tasks(x, y[:, :1])


# 2. Intervals against rliable's bootstrap ------------------------------------------------------

# rliable draws from NumPy's global state and we from a Generator, so the two bootstraps never
# share draws: compare their distributions through the interval endpoints. An endpoint is the
# p = 0.025 (or 0.975) quantile of B bootstrap values; its Monte-Carlo standard error is
# sqrt(p (1 - p) / B) / f(q_p), f the bootstrap density there. For a near-normal bootstrap
# distribution of spread s (95% width 2 * 1.96 * s), f(q_p) = phi(1.96) / s, so the standard
# error is 0.060 s = 0.015 widths for B = 2,000 (0.022 for 1,000). We take 20,000 resamples on
# our side (0.005 widths), so the difference of the two endpoints has a standard error of about
# 0.016 widths, and the tolerance is 4 of those: about 0.065 widths (0.25 s). Smaller than the
# change a 90% interval would make (0.08 widths); where the statistic takes values on a lattice
# (fractions of runs, of run pairs) one lattice step is added, since a quantile of a discrete
# distribution can move by a whole step.
OUR_RESAMPLES = 20_000
P_TAIL = 0.025


def _tolerance(width: float, reps: int, lattice_step: float = 0.0) -> float:
    """Four Monte-Carlo standard errors of the difference of two bootstrap endpoints."""
    z = scipy.stats.norm.ppf(1 - P_TAIL)
    se_per_spread = np.sqrt(P_TAIL * (1 - P_TAIL)) / scipy.stats.norm.pdf(z)  # times 1/sqrt(B)
    spread = width / (2 * z)
    se = spread * se_per_spread * np.sqrt(1 / reps + 1 / OUR_RESAMPLES)
    return float(4 * se + lattice_step)


def _assert_endpoints_agree(
    ours: Interval, rliable_ci: FloatArray, reps: int, lattice_step: float = 0.0
) -> None:
    low, high = np.atleast_1d(ours.low), np.atleast_1d(ours.high)
    ref = np.asarray(rliable_ci).reshape(2, -1)
    for k in range(ref.shape[1]):
        tol = _tolerance(float(ref[1, k] - ref[0, k]), reps, lattice_step)
        assert abs(low[k] - ref[0, k]) <= tol + 1e-12, (k, low[k], ref[0, k], tol)
        assert abs(high[k] - ref[1, k]) <= tol + 1e-12, (k, high[k], ref[1, k], tol)


def _interval_matrix() -> FloatArray:
    """(10, 5) normalized-looking scores: tasks of different levels and spreads."""
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(10, 5)) * np.array([0.1, 0.3, 0.5, 1.0, 0.2]) + np.arange(5) / 2
    return np.asarray(scores, dtype=np.float64)


@pytest.mark.parametrize(
    ("statistic", "name"),
    [
        (aggregate_mean, "aggregate_mean"),
        (aggregate_median, "aggregate_median"),
        (aggregate_iqm, "aggregate_iqm"),
        (aggregate_optimality_gap, "aggregate_optimality_gap"),
    ],
)
def test_intervals_agree_with_rliables_bootstrap(
    statistic: AggregateStatistic, name: str, rly: ModuleType, metrics: ModuleType
) -> None:
    scores = _interval_matrix()
    reps = 2000
    np.random.seed(2021)  # rliable's bootstrap draws from the global state
    reference = getattr(metrics, name)
    points, cis = rly.get_interval_estimates(
        {"a": scores}, lambda s: np.array([reference(s)]), reps=reps
    )
    ours = stratified_bootstrap_ci(
        {"a": scores}, statistic, rng=np.random.default_rng(2021), n_resamples=OUR_RESAMPLES
    )["a"]
    assert ours.estimate.shape == ()
    assert ours.estimate == pytest.approx(points["a"][0], abs=1e-12)
    assert ours.low <= ours.estimate <= ours.high
    _assert_endpoints_agree(ours, cis["a"], reps)


def test_probability_of_improvement_interval_agrees_with_rliables(
    rly: ModuleType, metrics: ModuleType
) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 3)) + np.array([0.0, 1.0, 2.0])
    y = rng.normal(size=(5, 3)) + np.array([0.5, 0.5, 2.0])
    reps = 1000  # rliable calls scipy's Mann-Whitney per task per resample: slow
    np.random.seed(11)
    points, cis = rly.get_interval_estimates(
        {"xy": [x, y]}, metrics.probability_of_improvement, reps=reps
    )
    ours = probability_of_improvement_across_tasks_ci(
        x, y, rng=np.random.default_rng(11), n_resamples=OUR_RESAMPLES
    )
    assert ours.estimate == pytest.approx(points["xy"], abs=1e-12)
    # Values are multiples of 1 / (2 * n_x * n_y * n_tasks): half a pair on one task.
    _assert_endpoints_agree(ours, cis["xy"], reps, lattice_step=1 / (2 * 6 * 5 * 3))


def test_sample_efficiency_curve_agrees_with_rliables(rly: ModuleType, metrics: ModuleType) -> None:
    rng = np.random.default_rng(3)
    n_points = 4
    # (n_runs, n_tasks, n_points): curves rising with the point, noisier on some tasks.
    scores = np.linspace(0.0, 1.0, n_points) + rng.normal(size=(8, 3, 1)) * np.array(
        [[0.1], [0.4], [0.2]]
    )
    reps = 2000

    def iqm_per_point(s: FloatArray) -> FloatArray:  # rliable's recipe for these curves
        return np.array([metrics.aggregate_iqm(s[..., j]) for j in range(s.shape[-1])])

    np.random.seed(3)
    points, cis = rly.get_interval_estimates({"a": scores}, iqm_per_point, reps=reps)
    ours = sample_efficiency_curve(scores, rng=np.random.default_rng(3), n_resamples=OUR_RESAMPLES)
    assert ours.estimate.shape == (n_points,)
    np.testing.assert_allclose(ours.estimate, points["a"], atol=1e-12)
    _assert_endpoints_agree(ours, cis["a"], reps)


# 3. Stratification -----------------------------------------------------------------------------


def test_bootstrap_resamples_runs_within_each_task() -> None:
    n_runs, n_tasks = 6, 4
    # Task t's run i scores 1000 t + i: a value tells its task and its run, and the scales of
    # the tasks are far apart, so a resample mixing tasks would show at once.
    scores = 1000.0 * np.arange(n_tasks) + np.arange(n_runs)[:, None]
    seen: list[FloatArray] = []

    def spy(s: FloatArray) -> FloatArray:
        seen.append(s.copy())
        return aggregate_mean(s)

    stratified_bootstrap_ci({"a": scores}, spy, rng=np.random.default_rng(0), n_resamples=500)
    np.testing.assert_array_equal(seen[0], scores)  # the point estimate sees the data
    resamples = np.concatenate(seen[1:])
    assert resamples.shape == (500, n_runs, n_tasks)
    task = resamples // 1000
    run = resamples % 1000
    # Every column holds only its own task's scores ...
    np.testing.assert_array_equal(task, np.broadcast_to(np.arange(n_tasks), task.shape))
    assert set(np.unique(run)) == set(range(n_runs))
    # ... drawn with replacement (repeats happen) ...
    assert any(len(np.unique(run[b, :, 0])) < n_runs for b in range(len(run)))
    # ... and independently across tasks: rows are not whole runs carried over all tasks.
    assert np.mean(run[:, :, 0] == run[:, :, 1]) == pytest.approx(1 / n_runs, abs=0.02)


def test_stratified_bootstrap_of_constant_tasks_has_no_spread() -> None:
    # Each task's runs agree, but tasks differ wildly. Resampling within tasks changes nothing,
    # so the interval is the point; a bootstrap pooling runs of all tasks would be very wide.
    scores = np.tile(np.array([0.0, 10.0, 100.0]), (5, 1))
    for statistic in (aggregate_mean, aggregate_median, aggregate_iqm):
        interval = stratified_bootstrap_ci(
            {"a": scores}, statistic, rng=np.random.default_rng(1), n_resamples=200
        )["a"]
        assert interval.low == interval.estimate == interval.high


def test_stratified_indices_and_resample() -> None:
    rng = np.random.default_rng(5)
    idx = stratified_indices(4, 3, 50, rng)
    assert idx.shape == (50, 4, 3)
    assert idx.min() >= 0
    assert idx.max() < 4
    scores = rng.random((4, 3, 2))  # a trailing axis travels with its run
    out = stratified_resample(scores, idx)
    assert out.shape == (50, 4, 3, 2)
    b, i, t = 17, 2, 1
    np.testing.assert_array_equal(out[b, i, t], scores[idx[b, i, t], t])


def test_one_run_has_no_interval() -> None:
    interval = stratified_bootstrap_ci(
        {"a": MATRICES["1x5 one run"]}, rng=np.random.default_rng(0), n_resamples=10
    )["a"]
    assert np.isfinite(interval.estimate)
    assert np.isnan(interval.low)
    assert np.isnan(interval.high)


def test_nan_propagates() -> None:
    scores = MATRICES["5x4 uniform"].copy()
    scores[2, 1] = np.nan
    for statistic in (aggregate_mean, aggregate_median, aggregate_iqm, aggregate_optimality_gap):
        assert np.isnan(statistic(scores))
    assert np.isnan(score_distribution(scores, [0.5])).all()


# 4. Performance profiles ------------------------------------------------------------------------


def test_performance_profile_by_hand_and_as_rliable(rly: ModuleType) -> None:
    scores = np.array([[0.0, 1.0], [0.5, 2.0], [0.25, 0.5]])
    thresholds = [0.0, 0.5, 1.0]
    # Scores strictly above tau, out of 6: tau 0: all but 0.0 (5); tau 0.5: 1.0 and 2.0 (2);
    # tau 1: 2.0 (1).
    by_hand = np.array([5 / 6, 2 / 6, 1 / 6])
    profile = performance_profile(scores, thresholds, rng=np.random.default_rng(0))
    np.testing.assert_allclose(profile.estimate, by_hand, atol=1e-12)
    np.testing.assert_allclose(score_distribution(scores, thresholds), by_hand, atol=1e-12)
    assert np.all(profile.low <= profile.estimate)
    assert np.all(profile.estimate <= profile.high)
    assert np.all((profile.low >= 0) & (profile.high <= 1))
    np.random.seed(0)
    points, _ = rly.create_performance_profile({"a": scores}, thresholds, reps=20)
    np.testing.assert_allclose(profile.estimate, points["a"], atol=1e-12)


def test_performance_profile_band_agrees_with_rliables(rly: ModuleType) -> None:
    scores = _interval_matrix()
    thresholds = np.linspace(0.0, 2.0, 5)
    reps = 2000
    np.random.seed(4)
    points, cis = rly.create_performance_profile({"a": scores}, thresholds, reps=reps)
    ours = performance_profile(
        scores, thresholds, rng=np.random.default_rng(4), n_resamples=OUR_RESAMPLES
    )
    np.testing.assert_allclose(ours.estimate, points["a"], atol=1e-12)
    _assert_endpoints_agree(ours, cis["a"], reps, lattice_step=1 / scores.size)


# 5. normalize ---------------------------------------------------------------------------------


def test_normalize_by_hand() -> None:
    scores = np.array([[0.0, 50.0], [100.0, 25.0]])
    out = normalize(scores, random=[0.0, 20.0], reference=[100.0, 30.0])
    np.testing.assert_allclose(out, [[0.0, 3.0], [1.0, 0.5]])
    # Negative returns (Acrobot: random -500, solved -100) map the same way.
    np.testing.assert_allclose(normalize([-500.0, -300.0, -100.0], -500.0, -100.0), [0, 0.5, 1])


def test_normalize_refuses_a_reference_equal_to_random() -> None:
    scores = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"task 1 \('Acrobot-v1'"):
        normalize(scores, [0.0, 7.0], [1.0, 7.0], task_names=["CartPole-v1", "Acrobot-v1"])
    with pytest.raises(ValueError, match="task 1"):
        normalize(scores, [0.0, 7.0], [1.0, 7.0])
    with pytest.raises(ValueError, match="one per task"):
        normalize(scores, [0.0, 1.0, 2.0], 1.0)


# 6. Reproducibility ---------------------------------------------------------------------------


def _all_intervals(seed: int) -> list[Interval]:
    scores = _interval_matrix()
    x, y = PAIRS["5x4 vs 7x4"]
    return [
        stratified_bootstrap_ci(
            {"a": scores, "b": scores[:6]},
            aggregate_iqm,
            rng=np.random.default_rng(seed),
            n_resamples=300,
        )["b"],
        performance_profile(scores, [0.5, 1.0], rng=np.random.default_rng(seed), n_resamples=300),
        sample_efficiency_curve(
            np.stack([scores, scores + 1], axis=-1),
            rng=np.random.default_rng(seed),
            n_resamples=300,
        ),
        probability_of_improvement_across_tasks_ci(
            x, y, rng=np.random.default_rng(seed), n_resamples=300
        ),
    ]


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    first, again, other = _all_intervals(1), _all_intervals(1), _all_intervals(2)
    for a, b, c in zip(first, again, other, strict=True):
        for field in ("estimate", "low", "high"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(a.estimate, c.estimate)
        assert not (np.array_equal(a.low, c.low) and np.array_equal(a.high, c.high))


def test_bootstrap_arguments_are_checked() -> None:
    scores = MATRICES["5x4 uniform"]
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci({"a": scores}, rng=np.random.default_rng(0), confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        performance_profile(scores, [0.5], rng=np.random.default_rng(0), n_resamples=0)
    with pytest.raises(ValueError, match="n_runs, n_tasks, n_points"):
        sample_efficiency_curve(scores, rng=np.random.default_rng(0))
