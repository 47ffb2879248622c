"""The results folder of a sweep: what is written, in which order, and what a rerun may keep.

    results/<name>/
      spec.yaml                    the spec as given (the latest run's, byte for byte)
      manifest.json                provenance of every run: versions, git commit, host, Ray, times;
                                   rows of trials without results that a new spec dropped
      trials.parquet               one row per trial: id, hyperparameters, status, figures
      episodes/<trial_id>.parquet  one row per training episode
      evals/<trial_id>.parquet     one row per greedy evaluation
      models/<trial_id>.pt         final weights with their config

A run holds `FolderLock` (the file `.<name>.lock` beside the folder) from its resume check to
its end, so one run at a time writes a folder.

The file names, the tables' columns and dtypes and the atomic writer belong to
`analysis.schema`, which the analysis reads folders with; this module decides what is written
when. Every file is written under a temporary name and renamed, so a file that exists is whole.
A trial's data files are all written before trials.parquet marks it complete, so a driver killed
at any point leaves either a complete trial or one that a rerun trains again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib.metadata
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

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
from dqn_agent.training import EPISODE_COLUMNS, EVAL_COLUMNS
from sweeps.plan import expand
from sweeps.spec import InputError, SpecError, SweepSpec, load_spec

PACKAGES = ("torch", "gymnasium", "ray", "numpy", "pandas", "pyarrow", "dqn-sweeps")


class ResumeError(InputError):
    """The results folder holds trials that the new spec would change or drop (exit code 2)."""


class FolderInUseError(InputError):
    """Another run is writing the same results folder (exit code 2)."""


class FolderLock:
    """One writer per results folder: an exclusive lock, held from the resume check to the end
    of the run (a context manager).

    The lock is taken on a file beside the folder (`.<name>.lock`, in --out), not in it, so
    that `--fresh` can delete and recreate the folder while holding it. The operating system
    releases the lock if the process dies, so a killed run never leaves the folder locked. The
    file is removed at the end, and so is an --out folder the lock had to create, if nothing
    else was written there. `flock` locks are local to a machine: on a network file system,
    runs on two machines are not kept apart.
    """

    def __init__(self, root: Path) -> None:
        self.path = root.with_name(f".{root.name}.lock")
        self._made = [p for p in [root.parent, *root.parent.parents] if not p.exists()]
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._acquire(root)
        except OSError as exc:
            self._remove_made()
            raise ResumeError(f"{root}: cannot lock the results folder ({exc})") from None

    def _acquire(self, root: Path) -> typing.TextIO:
        while True:
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "another process"
                file.close()
                self._remove_made()
                raise FolderInUseError(
                    f"{root}: another run is writing this results folder ({holder}); wait for "
                    "it to finish or stop it, or give this run another --out"
                ) from None
            except BaseException:
                file.close()
                raise
            # A run that was releasing the lock may have removed the file we opened: then the
            # lock we hold is on a file no one else can find. Take it again on the new file.
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
                break
            file.close()
        file.truncate(0)
        file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        return file

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self._file.close()  # closing the file releases the lock
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in self._made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (results in it) or gone: keep it

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class TrialOutcome:
    """What a task hands back for one trial: plain, picklable data; the driver writes the files."""

    spec: TrialSpec
    status: Literal["complete", "failed"]
    error: str = ""
    """Message and traceback of a failed trial; empty when complete."""
    episodes: pd.DataFrame | None = None
    evals: pd.DataFrame | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    obs_dim: int = 0
    n_actions: int = 0
    wall_s: float = math.nan
    """Seconds the task that trained the trial took: shared by the `group_size` seeds in it."""
    group_size: int = 1
    """Seeds of the configuration trained together with this one, in one task (itself included)."""
    env_steps: int = 0
    host: str = ""
    node_id: str = ""
    attempts: int = 1
    """Times Ray started the task (more than 1 after a worker process died)."""

    @property
    def final_eval_return(self) -> float:
        if self.evals is None or self.evals.empty:
            return math.nan
        return float(self.evals["eval_return_mean"].iloc[-1])


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
        rows = {
            str(row["trial_id"]): {str(k): v for k, v in row.items()}
            for row in table.to_dict("records")
        }
        # A folder written before a setting existed ran every trial with its default.
        for row in rows.values():
            for key, default in ADDED_SETTINGS.items():
                if row.get(key) is None or _is_nan(row[key]) or row[key] == "nan":
                    row[key] = default
        return rows

    def complete_ids(self) -> set[str]:
        """Trials marked complete whose data files are all present."""
        return {
            trial_id
            for trial_id, row in self.read_rows().items()
            if row["status"] == "complete" and all(p.exists() for p in self.data_files(trial_id))
        }


def check_writable(root: Path) -> None:
    """Refuse, before anything is written, a results folder that could not be written: one
    that is a file, or lies in one, or where permission is lacking (for it or for its lock)."""
    if not root.exists():
        _check_can_create(root)
        return
    if not root.is_dir():
        raise ResumeError(f"{root} exists and is not a folder; choose another --out")
    if not os.access(root, os.W_OK | os.X_OK) or not os.access(root.parent, os.W_OK | os.X_OK):
        raise ResumeError(f"{root}: no permission to write there; choose another --out")


def _check_can_create(root: Path) -> None:
    parent = root.parent
    while not parent.exists():  # the folders `mkdir -p` would make
        parent = parent.parent
    if not parent.is_dir():
        raise ResumeError(f"--out: {parent} is a file, not a folder; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ResumeError(
            f"--out: no permission to create folders in {parent}; choose another --out"
        )


def check_resume(folder: ResultsFolder, spec: SweepSpec, *, fresh: bool) -> set[str]:
    """Check that running `spec` into `folder` keeps every trial there; reads, never writes.

    A rerun may add seeds, grid values or variants; it may not change or drop a trial that has
    results in the folder (a new shared hyperparameter, budget, eval or env changes them all),
    since the folder's spec.yaml must describe every result it holds. Trials without results
    (failed, or never run) may be dropped: `ResultsStore.open` then moves their rows from
    trials.parquet to the manifest. Returns the ids of complete trials.
    """
    root = folder.root
    check_writable(root)
    if not root.exists():
        return set()
    if not folder.spec_path.exists():
        if any(not name.startswith(".") for name in os.listdir(root)):
            raise ResumeError(
                f"{root} is not empty and holds no spec.yaml, so it is not a dqn-sweep results "
                "folder; choose another --out or sweep name (--fresh never deletes such a folder)"
            )
        return set()
    if fresh:
        return set()
    try:
        stored = load_spec(folder.spec_path)
    except SpecError as exc:
        raise ResumeError(
            f"{exc}\nthe spec stored in {root} no longer checks, so its trials cannot be matched; "
            "rerun with --fresh to start over, or give the spec a new name"
        ) from None
    rows = folder.read_rows()
    complete = folder.complete_ids()
    new = {trial.trial_id: trial.label for trial in expand(spec)}
    old = {trial.trial_id: trial.label for trial in expand(stored)}
    old.update({trial_id: str(row["config"]) for trial_id, row in rows.items()})
    stale = [t for t, label in old.items() if t in complete and new.get(t) != label]
    if stale:
        raise ResumeError(_refusal(root, stored, spec, stale, rows, old, new))
    return complete


def _refusal(
    root: Path,
    stored: SweepSpec,
    spec: SweepSpec,
    stale: Sequence[str],
    rows: Mapping[str, Mapping[str, Any]],
    old: Mapping[str, str],
    new: Mapping[str, str],
) -> str:
    changes = diff(stored.describe(), spec.describe())
    if not changes:
        # Same spec, other ids: the agent's defaults (or the id scheme) changed since the run.
        changes = ["(no key of the spec changed: the trials were made with other agent defaults)"]
        changes += _row_changes(spec, [rows[t] for t in stale if t in rows][:1])
    dropped = sorted(t for t in stale if t not in new)
    relabelled = sorted(t for t in stale if t in new)
    lines = [
        f"{root}: refusing to run {spec.source}: it would change trials already in this folder.",
        f"What changed ({root / 'spec.yaml'} -> {spec.source}):",
        *(f"  {line}" for line in changes),
    ]
    if dropped:
        lines.append(
            f"{len(dropped)} trial(s) with results in this folder are not in the new spec "
            f"(e.g. {', '.join(dropped[:3])}); trials without results (failed, or not run yet) "
            "may be dropped."
        )
    if relabelled:
        t = relabelled[0]
        lines.append(
            f"{len(relabelled)} trial(s) would keep their settings but change label, which is "
            f"written in the folder's files ({old[t]!r} -> {new[t]!r}): a new grid axis or the "
            "first variants relabel every trial."
        )
    lines += [
        "To proceed: rerun with --fresh to start over in an empty folder (deletes these results),",
        "or give the spec a new `name` to keep both sweeps.",
    ]
    return "\n".join(lines)


def _row_changes(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    by_label = {point.label: point.agent for point in spec.configs}
    lines = []
    for row in rows:
        agent = by_label.get(str(row["config"]))
        if agent is None:
            continue
        for key, value in agent.to_dict().items():
            stored = row.get(key)
            if key == "hidden_sizes":
                value = hidden_sizes_text(value)
            elif value is None:
                value = math.nan
            if stored != value and not (_is_nan(stored) and _is_nan(value)):
                lines.append(f"agent.{key}: {stored!r} in trials.parquet -> {value!r} now")
    return lines


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def diff(old: object, new: object, path: str = "") -> list[str]:
    """Key paths where two plain-data trees differ, as 'path: old -> new' lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{sub}: {old[key]!r} -> (removed)")
            elif key not in old:
                lines.append(f"{sub}: (absent) -> {new[key]!r}")
            else:
                lines += diff(old[key], new[key], sub)
        return lines
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


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
        if outcome.status == "complete":
            assert outcome.episodes is not None and outcome.evals is not None
            assert outcome.state_dict is not None
            # Conformed to the contract: an empty table (no episode finished) would otherwise
            # store its text columns as nulls, which clash with the other files of the folder.
            write_parquet_atomic(
                EPISODES.conform(outcome.episodes, where=episodes_path), episodes_path
            )
            write_parquet_atomic(EVALS.conform(outcome.evals, where=evals_path), evals_path)
            save_weights(
                model_path,
                state_dict=outcome.state_dict,
                config=outcome.spec.agent,
                env_id=outcome.spec.env_id,
                obs_dim=outcome.obs_dim,
                n_actions=outcome.n_actions,
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
        "n_episodes": 0 if outcome.episodes is None else len(outcome.episodes),
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
            row[key] = value
    row["budget_env_steps"] = spec.budget.env_steps
    row["budget_episodes"] = spec.budget.episodes
    row["eval_every_steps"] = spec.eval.every_steps
    row["eval_episodes"] = spec.eval.episodes
    return row


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
        if key in declared and TRIALS.column(key).fill != default:
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


def now() -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def provenance(command: Sequence[str]) -> dict[str, Any]:
    """Where and with what a run happens: package versions, git commit, host, Python."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "command": list(command),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": versions,
        **_git_state(Path(__file__).resolve().parent),
    }


def _git_state(where: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
