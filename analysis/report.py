"""Regenerate every figure and the summary text from results folders alone.

`render_all` is what `dqn-sweep plot` runs: load, align, aggregate, draw, write. Several
folders are drawn as one comparison (same axes, one legend). Files are written under a
temporary name and renamed, so a file that exists is whole; SVG and PDF carry no creation date
and a fixed hash salt, so re-rendering unchanged results gives identical files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.aggregate import (
    AcrossEnvs,
    aggregate_curves,
    aggregate_table,
    improvement_matrix,
    per_trial_scores,
    performance_profiles,
    sample_efficiency,
    select_across_envs,
    summary_table,
)
from analysis.alignment import align, align_evals
from analysis.load import Results, load_results
from analysis.normalization import ScoreRange, score_overrides
from analysis.options import (
    DEFAULT_RESAMPLES,
    FIGURE_FORMATS,
    SUMMARY_FORMATS,
    Metric,
    SummaryFormat,
    XAxis,
)
from analysis.plots import (
    FIGSIZE,
    STYLE,
    config_colors,
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
from analysis.schema import FolderLayout
from analysis.stats import DEFAULT_CONFIDENCE, FEW_SEEDS

DPI = 150

# Fixed metadata so that the same results give byte-identical files.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary sibling of `path`, then rename it onto `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    _atomic_write(path, write)
    return path


def save_figure(figure: Figure, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Save `figure` as ``out_dir/name.<format>`` for each format, atomically."""
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"

        def write(tmp: Path, fmt: str = fmt) -> None:
            figure.savefig(tmp, format=fmt, dpi=DPI, metadata=_METADATA.get(fmt, {}))

        _atomic_write(path, write)
        paths.append(path)
    return paths


def _panels(n_rows: int, n_cols: int) -> tuple[Figure, list[list[Axes]]]:
    """A figure with a grid of Axes in the house style."""
    import seaborn as sns  # imported when drawing only (see analysis.plots)

    with sns.axes_style(STYLE):
        figure = Figure(figsize=(FIGSIZE[0] * n_cols, FIGSIZE[1] * n_rows), layout="constrained")
        axes = figure.subplots(n_rows, n_cols, squeeze=False)
    return figure, [list(row) for row in axes]


def facet_shape(n_panels: int) -> tuple[int, int]:
    """(rows, columns) of a grid of `n_panels` per-environment panels.

    Up to three side by side; beyond, at most three columns (two for four panels, a square),
    so that a figure of many environments grows down rather than into one long row.
    """
    if n_panels <= 3:
        return 1, max(n_panels, 1)
    n_cols = 2 if n_panels == 4 else 3
    return math.ceil(n_panels / n_cols), n_cols


def _per_env(
    frame: pd.DataFrame, envs: Sequence[str], draw: Callable[[pd.DataFrame, Axes], Axes]
) -> Figure:
    """One panel per environment (return scales of tasks differ), laid out by `facet_shape`;
    each panel's title names its environment."""
    n_rows, n_cols = facet_shape(len(envs))
    figure, grid = _panels(n_rows, n_cols)
    axes = [ax for row in grid for ax in row]
    for env_id, ax in zip(envs, axes, strict=False):
        draw(frame[frame["env_id"] == env_id], ax)
        # A panel with data is titled "<env>: ..." by its plot; among several, one without (a
        # note in its middle) gets the env's name here. (One env's figure is left as it was.)
        if len(envs) > 1 and not ax.get_title().startswith(env_id):
            ax.set_title(env_id)
    for ax in axes[len(envs) :]:  # the grid's last row may have empty places
        ax.remove()
    return figure


def score_ranges_for(
    results: Results, given: Mapping[str, ScoreRange] | Sequence[tuple[str, ScoreRange]] = ()
) -> dict[str, ScoreRange]:
    """The score ranges that win over the shipped ones for `results`: each folder's
    ``spec.yaml`` (``per_env.<env>.scores``), and over those `given` (e.g. ``--scores``).

    Raises:
        ValueError: a spec gives a bad range, or two disagree (`score_overrides`).
    """
    pairs = list(given.items()) if isinstance(given, Mapping) else list(given)
    return score_overrides([FolderLayout(folder).spec_path for folder in results.dirs], pairs)


def across_envs(
    results: Results, score_ranges: Mapping[str, ScoreRange] | None = None
) -> AcrossEnvs | None:
    """What the aggregates across environments of `results` use (`select_across_envs`), with
    the folders' specs' ranges and, over them, `score_ranges`; None for one environment."""
    overrides = score_ranges_for(results, score_ranges or {})
    return select_across_envs(per_trial_scores(results), overrides)


def draw_figures(
    results: Results | str | Path | Sequence[str | Path],
    *,
    metric: Metric = "eval",
    x: XAxis = "env_step",
    smooth: int = 1,
    per_seed: bool = False,
    threshold: float | None = None,
    estimator: str = "mean",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    n_bins: int = 100,
    score_ranges: Mapping[str, ScoreRange] | None = None,
) -> dict[str, Figure]:
    """Every figure of `render_all`, by name, drawn but not saved (arguments as there).

    For reading back what a figure shows, or saving it elsewhere (`save_figure`).
    """
    if not isinstance(results, Results):
        results = load_results(results)
    rng = np.random.default_rng(seed)
    aligned = align(results, metric=metric, x=x, smooth=smooth, n_bins=n_bins)
    curves = aggregate_curves(aligned, rng=rng, n_resamples=n_resamples, confidence=confidence)
    scores = per_trial_scores(results, threshold=threshold)
    summary = summary_table(
        results, threshold=threshold, rng=rng, n_resamples=n_resamples, confidence=confidence
    )
    matrix = improvement_matrix(scores, rng=rng, n_resamples=n_resamples, confidence=confidence)
    across = select_across_envs(scores, score_ranges_for(results, score_ranges or {}))

    envs = [str(env) for env in pd.unique(results.trials["env_id"])]
    colors = config_colors([str(c) for c in pd.unique(results.trials["config"])])
    seeds = aligned if per_seed else None
    figures: dict[str, Figure] = {
        "learning_curves": _per_env(
            curves,
            envs,
            lambda frame, ax: plot_learning_curves(
                frame,
                estimator=estimator,
                per_seed=None if seeds is None else seeds[seeds["env_id"].isin(frame["env_id"])],
                colors=colors,
                ax=ax,
            ),
        ),
        "final_performance": _per_env(
            summary,
            envs,
            lambda frame, ax: plot_final_performance(frame, scores=scores, colors=colors, ax=ax),
        ),
        "seed_variance": _per_env(
            curves, envs, lambda frame, ax: plot_seed_variance(frame, colors=colors, ax=ax)
        ),
        "steps_to_threshold": _per_env(
            scores, envs, lambda frame, ax: plot_steps_to_threshold(frame, colors=colors, ax=ax)
        ),
    }
    if not matrix.empty:
        n = int(matrix["config_x"].nunique())
        figure, axes = _panels(1, 1)
        figure.set_size_inches(max(FIGSIZE[0], 1.6 * n + 3), max(FIGSIZE[1], 1.2 * n + 2))
        plot_probability_of_improvement(matrix, ax=axes[0][0], confidence=confidence)
        figures["probability_of_improvement"] = figure
    if across is not None and across.configs:
        table = aggregate_table(across, rng=rng, n_resamples=n_resamples, confidence=confidence)
        figure, axes = _panels(1, 4)
        figure.set_size_inches(12.8, max(2.8, 0.55 * len(table) + 1.8))
        plot_aggregate_metrics(table, colors=colors, axes=axes[0])
        figures["aggregate_metrics"] = figure
        figure, axes = _panels(1, 1)
        profile = performance_profiles(
            across, rng=rng, n_resamples=n_resamples, confidence=confidence
        )
        plot_performance_profile(profile, colors=colors, ax=axes[0][0])
        figures["performance_profile"] = figure
        figure, axes = _panels(1, 1)
        efficiency = sample_efficiency(
            results, across, rng=rng, n_resamples=n_resamples, confidence=confidence
        )
        plot_sample_efficiency(efficiency, colors=colors, ax=axes[0][0])
        figures["sample_efficiency"] = figure
    logged = [
        (column, label, log)
        for column, label, log in (
            ("q_mean", "mean Q-value of sampled batches", False),
            ("td_loss", "mean TD loss", True),
        )
        if np.isfinite(results.evals[column].to_numpy(dtype=np.float64)).any()
    ]
    if logged:
        figure, axes = _panels(len(envs), len(logged))
        for row, env_id in zip(axes, envs, strict=True):
            evals = results.evals[results.evals["env_id"] == env_id]
            for ax, (column, label, log) in zip(row, logged, strict=True):
                q = align_evals(evals, column=column)
                plot_q_statistics(q, ylabel=label, log_scale=log, colors=colors, ax=ax)
        figures["q_statistics"] = figure
    return figures


def render_all(
    results: Results | str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png", "svg"),
    metric: Metric = "eval",
    x: XAxis = "env_step",
    smooth: int = 1,
    per_seed: bool = False,
    threshold: float | None = None,
    estimator: str = "mean",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    n_bins: int = 100,
    score_ranges: Mapping[str, ScoreRange] | None = None,
) -> list[Path]:
    """Regenerate every figure of one sweep, or one comparison of several, from Parquet alone.

    Figures (``out_dir/<name>.<format>``): ``learning_curves`` (the main figure),
    ``final_performance``, ``seed_variance``, ``steps_to_threshold``,
    ``probability_of_improvement`` (with two or more configurations), then, with two or more
    environments that have a score range (`analysis.normalization`), the aggregates of the
    normalized scores across environments: ``aggregate_metrics`` (median, IQM, mean and
    optimality gap of the final returns with their intervals), ``performance_profile`` (the
    fraction of runs above each normalized score) and ``sample_efficiency`` (the IQM of the
    normalized evaluation return over env steps), and last ``q_statistics`` (where ``q_mean``
    or ``td_loss`` was logged). Environments get a panel each, side by side up to three, in a
    grid beyond (`facet_shape`).

    Args:
        results: one results folder or several (compared on the same axes), or their tables
            already loaded with `load_results`.
        out_dir: where the files go (created if needed, only after the input loaded).
        formats: any of ``png``, ``svg``, ``pdf``.
        metric: ``eval`` (greedy evaluation returns) or ``episode`` (training returns); the
            aggregates across environments always use evaluation returns.
        x: ``env_step``, ``episode`` or ``wall_s``.
        smooth: rolling-mean window per seed (1: none).
        per_seed: also draw each seed's curve as a thin line.
        threshold: return to reach; None takes each environment's default.
        estimator: ``mean`` or ``iqm`` for the learning curves.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap generator (the figures are reproducible).
        confidence: interval coverage.
        n_bins: bins for training returns on the env-step or wall-time axis.
        score_ranges: normalization ranges by env id; they win over each folder's
            ``spec.yaml`` (``per_env.<env>.scores``), which wins over the shipped `SCORES`.

    Returns:
        The paths written, in the order above.

    Raises:
        ResultsError: an input folder is unusable (nothing is written).
        ValueError: an unknown format, or a spec.yaml with a bad score range (nothing is
            written).
    """
    if not isinstance(results, Results):
        results = load_results(results)
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; choose from {FIGURE_FORMATS}")
    figures = draw_figures(
        results,
        metric=metric,
        x=x,
        smooth=smooth,
        per_seed=per_seed,
        threshold=threshold,
        estimator=estimator,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        n_bins=n_bins,
        score_ranges=score_ranges,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # A fixed SVG hash salt makes element ids, and so the files, reproducible.
    with mpl.rc_context({"svg.hashsalt": "dqn-sweeps", "savefig.facecolor": "white"}):
        for name, figure in figures.items():
            written += save_figure(figure, out, name, formats)
    return written


def _cell(value: Any) -> str:
    """A summary value as short text: integers plainly, returns to one decimal, NaN as n/a."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    """Plain JSON types: NaN becomes null, NumPy scalars become Python numbers."""
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    return value


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table; numeric columns right-aligned (no `tabulate` needed)."""
    header = [str(column) for column in table.columns]
    rows = [[_cell(v).replace("|", "\\|") for v in row] for row in table.itertuples(index=False)]
    numeric = [
        pd.api.types.is_numeric_dtype(table[column]) or table[column].map(_is_pair).all()
        for column in table.columns
    ]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    rules = [
        "-" * (w - 1) + ":" if num else "-" * w for w, num in zip(widths, numeric, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header), line(rules), *(line(r) for r in rows)]) + "\n"


def _summary_markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table, with how its intervals were made said once, below it,
    rather than in a column repeating it on every row."""
    if "ci_method" not in table.columns:
        return to_markdown(table)
    text = to_markdown(table.drop(columns="ci_method"))
    notes = [f"Intervals: {method}." for method in pd.unique(table["ci_method"])]
    few = table[(table["n_seeds"] > 1) & (table["n_seeds"] < FEW_SEEDS)]
    if not few.empty:
        notes.append(
            f"With under {FEW_SEEDS} seeds ({', '.join(map(str, pd.unique(few['config'])))}) an "
            "interval is the seeds' range, which holds the mean less often than stated."
        )
    return text + "\n" + "\n".join(notes) + "\n"


def _is_pair(value: Any) -> bool:
    """Whether a cell is an interval ``[low, high]``."""
    return isinstance(value, list | tuple) and len(value) == 2


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of `table` as JSON-ready objects (`_jsonable`)."""
    return [{str(k): _jsonable(v) for k, v in row.items()} for row in table.to_dict("records")]


def _csv(table: pd.DataFrame) -> str:
    """`table` as CSV, each ``[low, high]`` column split into ``<key>_low`` and ``<key>_high``."""
    flat = {}
    for column in table.columns:
        if len(table) and table[column].map(_is_pair).all():
            flat[f"{column}_low"] = [pair[0] for pair in table[column]]
            flat[f"{column}_high"] = [pair[1] for pair in table[column]]
        else:
            flat[str(column)] = table[column].tolist()
    buffer = io.StringIO()
    pd.DataFrame(flat).to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
    return buffer.getvalue()


def _score_ranges(aggregate: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The aggregate's score ranges (its ``attrs``): env id to random, reference and source."""
    ranges: dict[str, tuple[float, float, str]] = aggregate.attrs.get("ranges", {})
    return {
        env: {"random": random, "reference": reference, "source": source}
        for env, (random, reference, source) in ranges.items()
    }


def _aggregate_markdown(aggregate: pd.DataFrame) -> str:
    """The aggregate table in Markdown: a line saying what it is, the table, then how its
    intervals were made and which environments it aggregates, with their score ranges."""
    intro = (
        "Across environments: the normalized final return (0: random policy, 1: reference "
        "score) of each configuration's runs on every environment aggregated.\n"
    )
    text = to_markdown(aggregate.drop(columns=["envs", "ci_method"]))
    ranges = "; ".join(
        f"{env} from {r['random']:g} to {r['reference']:g} ({r['source']})"
        for env, r in _score_ranges(aggregate).items()
    )
    notes = [f"Intervals: {method}." for method in pd.unique(aggregate["ci_method"])]
    notes.append(f"Environments, normalized from the random score to the reference: {ranges}.")
    few = aggregate[aggregate["runs_per_env"] < FEW_SEEDS]
    if not few.empty:
        notes.append(
            f"With under {FEW_SEEDS} runs per environment ({', '.join(map(str, few['config']))})"
            " a percentile interval is too narrow: it holds the aggregate less often than stated."
        )
    return intro + "\n" + text + "\n" + "\n".join(notes) + "\n"


def format_summary(
    table: pd.DataFrame, fmt: SummaryFormat, aggregate: pd.DataFrame | None = None
) -> str:
    """The summary table, and the aggregate table across environments if given, as text.

    Args:
        table: from `summary_table`.
        fmt: ``json`` (a list of objects with the documented keys; intervals as
            ``[low, high]``; NaN as null), ``csv`` (each interval split into ``<key>_low`` and
            ``<key>_high`` columns, so every cell is a number or a label), or ``markdown``.
        aggregate: from `analysis.aggregate.aggregate_table`, or None (the summary alone,
            exactly as without it). Given, markdown and csv print it as a second block after
            a blank line, and json writes one object, ``{"configurations": [the list],
            "aggregate": [one object per configuration], "score_ranges": {env: {random,
            reference, source}}}``.
    """
    if fmt not in SUMMARY_FORMATS:
        raise ValueError(f"unknown summary format {fmt!r}; choose from {SUMMARY_FORMATS}")
    if fmt == "json":
        document: Any = _records(table)
        if aggregate is not None:
            document = {
                "configurations": document,
                "aggregate": _records(aggregate),
                "score_ranges": _jsonable_ranges(aggregate),
            }
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
        text = _csv(table)
        return text if aggregate is None else text + "\n" + _csv(aggregate)
    text = _summary_markdown(table)
    return text if aggregate is None else text + "\n" + _aggregate_markdown(aggregate)


def _jsonable_ranges(aggregate: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """`_score_ranges` with plain JSON numbers."""
    return {
        env: {key: _jsonable(value) for key, value in ends.items()}
        for env, ends in _score_ranges(aggregate).items()
    }
