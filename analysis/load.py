"""Read one or several results folders into three tidy tables: trials, episodes, evals.

A results folder is what `dqn-sweep run` writes; its layout, columns and dtypes are the contract
in `analysis.schema`::

    results/<name>/trials.parquet               one row per trial, complete or failed
    results/<name>/episodes/<trial_id>.parquet  one row per training episode
    results/<name>/evals/<trial_id>.parquet     one row per greedy evaluation point

Only Parquet is read, so plots can be regenerated anywhere the folder is copied. Folders of every
earlier version are read: each file must pass the contract's check that is not strict (required
columns present, every column of a type that converts to its dtype), and a column that an older
folder lacks is added holding its ``fill`` (NaN, or what its absence meant), so that every table
has every column of the contract whatever version wrote it. Episodes and evals are read for
complete trials only: a failed trial may have left partial files, and its curve would bias every
aggregate. Failed trials stay in the trials table, for the summary.

Every table gets a ``sweep`` column (the folder's name). When several folders are loaded and
two of them hold the same configuration label for the same environment, those labels become
``<sweep>/<config>`` so the configurations stay distinguishable. The same label on different
environments is kept: it is the same configuration run on several tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from analysis.schema import (
    EPISODES,
    EVALS,
    TRIALS,
    FolderLayout,
    ResultsError,
    SchemaError,
    Table,
    arrow_problems,
)

# Measurements that the summary averages: float, so that NaN marks one an older folder lacks.
FLOAT_TRIAL_COLUMNS = ("wall_s", "env_steps", "env_steps_per_s")
FLOAT_EVAL_COLUMNS = ("eval_return_mean", "eval_return_std", "wall_s", "q_mean", "td_loss")

COMPLETE = "complete"

__all__ = ["COMPLETE", "Results", "ResultsError", "SchemaError", "load_results"]


@dataclass(frozen=True)
class Results:
    """The tidy tables of one or several results folders.

    Attributes:
        trials: one row per trial (complete and failed), with a ``sweep`` column.
        episodes: one row per training episode of a complete trial, sorted by trial and episode.
        evals: one row per evaluation of a complete trial, sorted by trial and env step.
        dirs: the folders read, in the order given.
    """

    trials: pd.DataFrame
    episodes: pd.DataFrame
    evals: pd.DataFrame
    dirs: tuple[Path, ...]
    unfinished: tuple[str, ...] = ()
    """Per folder whose sweep has trials without a row yet, a line saying how many and why."""

    @property
    def failed(self) -> pd.DataFrame:
        """Trials whose status is not ``complete``; they are left out of every curve."""
        return self.trials[self.trials["status"] != COMPLETE]

    def failure_note(self) -> str | None:
        """One line naming the failed trials, or None when all completed."""
        failed = self.failed
        if failed.empty:
            return None
        shown = _listed((failed["sweep"] + "/" + failed["trial_id"]).tolist())
        return (
            f"{len(failed)} of {len(self.trials)} trials failed and are left out of the "
            f"curves: {shown} (see the error column of trials.parquet)"
        )

    def unfinished_note(self) -> str | None:
        """The `unfinished` lines as one note, or None when every sweep has all its trials."""
        return "; ".join(self.unfinished) or None

    def no_episode_note(self) -> str | None:
        """One line naming the complete trials that finished no training episode, or None.

        Their configurations have no training-return curve (see
        `analysis.alignment.align_episodes`); evaluation curves are unaffected."""
        complete = self.trials[self.trials["status"] == COMPLETE]
        keys = set(zip(self.episodes["sweep"], self.episodes["trial_id"], strict=True))
        silent = [
            f"{sweep}/{trial_id}"
            for sweep, trial_id in zip(complete["sweep"], complete["trial_id"], strict=True)
            if (sweep, trial_id) not in keys
        ]
        if not silent:
            return None
        return (
            f"{len(silent)} complete trial(s) finished no training episode, so their "
            f"configurations have no training-return curve: {_listed(silent)} (a longer budget "
            "gives them one; evaluation curves are unaffected)"
        )


def _listed(names: Sequence[str], most: int = 10) -> str:
    """``a, b, c`` or, past `most` names, the first ones and ``and N more``."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _read_parquet(path: Path, table: Table) -> pd.DataFrame:
    """Read one Parquet file, check it against the contract (the level that is not strict) and
    add the columns an older version did not write."""
    if not path.is_file():
        raise ResultsError(f"{path}: file is missing")
    try:
        data = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ResultsError(
            f"{path}: cannot be read as Parquet ({err}); the file is damaged, so delete it "
            "and re-run the sweep to regenerate it"
        ) from err
    problems = arrow_problems(data, table, where=path)
    if problems:
        raise SchemaError(problems)
    return table.fill_missing(data.to_pandas())


def _normalise_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per id column whatever the writer used, so tables from several folders join."""
    for column in ("trial_id", "config", "env_id"):
        frame[column] = frame[column].astype(str)
    frame["seed"] = frame["seed"].astype(np.int64)
    return frame


def _trial_table(trial_file: Path, path: Path, trial_id: str) -> Path:
    """`path`, a table of a complete trial; a ResultsError if it is missing."""
    if not path.is_file():
        raise ResultsError(
            f"{path}: file is missing, but {trial_file} marks trial {trial_id} complete; "
            "re-run the sweep to regenerate it, or restore the file"
        )
    return path


def _load_one(
    folder: Path, sweep: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str | None]:
    """Trials, episodes and evals of one results folder, each with a ``sweep`` column, and its
    `_unfinished` line."""
    if not folder.is_dir():
        raise ResultsError(
            f"{folder}: no such folder; pass a results folder written by `dqn-sweep run`"
        )
    layout = FolderLayout(folder)
    trial_file = layout.trials_path
    if not trial_file.is_file():
        if layout.spec_path.is_file():
            raise ResultsError(
                f"{folder}: no trial has finished yet (the sweep is running, or was stopped "
                "before its first trial finished); try again later, or rerun the `dqn-sweep "
                "run` command in its manifest.json to resume it"
            )
        raise ResultsError(
            f"{folder}: not a results folder (no trials.parquet inside); pass results/<sweep>, "
            "the folder that `dqn-sweep run` wrote"
        )
    trials = _normalise_ids(_read_parquet(trial_file, TRIALS))
    trials["status"] = trials["status"].astype(str)
    trials.insert(0, "sweep", sweep)

    complete = trials.loc[trials["status"] == COMPLETE, "trial_id"].tolist()
    episodes, evals = [], []
    for trial_id in complete:
        ep_path = _trial_table(trial_file, layout.episodes_path(trial_id), trial_id)
        ev_path = _trial_table(trial_file, layout.evals_path(trial_id), trial_id)
        episodes.append(_read_parquet(ep_path, EPISODES))
        ev = _read_parquet(ev_path, EVALS)
        if ev.empty:
            raise ResultsError(
                f"{ev_path}: has no rows, but trial {trial_id} is marked complete (every "
                "trial evaluates at step 0); re-run the sweep to regenerate it"
            )
        evals.append(ev)
    return (
        trials,
        _concat(episodes, EPISODES, sweep),
        _concat(evals, EVALS, sweep),
        _unfinished(layout, len(trials)),
    )


def _unfinished(layout: FolderLayout, recorded: int) -> str | None:
    """A line saying that the folder's sweep has trials without a row, and why, from its
    manifest.json (what `dqn-sweep run` planned, and whether the run ended); None when all
    have one, or the manifest cannot say."""
    try:
        run = json.loads(layout.manifest_path.read_text(encoding="utf-8"))["runs"][-1]
        planned = int(run["trials"])
    except (OSError, ValueError, LookupError, TypeError):
        return None  # an older or hand-made folder: nothing to compare with
    if recorded >= planned:
        return None
    if "finished_at" not in run:
        why = "its sweep is still running, or its driver was killed"
    elif run.get("interrupted"):
        why = "its sweep was interrupted"
    else:
        why = "its last run did not train them"
    return (
        f"{layout.root}: {planned - recorded} of {planned} trials have no result yet ({why}); "
        "rerun the `dqn-sweep run` command in its manifest.json to resume"
    )


def _concat(frames: list[pd.DataFrame], table: Table, sweep: str) -> pd.DataFrame:
    """Concatenate per-trial tables (possibly none) and add the ``sweep`` column first."""
    non_empty = [frame for frame in frames if not frame.empty]
    out = pd.concat(non_empty, ignore_index=True) if non_empty else table.empty()
    out = _normalise_ids(out)
    out.insert(0, "sweep", sweep)
    return out


def _sweep_names(folders: Sequence[Path]) -> list[str]:
    """Folder names, or the paths as given where two folders share a name."""
    names = [folder.name for folder in folders]
    if len(set(names)) == len(names):
        return names
    return [str(folder) for folder in folders]


def _relabel_collisions(tables: Iterable[pd.DataFrame], trials: pd.DataFrame) -> None:
    """Prefix ``<sweep>/`` to labels that two sweeps use for the same environment, in place."""
    owners = trials.groupby(["config", "env_id"])["sweep"].nunique()
    clashes = {key for key, count in owners.items() if count > 1}
    if not clashes:
        return
    for table in tables:
        keys = list(zip(table["config"], table["env_id"], strict=True))
        clash = np.array([key in clashes for key in keys], dtype=bool)
        table.loc[clash, "config"] = table.loc[clash, "sweep"] + "/" + table.loc[clash, "config"]


def load_results(paths: str | Path | Sequence[str | Path]) -> Results:
    """Load results folders into tidy tables (see the module docstring for the layout).

    Args:
        paths: one folder or several; several are concatenated, with a ``sweep`` column.

    Raises:
        ResultsError: a path is not a results folder, a file a complete trial needs is missing
            or damaged, or a table lacks a required column. The message names the path.
    """
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    if not given:
        raise ResultsError("no results folder given")
    folders: list[Path] = []
    for path in map(Path, given):
        if path.resolve() not in {folder.resolve() for folder in folders}:
            folders.append(path)
    loaded = [
        _load_one(folder, name) for folder, name in zip(folders, _sweep_names(folders), strict=True)
    ]
    trials = pd.concat([part[0] for part in loaded], ignore_index=True)
    episodes = pd.concat([part[1] for part in loaded], ignore_index=True)
    evals = pd.concat([part[2] for part in loaded], ignore_index=True)
    if len(folders) > 1:
        _relabel_collisions((trials, episodes, evals), trials)

    episodes = episodes.astype({"episode": np.int64, "env_step": np.int64})
    episodes = episodes.astype(
        {"episode_return": np.float64, "episode_length": np.int64, "wall_s": np.float64}
    )
    evals = evals.astype({"env_step": np.int64})
    evals = evals.astype(dict.fromkeys(FLOAT_EVAL_COLUMNS, np.float64))
    trials = trials.astype(dict.fromkeys(FLOAT_TRIAL_COLUMNS, np.float64))

    # Keep trials in the order of trials.parquet (the spec's grid order), which sets the order of
    # configurations in legends; within a trial, rows in time order.
    keys = zip(trials["sweep"], trials["trial_id"], strict=True)
    order = {key: rank for rank, key in enumerate(keys)}
    episodes = _sort_by_trial(episodes, order, "episode")
    evals = _sort_by_trial(evals, order, "env_step")
    unfinished = tuple(part[3] for part in loaded if part[3] is not None)
    return Results(
        trials=trials, episodes=episodes, evals=evals, dirs=tuple(folders), unfinished=unfinished
    )


def _sort_by_trial(
    frame: pd.DataFrame, order: dict[tuple[str, str], int], within: str
) -> pd.DataFrame:
    """Sort rows by the trial's rank in the trials table, then by `within`."""
    rank = [order[key] for key in zip(frame["sweep"], frame["trial_id"], strict=True)]
    frame = frame.assign(_rank=np.asarray(rank, dtype=np.int64))
    frame = frame.sort_values(["_rank", within], kind="stable").drop(columns="_rank")
    return frame.reset_index(drop=True)
