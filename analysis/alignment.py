"""Put every seed's curve on a common grid, so seeds can be aggregated point by point.

Seeds do not share x values: evaluations may end at different steps, and training episodes end
whenever they end (a seed with short episodes finishes many more of them). Aggregating by
episode index would compare seed A's 100th episode, at 2,000 steps, with seed B's, at 40,000.
So each configuration gets one grid and each seed a value at every grid point:

- Evaluations: a seed's value at grid point g is its last evaluation at or before g. On the
  env-step axis the grid is the evaluation steps themselves (normally identical across seeds).
- Training episodes on the env-step (or wall-time) axis: the grid is the right edges of equal
  bins, and a seed's value in a bin is **the mean return of its episodes that end in that bin;
  a bin with none carries the last finished episode's return forward (NaN before the first
  episode)**. Every seed thus contributes one number per bin however long its episodes are.
- Training episodes on the episode axis: the k-th episode of every seed.

The grid of a configuration stops where its shortest seed stops, so no seed is extrapolated past
the end of its run. Output is one tidy table: ``sweep, config, env_id, trial_id, seed, x,
value``, one row per seed and grid point, rows of a seed in x order; ``frame.attrs`` records the
metric, the x axis and the axis labels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.load import COMPLETE, Results, ResultsError
from analysis.options import METRICS, X_AXES, Metric, XAxis
from analysis.stats import FloatArray

GROUP = ["config", "env_id"]
"""One curve per configuration and environment."""
SEED = ["sweep", "trial_id"]
"""One run (a seed of a configuration); trial ids are unique within a sweep."""
ALIGNED_COLUMNS = ["sweep", "config", "env_id", "trial_id", "seed", "x", "value"]

X_LABELS: dict[XAxis, str] = {
    "env_step": "environment steps",
    "episode": "training episodes",
    "wall_s": "wall-clock time (s)",
}


def axis_labels(metric: Metric, x: XAxis, smooth: int = 1) -> tuple[str, str]:
    """(x label, y label) that state units and, for binned episodes, how a bin is valued."""
    if metric == "eval":
        ylabel = "evaluation return (greedy policy)"
    elif x == "episode":
        ylabel = "training episode return"
    else:
        ylabel = (
            "training episode return\n(mean of episodes ending in each bin;\n"
            "an empty bin carries the last value)"
        )
    if smooth > 1:
        ylabel += f"\nrolling mean of {smooth} points per seed"
    return X_LABELS[x], ylabel


def bin_episode_returns(
    end_steps: npt.ArrayLike, returns: npt.ArrayLike, edges: npt.ArrayLike
) -> FloatArray:
    """One seed's training returns on a binned grid (the definition in the module docstring).

    Args:
        end_steps: ``(n_episodes,)`` increasing x at which each episode ended (env steps).
        returns: ``(n_episodes,)`` episode returns.
        edges: ``(n_bins + 1,)`` increasing bin edges; bin k is ``(edges[k], edges[k + 1]]``.

    Returns:
        ``(n_bins,)``: the mean return of the episodes ending in each bin; an empty bin carries
        the previous value forward; NaN before the first episode. Episodes ending outside the
        edges are ignored.
    """
    ends = np.asarray(end_steps, dtype=np.float64)
    rets = np.asarray(returns, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    n_bins = e.size - 1
    # searchsorted 'left' puts an episode ending exactly on an edge into the bin that edge closes.
    k = np.searchsorted(e, ends, side="left") - 1
    inside = (k >= 0) & (k < n_bins)
    sums = np.bincount(k[inside], weights=rets[inside], minlength=n_bins)
    counts = np.bincount(k[inside], minlength=n_bins)
    # Index of the last non-empty bin at or before each bin (-1 where there is none yet).
    last = np.maximum.accumulate(np.where(counts > 0, np.arange(n_bins), -1))
    means = sums / np.maximum(counts, 1)
    return np.where(last >= 0, means[np.maximum(last, 0)], np.nan)


def carry_last(xs: npt.ArrayLike, ys: npt.ArrayLike, grid: npt.ArrayLike) -> FloatArray:
    """The last observation at or before each grid point (NaN before the first).

    Args:
        xs: ``(n,)`` increasing x of the observations.
        ys: ``(n,)`` observed values.
        grid: ``(n_grid,)`` points to read the step function at.

    Returns:
        ``(n_grid,)`` values.
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    i = np.searchsorted(x, np.asarray(grid, dtype=np.float64), side="right") - 1
    return np.where(i >= 0, y[np.maximum(i, 0)], np.nan)


def _tidy(parts: list[tuple[pd.DataFrame, FloatArray, FloatArray]]) -> pd.DataFrame:
    """Stack (id row of a seed, grid, values) parts into the aligned table."""
    if not parts:
        return pd.DataFrame({column: [] for column in ALIGNED_COLUMNS})
    ids = pd.concat([row for row, _, _ in parts], ignore_index=True)
    out = ids.loc[ids.index.repeat([grid.size for _, grid, _ in parts])].reset_index(drop=True)
    out["x"] = np.concatenate([grid for _, grid, _ in parts])
    out["value"] = np.concatenate([values for _, _, values in parts])
    return out[ALIGNED_COLUMNS]


def _id_row(rows: pd.DataFrame) -> pd.DataFrame:
    """The identifying columns of a seed's rows, as a one-row frame."""
    return rows.iloc[:1][["sweep", "config", "env_id", "trial_id", "seed"]]


def _x_of_evals(
    rows: pd.DataFrame, x: XAxis, episode_ends: dict[tuple[str, str], FloatArray]
) -> FloatArray:
    """The x value of each evaluation of one seed."""
    steps = rows["env_step"].to_numpy(dtype=np.float64)
    if x == "env_step":
        return steps
    if x == "wall_s":
        wall = rows["wall_s"].to_numpy(dtype=np.float64)
        if np.isnan(wall).any():
            raise ResultsError(
                "the evaluation tables lack wall_s (an older results folder); "
                "plot against env_step or episode instead"
            )
        return wall
    key = (str(rows["sweep"].iloc[0]), str(rows["trial_id"].iloc[0]))
    ends = episode_ends.get(key, np.empty(0))
    # Episodes finished when the evaluation ran.
    return np.searchsorted(ends, steps, side="right").astype(np.float64)


def align_evals(
    evals: pd.DataFrame,
    episodes: pd.DataFrame | None = None,
    *,
    x: XAxis = "env_step",
    column: str = "eval_return_mean",
) -> pd.DataFrame:
    """Evaluation results of every seed on its configuration's grid (see the module docstring).

    Args:
        evals: the evals table of `load_results`.
        episodes: the episodes table; needed for ``x="episode"`` (the x of an evaluation is then
            the number of training episodes finished before it).
        x: ``env_step`` (the evaluation steps), ``wall_s`` or ``episode`` (a regular grid from
            the latest first x to the earliest last x, with as many points as evaluations).
        column: the eval column to align (``q_mean`` and ``td_loss`` work too).

    Returns:
        The aligned table (``sweep, config, env_id, trial_id, seed, x, value``).
    """
    if column not in evals.columns:
        raise ResultsError(f"the evaluation tables have no column {column!r}")
    episode_ends: dict[tuple[str, str], FloatArray] = {}
    if x == "episode":
        if episodes is None:
            raise ValueError("aligning evaluations by episode needs the episodes table")
        for key, rows in episodes.groupby(SEED, sort=False):
            episode_ends[(str(key[0]), str(key[1]))] = rows["env_step"].to_numpy(np.float64)

    parts: list[tuple[pd.DataFrame, FloatArray, FloatArray]] = []
    for _, group in evals.groupby(GROUP, sort=False):
        seeds = [rows for _, rows in group.groupby(SEED, sort=False)]
        xs = [_x_of_evals(rows, x, episode_ends) for rows in seeds]
        end = min(float(xi[-1]) for xi in xs)
        if x == "env_step":
            union = np.unique(np.concatenate(xs))
            grid = union[union <= end]
        else:
            start = max(float(xi[0]) for xi in xs)
            grid = np.linspace(start, end, max(xi.size for xi in xs))
            if x == "episode":
                grid = np.unique(np.round(grid))
        for rows, xi in zip(seeds, xs, strict=True):
            values = carry_last(xi, rows[column].to_numpy(np.float64), grid)
            parts.append((_id_row(rows), grid, values))
    return _tidy(parts)


def _spans(trials: pd.DataFrame | None, x: XAxis) -> dict[tuple[str, str], float]:
    """How far each trial ran along `x`, from the trials table (NaN-free entries only)."""
    column = {"env_step": "env_steps", "wall_s": "wall_s"}.get(x)
    if trials is None or column is None or column not in trials.columns:
        return {}
    spans = {}
    for row in trials[["sweep", "trial_id", column]].itertuples(index=False):
        value = float(row[2])
        if np.isfinite(value):
            spans[(str(row[0]), str(row[1]))] = value
    return spans


def align_episodes(
    episodes: pd.DataFrame,
    trials: pd.DataFrame | None = None,
    *,
    x: XAxis = "env_step",
    n_bins: int = 100,
) -> pd.DataFrame:
    """Training-episode returns of every seed on a common grid (see the module docstring).

    Args:
        episodes: the episodes table of `load_results`.
        trials: the trials table; its ``env_steps`` (or ``wall_s``) says how long each trial
            ran, so the last bins carry its last episode up to the end of training rather than
            stopping at that episode. Without it a trial ends with its last episode.
        x: ``env_step`` or ``wall_s`` (binned: episodes ending in each bin), or ``episode``.
        n_bins: number of equal bins from 0 to where the configuration's shortest seed ends.

    Returns:
        The aligned table (``sweep, config, env_id, trial_id, seed, x, value``); x is a bin's
        right edge, the point by which its episodes had ended.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    if x == "wall_s" and episodes["wall_s"].isna().any():
        raise ResultsError(
            "the episode tables lack wall_s (an older results folder); "
            "plot against env_step or episode instead"
        )
    spans = _spans(trials, x)
    parts: list[tuple[pd.DataFrame, FloatArray, FloatArray]] = []
    for seeds in _episodes_by_configuration(episodes, trials):
        if x == "episode":
            n = min(len(rows) for _, rows in seeds)
            grid = np.arange(n, dtype=np.float64)
            for id_row, rows in seeds:
                values = rows["episode_return"].to_numpy(np.float64)[:n]
                parts.append((id_row, grid, values))
            continue
        ends = [rows[x].to_numpy(np.float64) for _, rows in seeds]
        keys = [(str(i["sweep"].iloc[0]), str(i["trial_id"].iloc[0])) for i, _ in seeds]
        end = min(
            max(spans.get(key, 0.0), float(e[-1]) if e.size else 0.0)
            for key, e in zip(keys, ends, strict=True)
        )
        edges = np.linspace(0.0, end, n_bins + 1)
        for (id_row, rows), e in zip(seeds, ends, strict=True):
            values = bin_episode_returns(e, rows["episode_return"].to_numpy(np.float64), edges)
            parts.append((id_row, edges[1:], values))
    return _tidy(parts)


def _episodes_by_configuration(
    episodes: pd.DataFrame, trials: pd.DataFrame | None
) -> list[list[tuple[pd.DataFrame, pd.DataFrame]]]:
    """Per configuration, (id row, episode rows) of each seed.

    With the trials table, every complete trial is a seed, including one that finished no
    training episode (a long first episode, a short budget): its rows are empty, so on the
    episode axis its configuration's grid is empty, and on a binned axis its values are NaN
    (before its first episode) and so are the configuration's aggregates, rather than its
    curve quietly standing for the other seeds only.
    """
    if trials is None:
        return [
            [(_id_row(rows), rows) for _, rows in group.groupby(SEED, sort=False)]
            for _, group in episodes.groupby(GROUP, sort=False)
        ]
    by_seed = {(str(key[0]), str(key[1])): rows for key, rows in episodes.groupby(SEED, sort=False)}
    complete = trials[trials["status"] == COMPLETE]
    return [
        [
            (_id_row(trial), by_seed.get((str(sweep), str(trial_id)), episodes.iloc[:0]))
            for (sweep, trial_id), trial in group.groupby(SEED, sort=False)
        ]
        for _, group in complete.groupby(GROUP, sort=False)
    ]


def smooth_per_seed(aligned: pd.DataFrame, window: int) -> pd.DataFrame:
    """Trailing rolling mean of `window` grid points, within each seed, before aggregation.

    Trailing (the value at x uses only points up to x) so smoothing never borrows from the
    future; the first points average what is there (``min_periods=1``); NaN points are skipped.
    """
    if window < 1:
        raise ValueError(f"the smoothing window must be positive, got {window}")
    if window == 1 or aligned.empty:
        return aligned
    out = aligned.copy()
    out["value"] = out.groupby(SEED, sort=False)["value"].transform(
        lambda s: s.rolling(window, min_periods=1).mean()
    )
    return out


def align(
    results: Results,
    *,
    metric: Metric = "eval",
    x: XAxis = "env_step",
    smooth: int = 1,
    n_bins: int = 100,
) -> pd.DataFrame:
    """The aligned per-seed curves of a sweep, with axis labels in ``attrs``.

    Args:
        results: from `load_results` (complete trials only are in its curves).
        metric: ``eval`` (greedy evaluation returns) or ``episode`` (training returns).
        x: ``env_step`` (default), ``episode`` or ``wall_s``.
        smooth: rolling-mean window applied per seed (1: none).
        n_bins: bins for training returns on the env-step or wall-time axis.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    if metric == "eval":
        frame = align_evals(results.evals, results.episodes, x=x)
    else:
        frame = align_episodes(results.episodes, results.trials, x=x, n_bins=n_bins)
    frame = smooth_per_seed(frame, smooth)
    xlabel, ylabel = axis_labels(metric, x, smooth)
    frame.attrs.update(metric=metric, x=x, smooth=smooth, xlabel=xlabel, ylabel=ylabel)
    return frame
