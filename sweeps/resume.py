"""What a rerun may keep: the checks of a results folder against a spec, made before anything
is written. A rerun may add trials; it may not change or drop a trial that has results."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeps.plan import expand
from sweeps.spec import SpecError, SweepSpec, load_spec
from sweeps.store import ResultsFolder, ResumeError, setting_cell


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


def check_resume(
    folder: ResultsFolder, spec: SweepSpec, *, fresh: bool, allow_env_imports: bool = False
) -> set[str]:
    """Check that running `spec` into `folder` keeps every trial there; reads, never writes.

    A rerun may add seeds, grid values or variants; it may not change or drop a trial that has
    results in the folder (a new shared hyperparameter, budget, eval or env changes them all),
    since the folder's spec.yaml must describe every result it holds. Trials without results
    (failed, or never run) may be dropped: `ResultsStore.open` then moves their rows from
    trials.parquet to the manifest. Returns the ids of complete trials. `allow_env_imports`
    accepts a stored spec whose env imports a module (`sweeps.spec.load_spec`).
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
        if root.is_symlink():
            # Clearing renames the folder away first: that would move the link, not the results.
            raise ResumeError(
                f"{root} is a symbolic link (to {os.path.realpath(root)}); --fresh refuses to "
                "clear a folder through a link: delete its results yourself, or give --out "
                "a folder that is not a link"
            )
        return set()
    try:
        stored = load_spec(folder.spec_path, allow_env_imports=allow_env_imports)
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
    by_label = {
        (part.env_id, point.label): point.agent for part in spec.envs for point in part.configs
    }
    lines = []
    for row in rows:
        agent = by_label.get((str(row["env_id"]), str(row["config"])))
        if agent is None:
            continue
        for key, value in agent.to_dict().items():
            stored = row.get(key)
            if key in ("hidden_sizes", "channels"):
                value = setting_cell(key, value)
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
