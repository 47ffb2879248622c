"""Figures: every one renders to valid, non-blank files, and draws the data of its table (read
back from the Axes: lines, bands, error bars, dots, cells, and the order of labels)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import Collection, PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D

from analysis.aggregate import aggregate_curves, improvement_matrix, per_trial_scores, summary_table
from analysis.alignment import align, align_evals
from analysis.load import load_results
from analysis.plots import (
    AGGREGATE_PANELS,
    config_colors,
    display_labels,
    legend_title,
    new_axes,
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
from analysis.report import render_all
from analysis.stats import FloatArray
from analysis.synthetic import write_sweep

FIGURES = {
    "learning_curves",
    "final_performance",
    "seed_variance",
    "steps_to_threshold",
    "probability_of_improvement",
    "q_statistics",
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 configurations x 3 seeds, and one failed trial."""
    return write_sweep(tmp_path_factory.mktemp("plots"), n_seeds=3, n_failed=1)


@pytest.fixture(scope="module")
def rendered(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("out")
    return render_all(sweep, out, per_seed=True, n_resamples=500)


def _assert_real_png(path: Path) -> None:
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
    image = mpimg.imread(path)  # (height, width, channels) floats in [0, 1]
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400
    assert float(image[..., :3].std()) > 0.01, f"{path} is a single flat colour"


def test_every_figure_is_written_as_png_and_svg(rendered: list[Path]) -> None:
    assert {p.stem for p in rendered} == FIGURES
    assert {p.suffix for p in rendered} == {".png", ".svg"}
    for path in rendered:
        assert path.is_file()
        if path.suffix == ".png":
            _assert_real_png(path)
        else:
            root = ET.parse(path).getroot()
            assert root.tag.endswith("svg")
            assert len(list(root.iter())) > 100  # lines, text and patches, not an empty canvas
    # No temporary files are left behind by the atomic writes.
    assert not [p for p in rendered[0].parent.iterdir() if p.name.startswith(".")]


def test_rendering_again_gives_identical_files(
    sweep: Path, rendered: list[Path], tmp_path: Path
) -> None:
    again = render_all(sweep, tmp_path, per_seed=True, n_resamples=500)
    for first, second in zip(rendered, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_q_figure_is_skipped_when_not_logged(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "noq", with_q=False, configs=("hidden_sizes=64x64",))
    paths = render_all(folder, tmp_path / "out", formats=("png",), n_resamples=200)
    # One configuration: no pairwise comparison either.
    assert {p.stem for p in paths} == FIGURES - {"q_statistics", "probability_of_improvement"}


def test_several_sweeps_and_episode_metric_render(sweep: Path, tmp_path: Path) -> None:
    other = write_sweep(tmp_path, "other", configs=("hidden_sizes=256x256",), seed=5)
    paths = render_all(
        [sweep, other], tmp_path / "cmp", formats=("pdf",), metric="episode", smooth=5
    )
    assert {p.suffix for p in paths} == {".pdf"}
    assert all(p.read_bytes().startswith(b"%PDF") for p in paths)
    # PDFs too are the same bytes when made again (no creation date inside).
    again = render_all(
        [sweep, other], tmp_path / "again", formats=("pdf",), metric="episode", smooth=5
    )
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_one_seed_gets_no_band_and_says_so(tmp_path: Path) -> None:
    single = write_sweep(tmp_path, "single", n_seeds=1)
    aligned = align(load_results(single))
    curves = aggregate_curves(aligned, rng=np.random.default_rng(0), n_resamples=200)
    assert curves["mean_low"].isna().all() and curves["mean_high"].isna().all()
    ax = plot_learning_curves(curves)
    assert "no band: one seed has no interval" in ax.get_title()


def test_enough_seeds_get_no_warning_and_the_final_plot_names_its_interval(
    tmp_path: Path,
) -> None:
    results = load_results(write_sweep(tmp_path, "five", n_seeds=5, env_steps=3000))
    rng = np.random.default_rng(0)
    curves = aggregate_curves(align(results), rng=rng, n_resamples=200)
    title = plot_learning_curves(curves).get_title()
    assert title.endswith("band: 95% bootstrap CI over 5 seeds\n(expanded percentile)")
    summary = summary_table(results, rng=rng, n_resamples=200, confidence=0.9)
    title = plot_final_performance(summary).get_title()
    assert "bars: 90% bootstrap CI over 5 seeds\n(expanded percentile)" in title


def test_training_returns_without_episodes_leave_a_note(tmp_path: Path) -> None:
    results = load_results(write_sweep(tmp_path, "short", n_seeds=2, env_steps=3000))
    no_episodes = dataclasses.replace(results, episodes=results.episodes.iloc[:0])
    binned = align(no_episodes, metric="episode")  # every seed NaN in every bin
    curves = aggregate_curves(binned, rng=np.random.default_rng(0), n_resamples=200)
    assert not curves.empty and curves["mean"].isna().all()
    for frame in (curves, curves.iloc[:0]):
        note = plot_learning_curves(frame).texts[0].get_text()
        assert note.startswith("no training returns to plot")


def test_learning_curve_axes_say_what_they_show(sweep: Path) -> None:
    results = load_results(sweep)
    aligned = align(results)
    curves = aggregate_curves(aligned, rng=np.random.default_rng(0), n_resamples=200)
    ax = plot_learning_curves(curves, per_seed=aligned)
    assert "mean; band: 95% bootstrap CI over 3 seeds" in ax.get_title()
    # The method, and that with 3 seeds the band is their range.
    assert "(expanded percentile; < 5 seeds: their range, coverage < 95%)" in ax.get_title()
    assert ax.get_xlabel() == "environment steps"
    legend = ax.get_legend()
    assert legend is not None and legend.get_title().get_text() == "hidden_sizes"
    assert [t.get_text() for t in legend.get_texts()] == ["32x32", "64x64"]
    assert len(ax.lines) == 2 + 6  # two means and six seeds

    drawn_on = new_axes()
    assert plot_learning_curves(curves, estimator="iqm", ax=drawn_on) is drawn_on
    assert drawn_on.get_title().startswith("CartPole-v1: IQM")


def test_each_plot_function_returns_the_axes_it_drew_on(sweep: Path) -> None:
    results = load_results(sweep)
    rng = np.random.default_rng(0)
    curves = aggregate_curves(align(results), rng=rng, n_resamples=200)
    scores = per_trial_scores(results)
    summary = summary_table(results, rng=rng, n_resamples=200)
    matrix = improvement_matrix(scores, rng=rng, n_resamples=200)
    q = align_evals(results.evals, column="q_mean")
    calls: list[Callable[[Axes | None], Axes]] = [
        lambda ax: plot_final_performance(summary, scores=scores, ax=ax),
        lambda ax: plot_seed_variance(curves, ax=ax),
        lambda ax: plot_steps_to_threshold(scores, ax=ax),
        lambda ax: plot_probability_of_improvement(matrix, ax=ax),
        lambda ax: plot_q_statistics(q, ax=ax),
    ]
    for call in calls:
        ax = new_axes()
        assert call(ax) is ax
        assert isinstance(call(None), Axes)


def test_empty_inputs_leave_a_note_not_an_error() -> None:
    empty_matrix = pd.DataFrame(columns=["config_x", "config_y", "probability", "low", "high"])
    ax = plot_probability_of_improvement(empty_matrix)
    assert "at least two configurations" in ax.texts[0].get_text()
    q = pd.DataFrame({"config": ["c"], "env_id": ["e"], "x": [0.0], "value": [np.nan]})
    assert "not logged" in plot_q_statistics(q).texts[0].get_text()


def test_legend_names_what_varies() -> None:
    assert legend_title(["double=True,lr=0.001", "double=False,lr=0.01"]) == "double, lr"
    assert legend_title(["default"]) == "configuration"
    assert display_labels(["hidden_sizes=64x64"]) == {"hidden_sizes=64x64": "64x64"}
    both = ["double=True,lr=0.001"]
    assert display_labels(both) == {both[0]: both[0]}


# The data each figure draws, read back from its Axes. Hand-made tables whose every column holds
# different numbers (so a figure that draws the wrong column shows another line), and whose
# configurations are not in sorted order (so a figure that reorders them shows it).
FIRST, SECOND = "hidden_sizes=64x64", "hidden_sizes=32x32"
SHOWN = ["64x64", "32x32"]  # their legend and tick text, in the tables' order
ENV = "CartPole-v1"
X = np.array([0.0, 100.0, 200.0])


def _curves() -> pd.DataFrame:
    """An `aggregate_curves` table: two configurations, three grid points."""
    parts = []
    for k, config in enumerate((FIRST, SECOND)):
        base, s = 10.0 * (k + 1), X / 100.0
        columns = {
            "mean": base + s,
            "mean_low": base - 4.0 + s,
            "mean_high": base + 4.0 + s,
            "iqm": base + 0.5 + s,
            "iqm_low": base - 2.0 + s,
            "iqm_high": base + 3.0 + s,
            "std": 1.0 + k + s / 2.0,
        }
        parts.append(
            pd.DataFrame({"config": config, "env_id": ENV, "x": X, "n_seeds": 5, **columns})
        )
    return pd.concat(parts, ignore_index=True)


def _per_seed(offsets: tuple[float, ...] = (0.0, 5.0)) -> pd.DataFrame:
    """An aligned table (`analysis.alignment.align`): a seed per offset for each configuration."""
    parts = [
        pd.DataFrame(
            {
                "sweep": "s",
                "config": config,
                "env_id": ENV,
                "trial_id": f"{config}-{seed}",
                "seed": seed,
                "x": X,
                "value": 10.0 * (k + 1) + offset + X / 50.0,
            }
        )
        for k, config in enumerate((FIRST, SECOND))
        for seed, offset in enumerate(offsets)
    ]
    return pd.concat(parts, ignore_index=True)


def _seed_values(per_seed: pd.DataFrame, config: str) -> list[FloatArray]:
    mine = per_seed[per_seed["config"] == config]
    return [rows["value"].to_numpy() for _, rows in mine.groupby("seed", sort=True)]


def _ys(lines: list[Line2D]) -> list[FloatArray]:
    return [np.asarray(line.get_ydata(), dtype=np.float64) for line in lines]


def _assert_arrays_equal(got: list[FloatArray], expected: list[FloatArray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _xy(line: Line2D) -> tuple[FloatArray, FloatArray]:
    return np.asarray(line.get_xdata(), np.float64), np.asarray(line.get_ydata(), np.float64)


def _dots(ax: Axes) -> list[FloatArray]:
    """The (x, y) of each scatter that holds points (legend entries hold none), in order."""
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    offsets = [np.asarray(c.get_offsets(), np.float64) for c in scatters]
    return [points for points in offsets if points.size]


def _labelled(ax: Axes) -> list[Line2D]:
    """The lines that have a legend entry, in drawing order."""
    return [line for line in ax.lines if not str(line.get_label()).startswith("_")]


def _legend(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def _band(band: Collection, xs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bottom and top of a `fill_between` band at each x."""
    vertices = np.asarray(band.get_paths()[0].vertices, np.float64)  # (n, 2)
    at = [vertices[vertices[:, 0] == x, 1] for x in xs]
    return np.array([v.min() for v in at]), np.array([v.max() for v in at])


@pytest.mark.parametrize("estimator", ["mean", "iqm"])
def test_learning_curves_draw_each_configurations_estimate_band_and_seeds(estimator: str) -> None:
    curves, per_seed = _curves(), _per_seed()
    ax = plot_learning_curves(curves, estimator=estimator, per_seed=per_seed)
    colors = config_colors([FIRST, SECOND])
    expected: list[FloatArray] = []  # each configuration's seeds (thin), then its estimate
    for config in (FIRST, SECOND):
        expected += [
            *_seed_values(per_seed, config),
            curves.loc[curves["config"] == config, estimator].to_numpy(),
        ]
    _assert_arrays_equal(_ys(list(ax.lines)), expected)
    assert [line.get_label() for line in _labelled(ax)] == SHOWN == _legend(ax)
    assert len(ax.collections) == 2  # a band per configuration
    for line, band, config in zip(_labelled(ax), ax.collections, (FIRST, SECOND), strict=True):
        rows = curves[curves["config"] == config]
        np.testing.assert_array_equal(line.get_xdata(), rows["x"])
        assert mcolors.same_color(line.get_color(), colors[config])
        low, high = _band(band, rows["x"].to_numpy())
        np.testing.assert_array_equal(low, rows[f"{estimator}_low"])
        np.testing.assert_array_equal(high, rows[f"{estimator}_high"])


def test_seed_variance_draws_the_std_column_in_the_tables_order() -> None:
    curves = _curves()
    ax = plot_seed_variance(curves)
    assert [line.get_label() for line in ax.lines] == SHOWN == _legend(ax)
    for line, config in zip(ax.lines, (FIRST, SECOND), strict=True):
        rows = curves[curves["config"] == config]
        np.testing.assert_array_equal(line.get_xdata(), rows["x"])
        np.testing.assert_array_equal(line.get_ydata(), rows["std"])
    assert ax.get_ylim()[0] == 0.0


def test_final_performance_draws_each_estimate_with_its_interval() -> None:
    summary = pd.DataFrame(
        {
            "config": [FIRST, SECOND],
            "env_id": ENV,
            "n_seeds": [3, 3],
            "final_mean": [400.0, 150.0],
            "final_mean_ci": [(350.0, 450.0), (100.0, 210.0)],
            "final_iqm": [420.0, 140.0],
            "final_iqm_ci": [(380.0, 470.0), (120.0, 190.0)],
        }
    )
    finals = {FIRST: [380.0, 400.0, 420.0], SECOND: [100.0, 150.0, 200.0]}
    scores = pd.DataFrame(
        {
            "config": [FIRST] * 3 + [SECOND] * 3,
            "env_id": ENV,
            "final_return": finals[FIRST] + finals[SECOND],
        }
    )
    ax = plot_final_performance(summary, scores=scores)
    # Row i (first configuration on top): the mean just above it, the IQM just below.
    expected = [
        (400.0, -0.18, 350.0, 450.0),
        (420.0, 0.18, 380.0, 470.0),
        (150.0, 0.82, 100.0, 210.0),
        (140.0, 1.18, 120.0, 190.0),
    ]
    drawn = []
    for container in ax.containers:
        assert isinstance(container, ErrorbarContainer)
        point, _, bars = container.lines
        x, y = _xy(point)
        if x.size == 0:  # a legend entry
            continue
        ((start, end),) = bars[0].get_segments()
        assert start[1] == end[1] == y[0]
        drawn.append((x[0], y[0], start[0], end[0]))
    assert drawn == [pytest.approx(row) for row in expected]
    _assert_arrays_equal(
        _dots(ax),
        [np.column_stack([finals[c], np.full(3, float(i))]) for i, c in enumerate((FIRST, SECOND))],
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == SHOWN
    assert ax.get_ylim() == (1.5, -0.5)  # first configuration on top


def test_steps_to_threshold_draws_each_seed_and_the_censored_median() -> None:
    scores = pd.DataFrame(
        {
            "config": [FIRST] * 3 + [SECOND] * 3,
            "env_id": ENV,
            "steps_to_threshold": [1000.0, 3000.0, np.nan, 2000.0, np.nan, np.nan],
            "threshold": 475.0,
            "final_env_step": [5000.0, 5000.0, 6000.0, 5000.0, 7000.0, 8000.0],
        }
    )
    ax = plot_steps_to_threshold(scores)
    # Seeds spread over [i - 0.2, i + 0.2]: dots where reached, crosses at the run's end.
    drawn = _dots(ax)
    expected = [
        np.array([[1000.0, -0.2], [3000.0, 0.0]]),  # first configuration: reached
        np.array([[6000.0, 0.2]]),  # not reached
        np.array([[2000.0, 0.8]]),
        np.array([[7000.0, 1.0], [8000.0, 1.2]]),
    ]
    for got, want in zip(drawn, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)
    # The median counts a seed that never reached as infinitely late: 3000 for the first
    # configuration; none for the second, where two of three never reached.
    medians = [line for line in ax.lines if _xy(line)[0].size]
    assert len(medians) == 1
    x, y = _xy(medians[0])
    np.testing.assert_array_equal(x, [3000.0, 3000.0])
    np.testing.assert_allclose(y, [-0.35, 0.35])
    assert [t.get_text() for t in ax.get_yticklabels()] == SHOWN


def test_probability_of_improvement_puts_each_pair_in_its_cell() -> None:
    configs = ["lr=0.01", "lr=0.001", "lr=0.1"]  # not sorted
    p = {("lr=0.01", "lr=0.001"): 0.8, ("lr=0.01", "lr=0.1"): 0.7, ("lr=0.001", "lr=0.1"): 0.35}
    records = []
    for x in configs:
        for y in configs:
            if x != y:
                prob = p[(x, y)] if (x, y) in p else 1.0 - p[(y, x)]
                records.append((x, y, prob, prob - 0.1, prob + 0.05))
    matrix = pd.DataFrame.from_records(
        records, columns=["config_x", "config_y", "probability", "low", "high"]
    )
    ax = plot_probability_of_improvement(matrix)
    image = ax.images[0].get_array()
    assert image is not None
    values = np.ma.filled(image, np.nan)  # rows: X, columns: Y
    expected = np.full((3, 3), np.nan)
    texts = {tuple(t.get_position()): t.get_text() for t in ax.texts}
    for x, y, prob, low, high in records:
        i, j = configs.index(x), configs.index(y)
        expected[i, j] = prob
        assert texts[(j, i)] == f"{prob:.2f}\n[{low:.2f}, {high:.2f}]"
    np.testing.assert_allclose(values, expected)
    shown = ["0.01", "0.001", "0.1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == shown
    assert [t.get_text() for t in ax.get_yticklabels()] == shown


def test_q_statistics_draw_each_seed_and_their_mean() -> None:
    per_seed = _per_seed(offsets=(0.0, 1.0, 11.0))  # skewed: the mean is not the median
    ax = plot_q_statistics(per_seed)
    expected: list[FloatArray] = []
    for config in (FIRST, SECOND):
        seeds = _seed_values(per_seed, config)
        expected += [*seeds, np.mean(seeds, axis=0)]
    _assert_arrays_equal(_ys(list(ax.lines)), expected)
    for line in ax.lines:
        np.testing.assert_array_equal(line.get_xdata(), X)
    assert [line.get_label() for line in _labelled(ax)] == SHOWN == _legend(ax)


def test_the_aggregate_figures_note_an_empty_table_and_draw_on_the_axes_given() -> None:
    """Their data are read back in tests/test_analysis_across_envs.py; here, the edges."""
    profile = pd.DataFrame(columns=["config", "tau", "fraction", "low", "high"])
    curves = pd.DataFrame(columns=["config", "x", "iqm", "low", "high"])
    for draw, table in ((plot_performance_profile, profile), (plot_sample_efficiency, curves)):
        ax = new_axes()
        assert draw(table, ax=ax) is ax
        assert ax.texts[0].get_text() == "no configuration ran on every environment"
    axes = plot_aggregate_metrics(pd.DataFrame(columns=["config", "envs", "runs_per_env"]))
    assert len(axes) == len(AGGREGATE_PANELS)
    assert all(ax.texts[0].get_text().startswith("no configuration") for ax in axes)
    with pytest.raises(ValueError, match="need 4 Axes"):
        plot_aggregate_metrics(pd.DataFrame(), axes=[new_axes()])


def test_one_run_per_environment_draws_estimates_without_interval_bars() -> None:
    table = pd.DataFrame(
        {
            "config": [FIRST, SECOND],
            "envs": "a, b",
            "runs_per_env": 1,
            **{name: [0.25, 0.75] for name, _ in AGGREGATE_PANELS},
            **{f"{name}_ci": [[np.nan, np.nan]] * 2 for name, _ in AGGREGATE_PANELS},
        }
    )
    for ax in plot_aggregate_metrics(table):
        assert not ax.patches  # no interval to span
        ticks = [np.asarray(line.get_xdata(), np.float64)[0] for line in ax.lines]
        assert ticks == [0.25, 0.75]
    title = ax.get_figure().get_suptitle()  # type: ignore[union-attr]
    assert "over 2 environments, 1 run on each:\na, b\n" in title
