"""The results folder of a sweep: what is written, in which order, and what a rerun may keep.

    results/<name>/
      spec.yaml                    the spec as given (the latest run's, byte for byte)
      manifest.json                provenance of every run: versions, git commit, host, Ray, times;
                                   rows of trials without results that a new spec dropped
      trials.parquet               one row per trial: id, hyperparameters, status, figures
      episodes/<trial_id>.parquet  one row per training episode
      evals/<trial_id>.parquet     one row per greedy evaluation
      models/<trial_id>.pt         final weights with their config

A run holds `sweeps.lock.FolderLock` from its resume check to its end, so one run at a time
writes a folder; `sweeps.resume` decides what a rerun may keep; `sweeps.provenance` says where
and with what a run happened.

The file names, the tables' columns and dtypes and the atomic writer belong to
`analysis.schema`, which the analysis reads folders with; this module decides what is written
when. Every file is written under a temporary name and renamed, so a file that exists is whole.
A trial's data files are all written before trials.parquet marks it complete, so a driver killed
at any point leaves either a complete trial or one that a rerun trains again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.schema import (
    AGENT_COLUMNS,
    EPISODES,
    EVALS,
    IDENTITY_COLUMNS,
    TRIALS,
    FolderLayout,
    SchemaError,
    remove_temp_files,
    write_bytes_atomic,
    write_parquet_atomic,
)
from dqn_agent import ADDED_SETTINGS, AgentConfig, TrialSpec, hidden_sizes_text, save_weights
from dqn_agent.training import EPISODE_COLUMNS, EVAL_COLUMNS, TrialResult
from sweeps.plan import expand
from sweeps.provenance import now
from sweeps.spec import InputError, SweepSpec


class ResumeError(InputError):
    """The results folder holds trials that the new spec would change or drop (exit code 2)."""


@dataclass(frozen=True)
class TrialOutcome:
    """What a task hands back for one trial: how it ran and, if it completed, the trainer's
    `TrialResult` (tables, weights, figures). Plain, picklable data; the driver writes the files."""

    spec: TrialSpec
    status: Literal["complete", "failed"]
    result: TrialResult | None = None
    """The trainer's result of a complete trial; None for a failed one."""
    error: str = ""
    """Message and traceback of a failed trial; empty when complete."""
    group_size: int = 1
    """Seeds of the configuration trained together with this one, in one task (itself included)."""
    host: str = ""
    node_id: str = ""
    attempts: int = 1
    """Times Ray started the task (more than 1 after a worker process died)."""

    @property
    def wall_s(self) -> float:
        """Seconds the task that trained the trial took: shared by the `group_size` seeds in it."""
        return math.nan if self.result is None else self.result.wall_s

    @property
    def env_steps(self) -> int:
        return 0 if self.result is None else self.result.env_steps

    @property
    def final_eval_return(self) -> float:
        if self.result is None or self.result.evals.empty:
            return math.nan
        return float(self.result.evals["eval_return_mean"].iloc[-1])


class ResultsFolder(FolderLayout):
    """Where each file of a sweep's results lives (`analysis.schema.FolderLayout`), and what a
    rerun reads of it; reading only."""

    def read_rows(self) -> dict[str, dict[str, Any]]:
        """The rows of trials.parquet by trial id (none if there is no such file yet)."""
        if not self.trials_path.exists():
            return {}
        try:
            table = pd.read_parquet(self.trials_path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ResumeError(
                f"{self.trials_path} cannot be read as Parquet ({exc}), so the trials in "
                f"{self.root} cannot be matched; restore the file, or rerun with --fresh to "
                "start over (deletes these results), or give the spec a new name"
            ) from None
        missing = [name for name in TRIALS.required if name not in table.columns]
        if missing:
            raise ResumeError(
                f"{self.trials_path} lacks the column(s) {', '.join(missing)}, so the trials in "
                f"{self.root} cannot be matched; restore the file, or rerun with --fresh to "
                "start over (deletes these results), or give the spec a new name"
            )
        rows = {
            str(row["trial_id"]): {str(k): v for k, v in row.items()}
            for row in table.to_dict("records")
        }
        # A folder written before a setting existed ran every trial with its default.
        for row in rows.values():
            for key, default in ADDED_SETTINGS.items():
                if row.get(key) is None or row[key] != row[key] or row[key] == "nan":  # NaN != NaN
                    row[key] = setting_cell(key, default)
        return rows

    def complete_ids(self) -> set[str]:
        """Trials marked complete whose data files are all present."""
        return {
            trial_id
            for trial_id, row in self.read_rows().items()
            if row["status"] == "complete" and all(p.exists() for p in self.data_files(trial_id))
        }


class ResultsStore:
    """Writes one sweep's results folder as trials finish (one writer: the driver)."""

    def __init__(self, folder: ResultsFolder, order: Mapping[str, int]) -> None:
        self.folder = folder
        self._order = order
        self._rows = folder.read_rows()
        self.dropped: list[str] = []
        """Trials without results that `open` removed from the index (no longer in the spec)."""

    @classmethod
    def open(
        cls,
        folder: ResultsFolder,
        spec: SweepSpec,
        *,
        fresh: bool,
        run_info: Mapping[str, Any],
    ) -> ResultsStore:
        """Make the folder ready for a run; call only while holding its `FolderLock` and after
        the spec and resume checks passed.

        With `fresh`, an existing results folder is removed first (only one holding a
        spec.yaml: `check_resume` refuses anything else).
        """
        check_agent_tables()
        root = folder.root
        if fresh and folder.spec_path.exists():
            _remove_tree(root)
        made = not root.exists()
        try:
            return cls._open(folder, spec, run_info)
        except OSError:
            if made:  # a run that never started leaves nothing half-made behind
                with contextlib.suppress(OSError):
                    _remove_tree(root)
            raise

    @classmethod
    def _open(
        cls, folder: ResultsFolder, spec: SweepSpec, run_info: Mapping[str, Any]
    ) -> ResultsStore:
        root = folder.root
        root.mkdir(parents=True, exist_ok=True)
        remove_temp_files(root)
        # spec.yaml first: a folder holding it is a results folder, which a later run may resume
        # or clear with --fresh, wherever this one is stopped.
        write_bytes_atomic(folder.spec_path, spec.text.encode("utf-8"))
        for sub in (folder.episodes_dir, folder.evals_dir, folder.models_dir):
            sub.mkdir(exist_ok=True)
        store = cls(folder, {trial.trial_id: i for i, trial in enumerate(expand(spec))})
        # Rows of trials the spec no longer has (`check_resume` lets only those without results
        # go) leave the index, so that it describes the spec, and are kept in the manifest.
        gone = [row for trial_id, row in store._rows.items() if trial_id not in store._order]
        store.dropped = [str(row["trial_id"]) for row in gone]
        record: dict[str, Any] = {"started_at": now(), **run_info}
        if gone:
            keep = ("trial_id", "config", "seed", "status", "error")
            record["dropped_trials"] = [{k: _plain(row.get(k)) for k in keep} for row in gone]
        manifest = _read_json(folder.manifest_path)
        if manifest is None and folder.manifest_path.exists():
            # Damaged (a crash mid-write outside this code, a hand edit): kept beside the new one.
            folder.manifest_path.replace(root / "manifest.damaged.json")
        manifest = manifest or {"name": spec.name, "created_at": now()}
        manifest.setdefault("runs", []).append(record)
        write_bytes_atomic(folder.manifest_path, _json_bytes(manifest))
        if gone:
            for trial_id in store.dropped:
                del store._rows[trial_id]
            store._write_rows()
        return store

    def record(self, outcome: TrialOutcome) -> None:
        """Write a finished trial's data files, then its row in trials.parquet."""
        trial_id = outcome.spec.trial_id
        episodes_path, evals_path, model_path = self.folder.data_files(trial_id)
        result = outcome.result
        if result is not None:
            # Conformed to the contract: an empty table (no episode finished) would otherwise
            # store its text columns as nulls, which clash with the other files of the folder.
            write_parquet_atomic(
                EPISODES.conform(result.episodes, where=episodes_path), episodes_path
            )
            write_parquet_atomic(EVALS.conform(result.evals, where=evals_path), evals_path)
            save_weights(
                model_path,
                state_dict=result.state_dict,
                config=result.spec.agent,
                env_id=result.spec.env_id,
                obs_dim=result.obs_dim,
                n_actions=result.n_actions,
                obs_shape=result.obs_shape,
            )
        else:
            # A trial is recorded only if it was not complete (complete ones are never planned
            # again), so files here are of an earlier attempt whose row was never marked
            # complete (a killed driver): a failed trial must not leave episodes behind.
            for path in (episodes_path, evals_path, model_path):
                path.unlink(missing_ok=True)
        self._rows[trial_id] = trial_row(outcome)
        self._write_rows()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Close the manifest's record of this run with its end time and counts."""
        manifest = _read_json(self.folder.manifest_path) or {"runs": [{}]}
        manifest["runs"][-1].update({"finished_at": now(), **summary})
        write_bytes_atomic(self.folder.manifest_path, _json_bytes(manifest))

    def _write_rows(self) -> None:
        rows = sorted(self._rows.values(), key=lambda r: self._order.get(r["trial_id"], 1 << 30))
        path = self.folder.trials_path
        write_parquet_atomic(TRIALS.from_rows(rows, where=path), path)


def describe_os_error(error: OSError) -> str:
    """'<path>: <the operating system's reason>', e.g. 'out/x/trials.parquet: No space left on
    device'."""
    where = error.filename if error.filename is not None else "the results folder"
    return f"{where}: {error.strerror or error}"


def trial_row(outcome: TrialOutcome) -> dict[str, Any]:
    """The trials.parquet row of one trial: identity, status, figures, every setting."""
    spec = outcome.spec
    steps_per_s = outcome.env_steps / outcome.wall_s if outcome.wall_s > 0 else math.nan
    row: dict[str, Any] = {
        "trial_id": spec.trial_id,
        "config": spec.label,
        "hidden_sizes": hidden_sizes_text(spec.agent.hidden_sizes),
        "seed": spec.seed,
        "env_id": spec.env_id,
        "status": outcome.status,
        "error": outcome.error,
        "final_eval_return": outcome.final_eval_return,
        "n_episodes": 0 if outcome.result is None else len(outcome.result.episodes),
        "wall_s": outcome.wall_s,
        "group_size": outcome.group_size,
        "env_steps": outcome.env_steps,
        "env_steps_per_s": steps_per_s,
        "host": outcome.host,
        "node_id": outcome.node_id,
        "device": spec.device,
        "attempts": outcome.attempts,
        "finished_at": now(),
    }
    for key, value in spec.agent.to_dict().items():
        if key != "hidden_sizes":
            row[key] = setting_cell(key, value)
    row["budget_env_steps"] = spec.budget.env_steps
    row["budget_episodes"] = spec.budget.episodes
    row["eval_every_steps"] = spec.eval.every_steps
    row["eval_episodes"] = spec.eval.episodes
    return row


def setting_cell(key: str, value: Any) -> Any:
    """An agent setting as trials.parquet holds it: lists of sizes as text ('64x64'), and no
    channels (an MLP's, or a convolutional family's own) as ''."""
    if key in ("hidden_sizes", "channels"):
        return "" if value is None else hidden_sizes_text(value)
    return value


def agent_column_types() -> dict[str, str]:
    """The trials columns that `AgentConfig`'s fields call for (all but ``hidden_sizes``, an
    identity column), typed from their annotations; a None (e.g. no clipping) is missing."""
    return {
        key: _pandas_type(hint)
        for key, hint in typing.get_type_hints(AgentConfig).items()
        if key != "hidden_sizes"
    }


def _pandas_type(hint: Any) -> str:
    options = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    optional = type(None) in options
    if bool in options:
        return "boolean" if optional else "bool"
    if int in options:
        return "Int64" if optional else "int64"
    if float in options:
        return "float64"
    return "str"


def check_agent_tables() -> None:
    """Check that the agent's settings and tables are the ones `analysis.schema` declares (it
    cannot import dqn_agent): one column per `AgentConfig` field, of the type its annotation
    calls for; the meaning of absence of each setting in `ADDED_SETTINGS`; the columns of the
    episode and eval tables that training returns. Called before a run writes anything.

    Raises:
        SchemaError: naming each setting or column on which the two disagree.
    """
    problems = []
    declared = {column.name: column.dtype for column in AGENT_COLUMNS}
    wanted = agent_column_types()
    for key in [*wanted, *(k for k in declared if k not in wanted)]:
        if declared.get(key) != wanted.get(key):
            problems.append(
                f"agent setting {key!r}: AgentConfig calls for {wanted.get(key) or 'no column'}, "
                f"analysis.schema.AGENT_COLUMNS declares {declared.get(key) or 'none'}"
            )
    for key, default in ADDED_SETTINGS.items():
        if key in declared and TRIALS.column(key).fill != setting_cell(key, default):
            problems.append(
                f"agent setting {key!r}: a folder without it ran {default!r} (ADDED_SETTINGS), "
                f"but analysis.schema fills {TRIALS.column(key).fill!r}"
            )
    ids = len(IDENTITY_COLUMNS)
    for table, columns in ((EPISODES, EPISODE_COLUMNS), (EVALS, EVAL_COLUMNS)):
        declared_columns = dict(list(table.dtypes.items())[ids:])
        if declared_columns != columns:
            problems.append(
                f"{table.name}: training writes {columns}, analysis.schema declares "
                f"{declared_columns}"
            )
    if problems:
        problems.append("the results contract is analysis.schema: declare the change there")
        raise SchemaError(problems)


def _remove_tree(root: Path) -> None:
    if root.is_symlink():  # `check_resume` refuses it first; renaming would move only the link
        raise ResumeError(f"{root} is a symbolic link; --fresh does not clear through a link")
    # Rename first: a folder is either still whole or gone from its name, never half-deleted.
    doomed = root.with_name(f".{root.name}.deleting-{os.getpid()}")
    os.replace(root, doomed)
    shutil.rmtree(doomed)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _plain(value: Any) -> Any:
    """A table cell as a JSON value: numpy scalars become Python numbers, NaN None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
