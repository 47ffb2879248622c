"""Running sweeps on Ray: results read back whole, reruns resume, changes are refused or fresh."""

from __future__ import annotations

import functools
import io
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from dqn_agent import Progress, TrialResult, TrialSpec, train_group
from sweeps.cli import main
from sweeps.display import LiveDisplay
from sweeps.plan import expand, make_plan
from sweeps.progress import read_board, start_board
from sweeps.runner import RunOptions, run_sweep
from sweeps.session import _check_cuda, _check_reachable
from sweeps.spec import InputError, Resources, load_spec, parse_spec
from sweeps.store import TrialOutcome
from sweeps.task import run_unit
from tests.conftest import TINY_SPEC, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_instance")]  # Ray, training

SPEC = TINY_SPEC


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root` with its bytes and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder in which the tiny sweep ran to the end (copy it before changing it)."""
    where = tmp_path_factory.mktemp("finished")
    assert main(["run", str(write_spec(where, SPEC)), "--out", str(where / "results")]) == 0
    return where


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path / "copy")  # copy2 keeps modification times
    return tmp_path / "copy"


def test_a_run_leaves_complete_readable_results(finished: Path) -> None:
    folder = finished / "results" / "tiny"
    spec = load_spec(finished / "spec.yaml")
    ids = [t.trial_id for t in expand(spec)]
    trials = pd.read_parquet(folder / "trials.parquet")
    assert list(trials["trial_id"]) == ids
    assert set(trials["status"]) == {"complete"}
    assert (trials["env_steps"] == 300).all() and (trials["attempts"] == 1).all()
    episodes = pd.read_parquet(folder / "episodes")
    evals = pd.read_parquet(folder / "evals")
    assert set(episodes["trial_id"]) == set(ids) == set(evals["trial_id"])
    for _, rows in episodes.groupby("trial_id"):
        assert sorted(rows["episode"]) == list(range(len(rows)))
    assert set(evals["env_step"]) == {0, 150, 300}
    assert (folder / "spec.yaml").read_bytes() == (finished / "spec.yaml").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    run = manifest["runs"][0]
    assert run["packages"]["ray"] == ray.__version__
    assert run["ray"]["cluster_resources"]["CPU"] == 2
    assert run["finished_at"] >= run["started_at"] and run["failed"] == []
    assert not [p for p in folder.rglob(".*")]


def test_a_rerun_trains_nothing_and_changes_nothing(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(copy / "results")
    assert main(["run", str(copy / "spec.yaml"), "--out", str(copy / "results")]) == 0
    assert "4 already complete, 0 to train" in capsys.readouterr().out
    assert _snapshot(copy / "results") == before


@pytest.mark.parametrize("quiet", [False, True])
def test_added_seeds_train_only_the_new_trials(
    quiet: bool, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(copy / "results" / "tiny" / "episodes")
    spec = write_spec(copy, SPEC.replace("seeds: 2", "seeds: 3"))
    quietly = ["--quiet"] if quiet else []
    assert main(["run", str(spec), "--out", str(copy / "results"), *quietly]) == 0
    out = capsys.readouterr().out
    assert "4 already complete, 2 to train" in out
    # The new seed of each configuration, one task each on the 2 CPUs, with the planner's guess.
    plan_line = "2 tasks of 1 seed, 2 at a time; estimated training time under 1 s"
    assert (plan_line in out) is not quiet
    after = _snapshot(copy / "results" / "tiny" / "episodes")
    assert {k: after[k] for k in before} == before
    assert len(after) == 6
    trials = pd.read_parquet(copy / "results" / "tiny" / "trials.parquet")
    assert sorted(trials["seed"]) == [0, 0, 1, 1, 2, 2]
    assert (copy / "results" / "tiny" / "spec.yaml").read_text() == spec.read_text()


def test_a_changed_shared_hyperparameter_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(copy / "results")
    spec = write_spec(copy, SPEC.replace("lr: 0.001", "lr: 0.002"))
    assert main(["run", str(spec), "--out", str(copy / "results")]) == 2
    err = capsys.readouterr().err
    assert "agent.lr: 0.001 -> 0.002" in err
    assert "--fresh" in err
    assert _snapshot(copy / "results") == before


def test_fresh_starts_over(copy: Path) -> None:
    spec = write_spec(copy, SPEC.replace("lr: 0.001", "lr: 0.002"))
    assert main(["run", str(spec), "--out", str(copy / "results"), "--fresh"]) == 0
    trials = pd.read_parquet(copy / "results" / "tiny" / "trials.parquet")
    assert list(trials["trial_id"]) == [t.trial_id for t in expand(load_spec(spec))]
    assert (trials["lr"] == 0.002).all()
    assert len(list((copy / "results" / "tiny" / "episodes").iterdir())) == 4


def test_fresh_with_a_bad_spec_deletes_nothing(copy: Path) -> None:
    before = _snapshot(copy / "results")
    spec = write_spec(copy, SPEC.replace("lr: 0.001", "lr: -1"))
    assert main(["run", str(spec), "--out", str(copy / "results"), "--fresh"]) == 2
    assert _snapshot(copy / "results") == before


def test_grouped_seeds_give_the_same_results(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "alone"
    assert main(["run", str(finished / "spec.yaml"), "--out", str(out), "--group-size", "1"]) == 0

    def units(folder: Path) -> list[int]:
        return list(json.loads((folder / "manifest.json").read_text())["runs"][-1]["units"])

    # The same trials, trained in different groupings: the default plan trains both seeds of
    # each configuration in one task on this 2-CPU Ray instance.
    assert units(finished / "results" / "tiny") == [2, 2] and units(out / "tiny") == [1] * 4
    for folder, size in ((finished / "results" / "tiny", 2), (out / "tiny", 1)):
        assert (pd.read_parquet(folder / "trials.parquet")["group_size"] == size).all()
    grouped = pd.read_parquet(finished / "results" / "tiny" / "evals")
    alone = pd.read_parquet(out / "tiny" / "evals")
    columns = ["trial_id", "env_step", "eval_return_mean", "episodes_done"]
    key = ["trial_id", "env_step"]
    pd.testing.assert_frame_equal(
        alone[columns].sort_values(key, ignore_index=True),
        grouped[columns].sort_values(key, ignore_index=True),
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_progress_display(tmp_path: Path) -> None:
    terminal = _Terminal()
    options = RunOptions(out=tmp_path / "out", stream=terminal)
    report = run_sweep(load_spec(write_spec(tmp_path, SPEC)), options)
    assert report.exit_code == 0
    shown = terminal.getvalue()
    assert "trials 4/4" in shown and "1,200/1,200 steps" in shown  # 4 trials x 300 steps
    assert "/s ETA" in shown and "failed 0" in shown
    assert "[1/4] complete" not in shown  # the log lines are for pipes, not terminals


def _hold_after_first_report(
    gate: Path,
    specs: Sequence[TrialSpec],
    *,
    progress: Callable[[Progress], None] | None = None,
) -> list[TrialResult]:
    """Training that, once it has reported some env steps (more than none), writes how many to
    `gate/reported` and waits for the test to create `gate/go`: the test reads the board while
    the task is surely still training. A module-level function, so Ray's workers import it."""
    held = False

    def report(done: Progress) -> None:
        nonlocal held
        if progress is not None:
            progress(done)
        if not held and done.env_step > 0:
            held = True
            (gate / "reported.tmp").write_text(str(done.env_step))
            (gate / "reported.tmp").replace(gate / "reported")  # whole, or not there yet
            deadline = time.monotonic() + 300
            while not (gate / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    return train_group(specs, progress=report)


def _wait_for_board(board: object, expected: dict[str, int]) -> None:
    """Reports are posted without waiting: give the board time to hear one already sent."""
    deadline = time.monotonic() + 60
    while (seen := read_board(board)) != expected:
        assert time.monotonic() < deadline, f"the board shows {seen}, not {expected}"
        time.sleep(0.01)


def test_a_task_reports_its_env_steps_while_it_trains(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC.replace("env_steps: 300", "env_steps: 2500")))
    unit = make_plan(spec, group_size=2).units[0]
    task = unit[0].trial_id
    board = start_board()
    gate = tmp_path / "gate"
    gate.mkdir()
    train = functools.partial(_hold_after_first_report, gate)
    ref = ray.remote(run_unit).remote(unit, 1, board, train)
    deadline = time.monotonic() + 300
    while not (gate / "reported").exists():
        assert not ray.wait([ref], timeout=0.05)[0], "the task ended before it reported"
        assert time.monotonic() < deadline, "the task reported nothing in time"
    # The task is held after its first report: the board hears it before the task ends.
    steps = int((gate / "reported").read_text())
    assert 0 < steps < 2500
    _wait_for_board(board, {task: 2 * steps})  # agent-env steps: 2 seeds
    (gate / "go").touch()
    assert [o.status for o in ray.get(ref)] == ["complete", "complete"]
    _wait_for_board(board, {task: 2 * 2500})  # and at the end, 2 seeds x 2,500 steps
    ray.kill(board)


def test_a_task_uses_as_many_torch_threads_as_cores_it_reserved() -> None:
    threads: list[int] = []

    def spy(specs: Sequence[TrialSpec], *, progress: object = None) -> list[TrialResult]:
        threads.append(torch.get_num_threads())
        return []

    trial = expand(parse_spec(SPEC))[0]
    before = torch.get_num_threads()
    try:
        for cpus in (2.0, 2.5, 0.5):
            run_unit([trial], cpus, train=spy)
    finally:
        torch.set_num_threads(before)
    assert threads == [2, 2, 1]  # whole cores, at least one


def test_the_live_display_counts_the_steps_of_running_tasks() -> None:
    display = LiveDisplay(2, 600, _Terminal())
    display.update(running=2, steps=250)
    assert display.progress.tasks[0].completed == 250
    spec = parse_spec(SPEC)
    first = TrialOutcome(spec=expand(spec)[0], status="failed", error="boom")
    display.finished(first)  # a failed trial's budget counts as done: the bar still fills
    display.update(running=1, steps=200)
    assert display.progress.tasks[0].completed == 300 + 200
    display.close()


def test_an_address_nobody_answers_is_named_with_where_it_came_from() -> None:
    with pytest.raises(InputError) as from_env:
        _check_reachable("127.0.0.1:1", "$RAY_ADDRESS")
    assert str(from_env.value).startswith("$RAY_ADDRESS 127.0.0.1:1: no Ray cluster answers")
    assert "or unset RAY_ADDRESS to run on this machine" in str(from_env.value)
    with pytest.raises(InputError, match=r"^--address 127\.0\.0\.1:1: .*leave --address out"):
        _check_reachable("127.0.0.1:1")


def test_gpu_tasks_on_this_machine_need_a_torch_that_can_use_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as a CPU build of torch
    with pytest.raises(InputError, match=r"resources\.gpus_per_trial: 0\.5, but torch .* GPU"):
        _check_cuda(Resources(gpus_per_trial=0.5))
    _check_cuda(Resources(gpus_per_trial=0.0))  # CPU tasks need nothing of CUDA
