"""The results folder: atomic files, data before the index, what a rerun may keep or must refuse."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis.schema import check_folder, write_atomic, write_bytes_atomic
from dqn_agent import load
from sweeps.cli import EXIT_BAD_INPUT, main
from sweeps.lock import FolderInUseError, FolderLock
from sweeps.plan import expand
from sweeps.provenance import provenance
from sweeps.resume import check_resume
from sweeps.spec import SweepSpec, parse_spec
from sweeps.store import ResultsFolder, ResultsStore, ResumeError, TrialOutcome
from sweeps.task import run_unit

SPEC = """\
name: store
env: CartPole-v1
seeds: 2
budget: {env_steps: 200}
eval: {every_steps: 100, episodes: 1}
agent:
  lr: 0.001
  batch_size: 16
  buffer_size: 200
  learning_starts: 50
  train_every: 4
  gradient_steps: 1
grid:
  hidden_sizes: [[16], [8]]
"""


def _spec(text: str = SPEC) -> SweepSpec:
    return parse_spec(text, source="spec.yaml", check_env=False)


@pytest.fixture(scope="module")
def outcomes() -> list[TrialOutcome]:
    """Real outcomes of the four tiny trials, trained in this process (no Ray needed)."""
    return [o for trial in expand(_spec()) for o in run_unit([trial], 1, None)]


def _store(root: Path, spec: SweepSpec) -> ResultsStore:
    return ResultsStore.open(ResultsFolder(root), spec, fresh=False, run_info={})


def _hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*")]


def test_a_recorded_trial_has_its_files_and_row(
    tmp_path: Path, outcomes: list[TrialOutcome]
) -> None:
    store = _store(tmp_path, _spec())
    for outcome in outcomes:
        store.record(outcome)
    folder = ResultsFolder(tmp_path)
    trials = pd.read_parquet(folder.trials_path)
    assert list(trials["trial_id"]) == [t.trial_id for t in expand(_spec())]
    assert set(trials["status"]) == {"complete"}
    assert {"lr", "gamma", "double", "max_grad_norm", "budget_env_steps", "node_id"} <= set(
        trials.columns
    )
    assert list(trials["hidden_sizes"]) == ["16", "16", "8", "8"]
    for row, outcome in zip(trials.itertuples(), outcomes, strict=True):
        assert outcome.result is not None
        assert row.final_eval_return == outcome.result.evals["eval_return_mean"].iloc[-1]
        assert row.env_steps == 200 and row.wall_s == outcome.wall_s > 0
        assert row.env_steps_per_s == pytest.approx(200 / outcome.wall_s)
    episodes = pd.read_parquet(folder.episodes_dir)
    assert set(episodes["trial_id"]) == set(trials["trial_id"])
    assert not episodes.duplicated(["trial_id", "episode"]).any()
    policy = load(folder.data_files(outcomes[0].spec.trial_id)[2])
    assert policy.config == outcomes[0].spec.agent
    assert (tmp_path / "spec.yaml").read_text() == SPEC
    assert _hidden_files(tmp_path) == []
    check_folder(tmp_path, strict=True)  # every column of the contract, with its dtype


def test_the_folder_reads_at_once_when_some_trials_finished_no_episode(tmp_path: Path) -> None:
    """16 env steps: seeds 0-4 end no CartPole episode, seed 5 ends one, and the first file in
    the folder's order is one without. Its numeric columns were once stored as nulls, and
    pyarrow, reading the folder with the first file's schema, refused the others ("Unsupported
    cast from double to null")."""
    spec = _spec(
        SPEC.replace("seeds: 2", "seeds: 6")
        .replace("env_steps: 200", "env_steps: 16")
        .replace("every_steps: 100", "every_steps: 16")
        .replace("learning_starts: 50", "learning_starts: 4")
        .replace("hidden_sizes: [[16], [8]]", "hidden_sizes: [[8]]")
    )
    store = _store(tmp_path, spec)
    lengths = {}
    for trial in expand(spec):
        for outcome in run_unit([trial], 1, None):
            assert outcome.result is not None
            lengths[trial.trial_id] = len(outcome.result.episodes)
            store.record(outcome)
    assert lengths[min(lengths)] == 0 and sum(lengths.values()) > 0  # the case named above
    episodes = pd.read_parquet(ResultsFolder(tmp_path).episodes_dir)
    assert len(episodes) == sum(lengths.values())
    assert episodes["episode_return"].dtype == "float64"
    check_folder(tmp_path, strict=True)


def test_the_row_waits_for_the_data_files(
    tmp_path: Path, outcomes: list[TrialOutcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    store = _store(tmp_path, _spec())
    monkeypatch.setattr("sweeps.store.save_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        store.record(outcomes[0])
    folder = ResultsFolder(tmp_path)
    assert not folder.trials_path.exists()
    assert folder.complete_ids() == set()
    assert _hidden_files(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    write_bytes_atomic(target, b"old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, half_then_crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_readers_of_the_folder_skip_temporary_files(
    tmp_path: Path, outcomes: list[TrialOutcome]
) -> None:
    store = _store(tmp_path, _spec())
    store.record(outcomes[0])
    episodes_dir = ResultsFolder(tmp_path).episodes_dir
    expected = pd.read_parquet(episodes_dir)
    # What a killed writer leaves: a half-written file under the temporary name.
    (episodes_dir / f".{outcomes[1].spec.trial_id}.parquet.999.tmp").write_bytes(b"PAR1 torn")
    pd.testing.assert_frame_equal(pd.read_parquet(episodes_dir), expected)
    # ... and the next run clears it away.
    _store(tmp_path, _spec())
    assert _hidden_files(tmp_path) == []


def test_one_run_at_a_time_writes_a_folder(
    tmp_path: Path, outcomes: list[TrialOutcome], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    first = FolderLock(out / "store")
    _store(out / "store", _spec()).record(outcomes[0])
    before = {p: p.read_bytes() for p in (out / "store").rglob("*") if p.is_file()}
    with pytest.raises(FolderInUseError) as caught:
        FolderLock(out / "store")
    assert str(out / "store") in str(caught.value)
    assert f"process {os.getpid()}" in str(caught.value) and "--out" in str(caught.value)
    # Through the command line, not even --fresh: exit code 2, before Ray starts.
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--out", str(out), "--fresh"]) == EXIT_BAD_INPUT
    assert "another run is writing this results folder" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in (out / "store").rglob("*") if p.is_file()}
    assert after == before
    first.release()
    with FolderLock(out / "store"):  # free once the first run is over
        pass
    assert [p.name for p in out.iterdir()] == ["store"]  # the lock file went with the run


def test_a_lock_that_finds_nothing_to_do_leaves_nothing_behind(tmp_path: Path) -> None:
    with FolderLock(tmp_path / "new" / "deeper" / "store"):
        assert (tmp_path / "new" / "deeper" / ".store.lock").exists()
    assert list(tmp_path.iterdir()) == []  # the folders it made for its file are gone too


def test_a_failed_trial_is_a_row_with_its_error(
    tmp_path: Path, outcomes: list[TrialOutcome]
) -> None:
    store = _store(tmp_path, _spec())
    store.record(outcomes[0])
    failed = TrialOutcome(spec=outcomes[1].spec, status="failed", error="ValueError: boom\n...")
    store.record(failed)
    trials = pd.read_parquet(ResultsFolder(tmp_path).trials_path).set_index("trial_id")
    row = trials.loc[failed.spec.trial_id]
    assert (row["status"], row["error"]) == ("failed", "ValueError: boom\n...")
    assert pd.isna(row["final_eval_return"]) and pd.isna(row["wall_s"])
    assert trials.loc[outcomes[0].spec.trial_id, "error"] == ""
    assert not ResultsFolder(tmp_path).data_files(failed.spec.trial_id)[0].exists()
    check_folder(tmp_path, strict=True)


def test_no_clipping_is_stored_as_missing(tmp_path: Path, outcomes: list[TrialOutcome]) -> None:
    agent = dataclasses.replace(outcomes[0].spec.agent, max_grad_norm=None)
    spec = dataclasses.replace(outcomes[0].spec, agent=agent)
    store = _store(tmp_path, _spec())
    store.record(TrialOutcome(spec=spec, status="failed", error="x"))
    trials = pd.read_parquet(ResultsFolder(tmp_path).trials_path)
    assert trials["max_grad_norm"].dtype == "float64" and trials["max_grad_norm"].isna().all()


@pytest.fixture
def folder(tmp_path: Path, outcomes: list[TrialOutcome]) -> ResultsFolder:
    """A results folder holding the four complete trials of SPEC."""
    store = _store(tmp_path / "store", _spec())
    for outcome in outcomes:
        store.record(outcome)
    return ResultsFolder(tmp_path / "store")


def test_the_same_spec_keeps_every_complete_trial(folder: ResultsFolder) -> None:
    assert check_resume(folder, _spec(), fresh=False) == {t.trial_id for t in expand(_spec())}


def test_added_seeds_and_grid_values_are_welcome(folder: ResultsFolder) -> None:
    bigger = SPEC.replace("seeds: 2", "seeds: 3").replace("[[16], [8]]", "[[16], [8], [4]]")
    assert len(check_resume(folder, _spec(bigger), fresh=False)) == 4


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("lr: 0.001", "lr: 0.002", "agent.lr: 0.001 -> 0.002"),
        ("{env_steps: 200}", "{env_steps: 400}", "budget.env_steps: 200 -> 400"),
        ("{every_steps: 100, episodes: 1}", "{every_steps: 50, episodes: 1}", "eval.every_steps"),
        ("seeds: 2", "seeds: [1]", "seeds: [0, 1] -> [1]"),
        ("[[16], [8]]", "[[16]]", "grid.hidden_sizes: [[16], [8]] -> [[16]]"),
    ],
)
def test_a_change_to_trials_in_the_folder_is_refused(
    folder: ResultsFolder, old: str, new: str, named: str
) -> None:
    assert old in SPEC
    with pytest.raises(ResumeError) as caught:
        check_resume(folder, _spec(SPEC.replace(old, new)), fresh=False)
    message = str(caught.value)
    assert named in message
    assert "--fresh" in message and "new `name`" in message


def test_trials_without_results_may_leave_the_spec(
    tmp_path: Path, outcomes: list[TrialOutcome]
) -> None:
    # [16] trained; every [8] trial failed (say, a buffer too large to allocate).
    store = _store(tmp_path / "store", _spec())
    wide, narrow = outcomes[:2], outcomes[2:]
    for outcome in wide:
        store.record(outcome)
    for outcome in narrow:
        store.record(dataclasses.replace(outcome, status="failed", error="MemoryError: big"))
    folder = ResultsFolder(tmp_path / "store")
    without_8 = _spec(SPEC.replace("[[16], [8]]", "[[16]]"))
    assert check_resume(folder, without_8, fresh=False) == {o.spec.trial_id for o in wide}
    kept = ResultsStore.open(folder, without_8, fresh=False, run_info={})
    gone = [o.spec.trial_id for o in narrow]
    assert kept.dropped == gone
    trials = pd.read_parquet(folder.trials_path)
    assert list(trials["trial_id"]) == [o.spec.trial_id for o in wide]  # the index fits the spec
    # ... and the failed rows are kept in the manifest, with their errors.
    record = json.loads(folder.manifest_path.read_text())["runs"][-1]["dropped_trials"]
    assert [r["trial_id"] for r in record] == gone
    assert {(r["status"], r["error"], r["config"]) for r in record} == {
        ("failed", "MemoryError: big", "hidden_sizes=8")
    }
    assert [r["seed"] for r in record] == [0, 1]
    # Trials with results may not leave: back to [[8]] would drop both [16] trials.
    with pytest.raises(ResumeError, match=r"2 trial\(s\) with results in this folder are not in"):
        check_resume(folder, _spec(SPEC.replace("[[16], [8]]", "[[8]]")), fresh=False)


def test_seeds_added_by_a_run_stopped_before_they_trained_may_go_again(
    folder: ResultsFolder,
) -> None:
    # A run of `seeds: 3` stored its spec and was stopped before seed 2 trained anything.
    three = _spec(SPEC.replace("seeds: 2", "seeds: 3"))
    ResultsStore.open(folder, three, fresh=False, run_info={})
    assert len(check_resume(folder, _spec(), fresh=False)) == 4
    assert ResultsStore.open(folder, _spec(), fresh=False, run_info={}).dropped == []


def test_a_damaged_index_is_an_input_error_naming_it(folder: ResultsFolder) -> None:
    folder.trials_path.write_bytes(b"PAR1 not really")
    with pytest.raises(ResumeError, match=r"trials\.parquet cannot be read as Parquet.*--fresh"):
        check_resume(folder, _spec(), fresh=False)


def test_a_damaged_manifest_is_kept_beside_the_new_one(folder: ResultsFolder) -> None:
    folder.manifest_path.write_text('{"runs": [{"started_at": "2026')  # cut short
    ResultsStore.open(folder, _spec(), fresh=False, run_info={})
    assert (folder.root / "manifest.damaged.json").read_text().endswith('"2026')
    assert len(json.loads(folder.manifest_path.read_text())["runs"]) == 1


def test_first_variants_would_relabel_the_trials_and_are_refused(folder: ResultsFolder) -> None:
    with_variants = _spec(SPEC + "variants: {plain: {}, dueling: {dueling: true}}\n")
    plain = {t.trial_id for t in expand(with_variants) if t.label.startswith("plain,")}
    assert plain == {t.trial_id for t in expand(_spec())}  # the same trials, other labels
    with pytest.raises(ResumeError) as caught:
        check_resume(folder, with_variants, fresh=False)
    message = str(caught.value)
    assert "4 trial(s) would keep their settings but change label" in message
    assert re.search(r"'hidden_sizes=(\d+)' -> 'plain,hidden_sizes=\1'", message)
    assert "not in the new spec" not in message  # none is dropped


def test_fresh_ignores_the_old_trials(folder: ResultsFolder) -> None:
    changed = _spec(SPEC.replace("lr: 0.001", "lr: 0.002"))
    assert check_resume(folder, changed, fresh=True) == set()
    ResultsStore.open(folder, changed, fresh=True, run_info={})
    assert not folder.trials_path.exists()
    assert list(folder.episodes_dir.iterdir()) == []
    assert folder.spec_path.read_text() == changed.text


def test_an_out_that_cannot_hold_folders_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    for out in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "deeper"):
        with pytest.raises(ResumeError, match=r"notes\.txt is a file, not a folder.*--out"):
            check_resume(ResultsFolder(out / "store"), _spec(), fresh=False)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_a_folder_of_something_else_is_never_touched(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "thesis.tex").write_text("precious")
    for fresh in (False, True):
        with pytest.raises(ResumeError, match="not a dqn-sweep results folder"):
            check_resume(ResultsFolder(tmp_path / "store"), _spec(), fresh=fresh)
    assert check_resume(ResultsFolder(tmp_path / "absent"), _spec(), fresh=False) == set()


def test_trials_made_with_other_agent_defaults_are_refused(folder: ResultsFolder) -> None:
    # As if dqn_agent's defaults had changed since the run: same spec, other ids in the index.
    trials = pd.read_parquet(folder.trials_path)
    made = "0123456789ab"
    for before, after in zip(
        folder.data_files(str(trials.loc[0, "trial_id"])), folder.data_files(made), strict=True
    ):
        before.rename(after)  # results under that id
    trials.loc[0, "trial_id"] = made
    trials.loc[0, "lr"] = 0.5
    trials.to_parquet(folder.trials_path, index=False)
    with pytest.raises(ResumeError) as caught:
        check_resume(folder, _spec(), fresh=False)
    assert "no key of the spec changed" in str(caught.value)
    assert "agent.lr: 0.5 in trials.parquet -> 0.001 now" in str(caught.value)


def test_the_manifest_names_the_code_that_ran(tmp_path: Path) -> None:
    facts = provenance(["dqn-sweep", "run", "spec.yaml"])
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:  # an installed copy without its git history
        assert facts["git_commit"] is None and facts["git_dirty"] is None
        return
    assert facts["git_commit"] == head.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    )
    assert facts["git_dirty"] == bool(dirty.stdout.strip())
    assert facts["command"] == ["dqn-sweep", "run", "spec.yaml"]
    assert facts["packages"]["torch"] == torch.__version__
