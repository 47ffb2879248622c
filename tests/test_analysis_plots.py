"""Figures: every one renders from a small synthetic sweep, to valid, non-blank files."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from analysis.aggregate import aggregate_curves, improvement_matrix, per_trial_scores, summary_table
from analysis.alignment import align, align_evals
from analysis.load import load_results
from analysis.plots import (
    display_labels,
    legend_title,
    new_axes,
    plot_final_performance,
    plot_learning_curves,
    plot_probability_of_improvement,
    plot_q_statistics,
    plot_seed_variance,
    plot_steps_to_threshold,
)
from analysis.report import render_all
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
