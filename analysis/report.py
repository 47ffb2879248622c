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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.aggregate import (
    aggregate_curves,
    improvement_matrix,
    per_trial_scores,
    summary_table,
)
from analysis.alignment import align, align_evals
from analysis.load import Results, load_results
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
    plot_final_performance,
    plot_learning_curves,
    plot_probability_of_improvement,
    plot_q_statistics,
    plot_seed_variance,
    plot_steps_to_threshold,
)
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


def _per_env(
    frame: pd.DataFrame, envs: Sequence[str], draw: Callable[[pd.DataFrame, Axes], Axes]
) -> Figure:
    """One panel per environment, side by side (return scales of tasks differ)."""
    figure, axes = _panels(1, len(envs))
    for env_id, ax in zip(envs, axes[0], strict=True):
        draw(frame[frame["env_id"] == env_id], ax)
    return figure


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
) -> list[Path]:
    """Regenerate every figure of one sweep, or one comparison of several, from Parquet alone.

    Figures (``out_dir/<name>.<format>``): ``learning_curves`` (the main figure),
    ``final_performance``, ``seed_variance``, ``steps_to_threshold``,
    ``probability_of_improvement`` (with two or more configurations) and ``q_statistics``
    (where ``q_mean`` or ``td_loss`` was logged). Environments get side-by-side panels.

    Args:
        results: one results folder or several (compared on the same axes), or their tables
            already loaded with `load_results`.
        out_dir: where the files go (created if needed, only after the input loaded).
        formats: any of ``png``, ``svg``, ``pdf``.
        metric: ``eval`` (greedy evaluation returns) or ``episode`` (training returns).
        x: ``env_step``, ``episode`` or ``wall_s``.
        smooth: rolling-mean window per seed (1: none).
        per_seed: also draw each seed's curve as a thin line.
        threshold: return to reach; None takes each environment's default.
        estimator: ``mean`` or ``iqm`` for the learning curves.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap generator (the figures are reproducible).
        confidence: interval coverage.
        n_bins: bins for training returns on the env-step or wall-time axis.

    Returns:
        The paths written, in the order above.

    Raises:
        ResultsError: an input folder is unusable (nothing is written).
    """
    if not isinstance(results, Results):
        results = load_results(results)
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; choose from {FIGURE_FORMATS}")
    rng = np.random.default_rng(seed)
    aligned = align(results, metric=metric, x=x, smooth=smooth, n_bins=n_bins)
    curves = aggregate_curves(aligned, rng=rng, n_resamples=n_resamples, confidence=confidence)
    scores = per_trial_scores(results, threshold=threshold)
    summary = summary_table(
        results, threshold=threshold, rng=rng, n_resamples=n_resamples, confidence=confidence
    )
    matrix = improvement_matrix(scores, rng=rng, n_resamples=n_resamples, confidence=confidence)

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
            f"With under {FEW_SEEDS} seeds ({', '.join(map(str, few['config']))}) an interval "
            "is the seeds' range, which holds the mean less often than stated."
        )
    return text + "\n" + "\n".join(notes) + "\n"


def _is_pair(value: Any) -> bool:
    """Whether a cell is an interval ``[low, high]``."""
    return isinstance(value, list | tuple) and len(value) == 2


def format_summary(table: pd.DataFrame, fmt: SummaryFormat) -> str:
    """The summary table as text.

    Args:
        table: from `summary_table`.
        fmt: ``json`` (a list of objects with the documented keys; intervals as
            ``[low, high]``; NaN as null), ``csv`` (each interval split into ``<key>_low`` and
            ``<key>_high`` columns, so every cell is a number or a label), or ``markdown``.
    """
    if fmt == "json":
        records = [
            {str(k): _jsonable(v) for k, v in row.items()} for row in table.to_dict("records")
        ]
        return json.dumps(records, indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
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
    if fmt == "markdown":
        return _summary_markdown(table)
    raise ValueError(f"unknown summary format {fmt!r}; choose from {SUMMARY_FORMATS}")
