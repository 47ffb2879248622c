"""Figures: pure functions from a tidy table to a Matplotlib Axes.

Each function takes a tidy DataFrame (from `analysis.alignment` or `analysis.aggregate`) and an
optional ``ax``; it draws on ``ax`` (or on a new figure, without pyplot's global state) and
returns the Axes. Which files, formats and layouts to write is the caller's business
(`analysis.report`). Colours come from seaborn's colour-blind palette in the order
configurations first appear, so a configuration keeps its colour across the figures of a sweep.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis.alignment import SEED
from analysis.stats import DEFAULT_CONFIDENCE, FEW_SEEDS, INTERVAL_METHOD, censored_median

Color = tuple[float, float, float]

# seaborn is imported inside the functions that draw: it pulls in scipy.stats (about a second),
# and every `dqn-sweep` command imports this package to register `plot` and `summary`.

PALETTE = "colorblind"
PALETTE_ORDER = (0, 1, 2, 4, 5, 9, 3, 6, 7, 8)
"""Blue, orange, green, purple, brown, light blue, then vermillion, pink, grey, yellow."""
STYLE = "whitegrid"
FIGSIZE = (7.0, 4.5)
BAND_ALPHA = 0.2
SEED_ALPHA = 0.35

ESTIMATOR_NAMES = {"mean": "mean", "iqm": "IQM"}


def config_colors(configs: Sequence[str]) -> dict[str, Color]:
    """A colour per configuration from the colour-blind palette, in the order given.

    The palette's ten colours are taken in `PALETTE_ORDER`, which keeps its orange and its
    vermillion (hard to tell apart under a translucent band) out of the first five; past ten
    configurations the colours repeat."""
    import seaborn as sns

    palette = sns.color_palette(PALETTE, n_colors=10)
    ordered = [tuple(palette[i]) for i in PALETTE_ORDER]
    return {config: ordered[i % len(ordered)] for i, config in enumerate(configs)}


def _varying_keys(configs: Sequence[str]) -> list[str] | None:
    """Keys of labels such as ``double=True,lr=0.001``; None if a label is not of that form."""
    keys: list[str] = []
    for config in configs:
        label = config.rsplit("/", 1)[-1]  # drop a "<sweep>/" prefix
        for part in label.split(","):
            key, sep, _ = part.partition("=")
            if not sep:
                return None
            if key not in keys:
                keys.append(key)
    return keys or None


def legend_title(configs: Sequence[str]) -> str:
    """Name what varies: ``double, lr`` for labels such as ``double=True,lr=0.001``."""
    keys = _varying_keys(configs)
    return ", ".join(keys) if keys else "configuration"


def display_labels(configs: Sequence[str]) -> dict[str, str]:
    """Legend text per configuration: just the value where one key varies (``64x64``).

    The key itself then titles the legend, so ``hidden_sizes=64x64`` need not repeat it.
    """
    keys = _varying_keys(configs)
    if keys is None or len(keys) != 1:
        return {config: config for config in configs}
    prefix = f"{keys[0]}="
    return {config: config.replace(prefix, "", 1) for config in configs}


def new_axes(figsize: tuple[float, float] = FIGSIZE) -> Axes:
    """Axes on a new figure in the house style (seaborn whitegrid), without pyplot."""
    import seaborn as sns

    with sns.axes_style(STYLE):
        figure = Figure(figsize=figsize, layout="constrained")
        return figure.add_subplot()


def _note(ax: Axes, text: str) -> Axes:
    """Write why a panel is empty in its middle, rather than leaving it blank."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _series_label(
    config: object, env_id: object, names: Mapping[str, str], several_envs: bool
) -> str:
    """Legend or tick text of one configuration's series, naming the env where there are several."""
    name = names.get(str(config), str(config))
    return f"{name} [{env_id}]" if several_envs else name


def _configs(frame: pd.DataFrame, column: str = "config") -> list[str]:
    """Configurations in order of first appearance."""
    return [str(c) for c in pd.unique(frame[column])]


def _seed_count(counts: Sequence[int]) -> str:
    """``10`` or ``8-10``: the number of seeds behind a figure."""
    low, high = min(counts), max(counts)
    return f"{high}" if low == high else f"{low}\N{EN DASH}{high}"


def _interval_caption(counts: Sequence[int], confidence: float, what: str) -> str:
    """``band: 95% bootstrap CI over 10 seeds`` for `what` = ``band``, then a second line in
    parentheses naming the method and, when a configuration has 2 to `FEW_SEEDS` - 1 seeds,
    what such intervals are worth. One seed: no interval."""
    if max(counts) == 1:
        return f"no {what}: one seed has no interval"
    caption = f"{what}: {confidence:.0%} bootstrap CI over {_seed_count(counts)} seeds"
    if 1 < min(counts) < FEW_SEEDS:
        return (
            f"{caption}\n({INTERVAL_METHOD}; < {FEW_SEEDS} seeds: their range, "
            f"coverage < {confidence:.0%})"
        )
    return f"{caption}\n({INTERVAL_METHOD})"


def _env_prefix(frame: pd.DataFrame) -> str:
    """``CartPole-v1: `` when the table holds one environment, else nothing."""
    envs = [str(env) for env in pd.unique(frame["env_id"])] if "env_id" in frame.columns else []
    return f"{envs[0]}: " if len(envs) == 1 else ""


def plot_learning_curves(
    curves: pd.DataFrame,
    *,
    estimator: str = "mean",
    per_seed: pd.DataFrame | None = None,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """Learning curves: one line per configuration with its bootstrap band over seeds.

    Args:
        curves: from `aggregate_curves` (``config, env_id, x, n_seeds, mean, mean_low, ...``).
        estimator: ``mean`` or ``iqm``; the line and band drawn.
        per_seed: optional aligned per-seed table (`analysis.alignment.align`) drawn as thin lines.
        colors: colour per configuration; defaults to `config_colors`.
        ax: Axes to draw on; a new figure's when None.
        title, xlabel, ylabel: override the defaults, which state the estimator, interval,
            number of seeds and units (from ``curves.attrs`` when present).
    """
    if estimator not in ESTIMATOR_NAMES:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATOR_NAMES)}, got {estimator!r}")
    ax = new_axes() if ax is None else ax
    if curves.empty or curves[estimator].isna().all():
        if curves.attrs.get("metric") == "episode":
            # Training returns of every seed, cut to the shortest: one seed without a finished
            # episode leaves its configuration nothing.
            return _note(
                ax,
                "no training returns to plot: no complete trial, or in every\n"
                "configuration a seed that finished no episode",
            )
        return _note(ax, "no complete trials to plot")
    configs = _configs(curves)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    several_envs = curves["env_id"].nunique() > 1
    for (config, env_id), group in curves.groupby(["config", "env_id"], sort=False):
        color = colors[str(config)]
        if per_seed is not None:
            mine = per_seed[(per_seed["config"] == config) & (per_seed["env_id"] == env_id)]
            for _, seed_rows in mine.groupby(SEED, sort=False):
                ax.plot(seed_rows["x"], seed_rows["value"], color=color, lw=0.7, alpha=SEED_ALPHA)
        low, high = group[f"{estimator}_low"], group[f"{estimator}_high"]
        ax.fill_between(group["x"], low, high, color=color, alpha=BAND_ALPHA, lw=0)
        label = _series_label(config, env_id, names, several_envs)
        ax.plot(group["x"], group[estimator], color=color, lw=2.0, label=label)

    confidence = float(curves.attrs.get("confidence", DEFAULT_CONFIDENCE))
    counts = curves.groupby("config", sort=False)["n_seeds"].max().tolist()
    if title is None:
        band = _interval_caption(counts, confidence, "band")
        title = f"{_env_prefix(curves)}{ESTIMATOR_NAMES[estimator]}; {band}"
        if per_seed is not None:
            title += "\n(thin lines: individual seeds)"
    ax.set_title(title)
    ax.set_xlabel(xlabel or str(curves.attrs.get("xlabel", "environment steps")))
    ax.set_ylabel(ylabel or str(curves.attrs.get("ylabel", "return")))
    ax.legend(title=legend_title(configs), fontsize="small")
    return ax


def plot_final_performance(
    summary: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Final return per configuration: mean and IQM as points with interval error bars.

    Args:
        summary: from `summary_table` (``final_mean``, ``final_mean_ci``, ``final_iqm``, ...).
        scores: optional per-trial scores (`per_trial_scores`), drawn as one dot per seed.
        colors, ax, title: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    rows = summary[summary["n_seeds"] > 0]
    if rows.empty:
        return _note(ax, "no complete trials to plot")
    several_envs = rows["env_id"].nunique() > 1
    colors = config_colors(_configs(rows)) if colors is None else colors
    names = display_labels(_configs(rows))
    labels: list[str] = []
    for i, row in enumerate(rows.itertuples(index=False)):
        color = colors[str(row.config)]
        labels.append(_series_label(row.config, row.env_id, names, several_envs))
        if scores is not None:
            mine = scores[(scores["config"] == row.config) & (scores["env_id"] == row.env_id)]
            finals = mine["final_return"].to_numpy(dtype=np.float64)
            ax.scatter(finals, np.full(finals.size, i), color=color, alpha=0.45, s=14, lw=0)
        for offset, name, marker in ((-0.18, "mean", "o"), (0.18, "iqm", "D")):
            estimate = float(getattr(row, f"final_{name}"))
            low, high = getattr(row, f"final_{name}_ci")
            ax.errorbar(
                estimate,
                i + offset,
                xerr=[[estimate - low], [high - estimate]],
                fmt=marker,
                color=color,
                capsize=4,
                ms=7,
            )
    # Legend entries say which marker is which estimator, in neutral colour.
    confidence = float(summary.attrs.get("confidence", DEFAULT_CONFIDENCE))
    for marker, name in (("o", "mean"), ("D", "IQM")):
        label = f"{name}, {confidence:.0%} CI"
        ax.errorbar([], [], xerr=[], fmt=marker, color="0.3", capsize=4, label=label)
    if scores is not None:
        ax.scatter([], [], color="0.3", alpha=0.45, s=14, lw=0, label="seeds")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first configuration on top
    ax.set_xlabel("final evaluation return (last evaluation of each seed)")
    ax.set_ylabel(legend_title(_configs(rows)))
    counts = rows["n_seeds"].astype(int).tolist()
    if title is None:
        bars = _interval_caption(counts, confidence, "bars")
        title = f"{_env_prefix(rows)}final return; {bars}"
    ax.set_title(title)
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_seed_variance(
    curves: pd.DataFrame,
    *,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
) -> Axes:
    """Stability: the standard deviation of returns across seeds, over training.

    Args:
        curves: from `aggregate_curves` (its ``std`` column).
        colors, ax, title, xlabel: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    if curves.empty:
        return _note(ax, "no complete trials to plot")
    configs = _configs(curves)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    several_envs = curves["env_id"].nunique() > 1
    for (config, env_id), group in curves.groupby(["config", "env_id"], sort=False):
        label = _series_label(config, env_id, names, several_envs)
        ax.plot(group["x"], group["std"], color=colors[str(config)], lw=2.0, label=label)
    seeds = _seed_count(curves.groupby("config", sort=False)["n_seeds"].max().tolist())
    ax.set_title(
        title
        or f"{_env_prefix(curves)}spread across {seeds} seeds\n(lower is stabler; also 0 where"
        " every seed sits at the return cap)"
    )
    ax.set_xlabel(xlabel or str(curves.attrs.get("xlabel", "environment steps")))
    ax.set_ylabel("standard deviation of return across seeds")
    ax.set_ylim(bottom=0)
    ax.legend(title=legend_title(configs), fontsize="small")
    return ax


def plot_steps_to_threshold(
    scores: pd.DataFrame,
    *,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Env steps each seed needed to reach the threshold: one dot per seed, a bar at the median.

    Seeds that never reached it are drawn as crosses at the end of their run ("not reached");
    the median counts them as infinitely late (`censored_median`) and is absent when more than
    half never got there.

    Args:
        scores: per-trial scores from `per_trial_scores` (``steps_to_threshold``, ``threshold``,
            ``final_env_step``).
        colors, ax, title: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    if scores.empty:
        return _note(ax, "no complete trials to plot")
    thresholds = scores["threshold"].to_numpy(dtype=np.float64)
    if np.isnan(thresholds).all():
        envs = ", ".join(str(env) for env in pd.unique(scores["env_id"]))
        return _note(ax, f"no return threshold known for {envs}; pass --threshold")
    configs = _configs(scores)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    groups = list(scores.groupby(["config", "env_id"], sort=False))
    several_envs = scores["env_id"].nunique() > 1
    labels: list[str] = []
    for i, ((config, env_id), rows) in enumerate(groups):
        color = colors[str(config)]
        labels.append(_series_label(config, env_id, names, several_envs))
        steps = rows["steps_to_threshold"].to_numpy(dtype=np.float64)
        # Spread the dots of one row vertically so that equal values stay visible.
        jitter = i + np.linspace(-0.2, 0.2, steps.size) if steps.size > 1 else np.full(1, i)
        reached = np.isfinite(steps)
        ax.scatter(steps[reached], jitter[reached], color=color, s=22, alpha=0.8, lw=0)
        ends = rows["final_env_step"].to_numpy(dtype=np.float64)[~reached]
        ax.scatter(ends, jitter[~reached], color=color, marker="x", s=30)
        median = censored_median(steps)
        if np.isfinite(median):
            ax.plot([median, median], [i - 0.35, i + 0.35], color="0.15", lw=2.5)
    ax.scatter([], [], color="0.3", s=22, lw=0, label="seed")
    ax.scatter([], [], color="0.3", marker="x", s=30, label="not reached (end of run)")
    ax.plot([], [], color="0.15", lw=2.5, label="median")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(left=0)
    finite = thresholds[np.isfinite(thresholds)]
    level = f"{finite[0]:g}" if np.unique(finite).size == 1 else "each env's threshold"
    at_least = "\N{GREATER-THAN OR EQUAL TO}"
    ax.set_xlabel(f"environment steps to first evaluation return {at_least} {level}")
    ax.set_ylabel(legend_title(configs))
    ax.set_title(title or f"{_env_prefix(scores)}steps to reach the threshold")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_probability_of_improvement(
    matrix: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    confidence: float = 0.95,
) -> Axes:
    """Heatmap of P(row configuration > column configuration) with intervals in the cells.

    Args:
        matrix: from `improvement_matrix` (``config_x, config_y, probability, low, high``).
        ax, title: as in `plot_learning_curves`.
        confidence: coverage of the intervals, for the title.
    """
    import seaborn as sns

    ax = new_axes() if ax is None else ax
    if matrix.empty:
        return _note(ax, "probability of improvement needs at least two configurations")
    configs = [str(c) for c in pd.unique(pd.concat([matrix["config_x"], matrix["config_y"]]))]
    index = {config: i for i, config in enumerate(configs)}
    values = np.full((len(configs), len(configs)), np.nan)  # (rows: X, columns: Y)
    for row in matrix.itertuples(index=False):
        values[index[str(row.config_x)], index[str(row.config_y)]] = row.probability
    cmap = sns.color_palette("vlag", as_cmap=True)
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0)
    # The diagonal (a configuration against itself) holds no value: grey and marked, so that it
    # is not read as the scale's near-white middle, P = 0.5.
    for i in range(len(configs)):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor="0.85", edgecolor="none"))
        ax.text(i, i, "\N{EN DASH}", ha="center", va="center", fontsize=10, color="0.4")
    for row in matrix.itertuples(index=False):
        i, j = index[str(row.config_x)], index[str(row.config_y)]
        # Dark text on the light middle of the scale, light text on its saturated ends.
        rgba = mcolors.to_rgba(cmap(row.probability))
        dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.5
        text = f"{row.probability:.2f}\n[{row.low:.2f}, {row.high:.2f}]"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="0.1" if dark else "1")
    names = display_labels(configs)
    ticks = [names[config] for config in configs]
    ax.set_xticks(range(len(configs)), ticks, rotation=30, ha="right")
    ax.set_yticks(range(len(configs)), ticks)
    ax.set_xlabel(f"configuration Y ({legend_title(configs)})")
    ax.set_ylabel(f"configuration X ({legend_title(configs)})")
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, label="P(X > Y): a seed of X beats a seed of Y")
    ax.set_title(
        title or f"probability of improvement (final return), {confidence:.0%} bootstrap CI"
    )
    return ax


def plot_q_statistics(
    aligned: pd.DataFrame,
    *,
    ylabel: str = "mean Q-value of sampled batches",
    log_scale: bool = False,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
) -> Axes:
    """A logged training statistic (``q_mean`` or ``td_loss``) over training.

    Thin lines are seeds; the thick line is their mean. Q-values that climb far above the
    returns the agent gets are the classic sign of overestimation (what Double DQN targets).

    Args:
        aligned: the statistic aligned per seed, e.g. ``align_evals(evals, column="q_mean")``.
        ylabel: what the statistic is.
        log_scale: log y axis (for losses spanning orders of magnitude).
        colors, ax, title, xlabel: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    if aligned.empty or not np.isfinite(aligned["value"].to_numpy(dtype=np.float64)).any():
        return _note(ax, f"{ylabel}: not logged in these results")
    configs = _configs(aligned)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    several_envs = aligned["env_id"].nunique() > 1
    for (config, env_id), group in aligned.groupby(["config", "env_id"], sort=False):
        color = colors[str(config)]
        for _, seed_rows in group.groupby(SEED, sort=False):
            ax.plot(seed_rows["x"], seed_rows["value"], color=color, lw=0.7, alpha=SEED_ALPHA)
        wide = group.pivot(index=SEED, columns="x", values="value")
        label = _series_label(config, env_id, names, several_envs)
        ax.plot(wide.columns, wide.to_numpy().mean(axis=0), color=color, lw=2.0, label=label)
    if log_scale and (aligned["value"].dropna() > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or "environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{_env_prefix(aligned)}{ylabel} (thin: seeds; thick: mean)")
    ax.legend(title=legend_title(configs), fontsize="small")
    return ax


# Aggregates across environments, on the normalized scale (rliable's figures).

AGGREGATE_PANELS = (
    ("median", "Median"),
    ("iqm", "IQM"),
    ("mean", "Mean"),
    ("optimality_gap", "Optimality gap (lower is better)"),
)
"""The panels of `plot_aggregate_metrics`: a column of the aggregate table and its title, in
rliable's order."""

NORMALIZED = "normalized score (0: random policy, 1: reference score)"


def _across_caption(
    envs: Sequence[str], runs: Mapping[str, int], confidence: float, what: str
) -> str:
    """``over 3 environments, 5 runs on each:``, the environments (wrapped), and what the band
    (`what`) is, each on a line of its own so that a one-panel figure's title fits."""
    each = _seed_count(list(runs.values())) if runs else "0"
    names = textwrap.fill(", ".join(envs), width=70)
    return (
        f"over {len(envs)} environments, {each} run{'' if each == '1' else 's'} on each:\n"
        f"{names}\n"
        f"{what}: {confidence:.0%} stratified bootstrap CI (percentile)"
    )


def plot_aggregate_metrics(
    table: pd.DataFrame,
    *,
    colors: Mapping[str, Color] | None = None,
    axes: Sequence[Axes] | None = None,
    title: str | None = None,
) -> list[Axes]:
    """Median, IQM, mean and optimality gap of the normalized final returns, with intervals.

    rliable's aggregate-metrics figure: one panel per aggregate (`AGGREGATE_PANELS`), one row
    per configuration, a translucent bar spanning its interval and a black tick at its point
    estimate. Higher is better except for the optimality gap (how far the runs fall short of
    the reference score).

    Args:
        table: from `analysis.aggregate.aggregate_table` (``mean``, ``mean_ci``, ...).
        colors: colour per configuration; defaults to `config_colors`.
        axes: four Axes to draw on, in `AGGREGATE_PANELS` order; a new figure's when None.
        title: over the panels; the default names the environments, runs and interval.

    Returns:
        The four Axes.
    """
    import seaborn as sns

    if axes is None:
        with sns.axes_style(STYLE):
            figure = Figure(
                figsize=(3.2 * len(AGGREGATE_PANELS), max(2.8, 0.55 * len(table) + 1.8)),
                layout="constrained",
            )
            axes = list(figure.subplots(1, len(AGGREGATE_PANELS), squeeze=False)[0])
    if len(axes) != len(AGGREGATE_PANELS):
        raise ValueError(f"need {len(AGGREGATE_PANELS)} Axes, got {len(axes)}")
    axes = list(axes)
    if table.empty:
        for ax in axes:
            _note(ax, "no configuration ran on every environment")
        return axes
    configs = _configs(table)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    for ax, (column, name) in zip(axes, AGGREGATE_PANELS, strict=True):
        for i, row in enumerate(table.itertuples(index=False)):
            estimate = float(getattr(row, column))
            low, high = (float(v) for v in getattr(row, f"{column}_ci"))
            if np.isfinite(low) and np.isfinite(high):  # one run has no interval
                color = colors[str(row.config)]
                ax.barh(i, high - low, left=low, height=0.6, color=color, alpha=0.75)
            ax.plot([estimate, estimate], [i - 0.3, i + 0.3], color="k", lw=2.0)
        ax.set_title(name)
        ax.set_yticks(range(len(table)), [names[c] for c in configs] if ax is axes[0] else [])
        ax.set_ylim(len(table) - 0.5, -0.5)  # first configuration on top
        ax.grid(axis="y", visible=False)
    axes[0].set_ylabel(legend_title(configs))
    if title is None:
        envs = str(table["envs"].iloc[0]).split(", ")
        runs = dict(zip(table["config"], table["runs_per_env"], strict=True))
        confidence = float(table.attrs.get("confidence", DEFAULT_CONFIDENCE))
        title = "normalized final return " + _across_caption(envs, runs, confidence, "bars")
    drawn_on = axes[0].get_figure()
    if drawn_on is not None:
        drawn_on.supxlabel(NORMALIZED)
        drawn_on.suptitle(title)
    return axes


def _lines_with_bands(
    ax: Axes,
    frame: pd.DataFrame,
    x: str,
    y: str,
    colors: Mapping[str, Color],
    names: Mapping[str, str],
) -> None:
    """Per configuration of `frame`, the line `y` over `x` on its band from ``low`` to
    ``high``, in the configuration's colour."""
    for config, rows in frame.groupby("config", sort=False):
        color = colors[str(config)]
        ax.fill_between(rows[x], rows["low"], rows["high"], color=color, alpha=BAND_ALPHA, lw=0)
        ax.plot(rows[x], rows[y], color=color, lw=2.0, label=names[str(config)])


def plot_performance_profile(
    profile: pd.DataFrame,
    *,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Performance profile: the fraction of runs whose normalized final return exceeds tau.

    One line per configuration with its stratified-bootstrap band (rliable's run-score
    distribution); a curve lying above another everywhere is better at every level. Dotted
    verticals mark the random policy (0) and the reference score (1).

    Args:
        profile: from `analysis.aggregate.performance_profiles`
            (``config, tau, fraction, low, high``).
        colors, ax, title: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    if profile.empty:
        return _note(ax, "no configuration ran on every environment")
    configs = _configs(profile)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    _lines_with_bands(ax, profile, "tau", "fraction", colors, names)
    for level in (0.0, 1.0):
        ax.axvline(level, color="0.5", ls=":", lw=1.0, label="_random and reference")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"\N{GREEK SMALL LETTER TAU}: {NORMALIZED}")
    ax.set_ylabel("fraction of runs with score > \N{GREEK SMALL LETTER TAU}")
    if title is None:
        confidence = float(profile.attrs.get("confidence", DEFAULT_CONFIDENCE))
        envs, runs = profile.attrs.get("envs", []), profile.attrs.get("runs", {})
        caption = _across_caption(envs, runs, confidence, "band")
        title = f"performance profile of the final return\n{caption}"
    ax.set_title(title)
    ax.legend(title=legend_title(configs), fontsize="small")
    return ax


def plot_sample_efficiency(
    curves: pd.DataFrame,
    *,
    colors: Mapping[str, Color] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Sample efficiency: the IQM of the normalized evaluation return over env steps.

    One line per configuration with its stratified-bootstrap band (rliable's sample-efficiency
    curve): at each point, the IQM of all run x environment normalized scores.

    Args:
        curves: from `analysis.aggregate.sample_efficiency` (``config, x, iqm, low, high``).
        colors, ax, title: as in `plot_learning_curves`.
    """
    ax = new_axes() if ax is None else ax
    if curves.empty:
        return _note(ax, "no configuration ran on every environment")
    configs = _configs(curves)
    colors = config_colors(configs) if colors is None else colors
    names = display_labels(configs)
    _lines_with_bands(ax, curves, "x", "iqm", colors, names)
    ax.set_xlabel("environment steps (up to the shortest environment's budget)")
    ax.set_ylabel("IQM of normalized evaluation return\n(0: random policy, 1: reference score)")
    if title is None:
        confidence = float(curves.attrs.get("confidence", DEFAULT_CONFIDENCE))
        envs, runs = curves.attrs.get("envs", []), curves.attrs.get("runs", {})
        caption = _across_caption(envs, runs, confidence, "band")
        title = f"sample efficiency: IQM of the evaluation return\n{caption}"
    ax.set_title(title)
    ax.legend(title=legend_title(configs), fontsize="small")
    return ax
