"""Faults: a worker killed mid-trial, a trial that raises, Ctrl-C, a driver killed mid-sweep.

Failures are injected from outside the package: the run is given a training function of this
module that raises or kills its own worker (`RunOptions.train`, which the tasks call), or the
driver gets a signal at a moment the test chooses (`RunOptions.on_outcome` holds the driver
still once it has recorded a trial), so that no test depends on how fast the machine is. The
results folder is checked afterwards: exactly one complete set of rows per trial, failures
recorded with their traceback, nothing written twice.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from dqn_agent import Progress, TrialResult, TrialSpec, train_group
from sweeps.cli import main
from sweeps.runner import RunOptions, run_sweep
from sweeps.spec import load_spec
from sweeps.store import ResultsFolder, TrialOutcome
from tests.conftest import TINY_SPEC, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_instance")]  # Ray, training

SPEC = TINY_SPEC.replace("name: tiny", "name: faults")


def _die_on_first_attempt(
    markers: Path,
    specs: Sequence[TrialSpec],
    *,
    progress: Callable[[Progress], None] | None = None,
) -> list[TrialResult]:
    """Training whose worker SIGKILLs itself at its first progress report, on each task's first
    attempt: a file in `markers` named after the task's first trial records that it did.

    The workers import this module to call it (Ray pickles module-level functions by name);
    pytest put the repository's root on the driver's sys.path, which Ray gives its workers."""
    marker = markers / specs[0].trial_id
    if marker.exists():
        return train_group(specs, progress=progress)

    def die(_: Progress) -> None:
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)

    return train_group(specs, progress=die)


FAILING_CONFIG = "hidden_sizes=8"


def _fail_one_config(
    specs: Sequence[TrialSpec], *, progress: Callable[[Progress], None] | None = None
) -> list[TrialResult]:
    """Training that raises for the configuration FAILING_CONFIG, as a bug in training would."""
    if specs[0].label == FAILING_CONFIG:
        raise RuntimeError(f"injected failure: {specs[0].label} seed {specs[0].seed}")
    return train_group(specs, progress=progress)


def _assert_one_complete_set(folder: Path, n_trials: int) -> pd.DataFrame:
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == n_trials and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"complete"}
    episodes = pd.read_parquet(folder / "episodes")
    assert set(episodes["trial_id"]) == set(trials["trial_id"])
    for _, rows in episodes.groupby("trial_id"):
        assert sorted(rows["episode"]) == list(range(len(rows)))  # no duplicates, no gaps
    evals = pd.read_parquet(folder / "evals")
    assert not evals.duplicated(["trial_id", "env_step"]).any()
    return trials


def test_a_worker_killed_mid_trial_is_retried_once(tmp_path: Path) -> None:
    markers = tmp_path / "kill-markers"
    markers.mkdir()
    spec = load_spec(write_spec(tmp_path, SPEC.replace("[[16], [8]]", "[[16]]")))
    # One task per trial: each task's first worker kills itself once (the default plan would
    # train both seeds of this tiny network in one task).
    die_once = functools.partial(_die_on_first_attempt, markers)
    options = RunOptions(out=tmp_path / "out", group_size=1, train=die_once)
    assert run_sweep(spec, options).exit_code == 0
    trials = _assert_one_complete_set(tmp_path / "out" / "faults", 2)
    # Every trial's first worker died with SIGKILL mid-trial; Ray ran it a second time.
    assert len(list(markers.iterdir())) == 2
    assert (trials["attempts"] == 2).all()


def test_a_trial_that_raises_is_recorded_and_the_others_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = load_spec(write_spec(tmp_path, SPEC)), tmp_path / "out"
    assert run_sweep(spec, RunOptions(out=out, train=_fail_one_config)).exit_code == 1
    printed = capsys.readouterr().out
    trials = pd.read_parquet(out / "faults" / "trials.parquet").set_index("trial_id")
    failed = trials[trials["status"] == "failed"]
    assert set(failed["config"]) == {FAILING_CONFIG} and len(failed) == 2
    assert (failed["group_size"] == 2).all()  # both seeds in one task, by the default plan
    for trial_id, error in failed["error"].items():
        assert error.startswith(f"RuntimeError: injected failure: {FAILING_CONFIG} seed 0")
        assert "(seeds 0, 1 trained together in this task: its error fails each)" in error
        assert "Traceback (most recent call last)" in error
        assert f"FAILED    {trial_id}" in printed
    assert (trials.loc[trials["config"] == "hidden_sizes=16", "status"] == "complete").all()
    episodes = pd.read_parquet(out / "faults" / "episodes")
    assert set(episodes["config"]) == {"hidden_sizes=16"}

    # Without the injected failure, a rerun trains just the two failed trials.
    assert run_sweep(spec, RunOptions(out=out)).exit_code == 0
    assert "2 already complete, 2 to train" in capsys.readouterr().out
    _assert_one_complete_set(out / "faults", 4)


@pytest.mark.parametrize(
    ("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "term"]
)
def test_ctrl_c_or_sigterm_keeps_finished_trials_and_a_rerun_resumes(
    signal_number: int, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC))
    out = tmp_path / "out"
    first: list[TrialOutcome] = []

    def interrupt(outcome: TrialOutcome) -> None:
        first.append(outcome)
        if len(first) == 1:  # as Ctrl-C or kill do, once the first trial of a task is recorded
            os.kill(os.getpid(), signal_number)

    # Tasks of two seeds, one at a time: the interrupt comes while the driver is writing the
    # first task's results, before the second task is submitted.
    options = RunOptions(
        out=out,
        group_size=2,
        max_in_flight=1,
        on_outcome=interrupt,
        command=["dqn-sweep", "run", "x"],
    )
    report = run_sweep(spec, options)
    assert report.interrupted and report.exit_code == code
    assert "To resume, run again: dqn-sweep run x" in capsys.readouterr().out
    done = ResultsFolder(out / "faults").complete_ids()
    # Every trial that reached the driver is on disk: both seeds of the interrupted task.
    assert done == {o.spec.trial_id for o in report.outcomes if o.status == "complete"}
    interrupted_config = first[0].spec.label
    assert {o.spec.seed for o in report.outcomes if o.spec.label == interrupted_config} == {0, 1}
    assert len(done) == 2

    again = run_sweep(spec, RunOptions(out=out))
    assert again.exit_code == 0 and again.n_skipped == len(done)
    _assert_one_complete_set(out / "faults", 4)


def _session_pids(session: int) -> list[int]:
    """Processes of a session (the killed driver's Ray processes outlive it: we end them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if entry.name.isdigit() and int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
    return "?"


def _kill_session(session: int) -> None:
    for pid in _session_pids(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


DRIVER_HELD_AFTER_FIRST_TRIAL = """\
import sys
import time
from pathlib import Path

from sweeps.runner import RunOptions, run_sweep
from sweeps.spec import load_spec

spec, out, recorded = (Path(arg) for arg in sys.argv[1:4])


def hold(outcome):
    # Runs in the driver once the trial is on disk: say which, then wait to be killed.
    recorded.with_suffix(".tmp").write_text(outcome.spec.trial_id)
    recorded.with_suffix(".tmp").replace(recorded)
    time.sleep(3600)


run_sweep(load_spec(spec), RunOptions(out=out, quiet=True, on_outcome=hold))
"""
"""A sweep's driver (`python -c`) that, once it has recorded its first trial, writes that
trial's id to the file named by its third argument and stops there until it is killed."""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the driver's processes in /proc")
def test_a_killed_driver_loses_nothing_finished(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, SPEC), tmp_path / "out"
    folder = ResultsFolder(out / "faults")
    recorded, log = tmp_path / "first-recorded", tmp_path / "driver.log"
    command = [sys.executable, "-c", DRIVER_HELD_AFTER_FIRST_TRIAL, str(spec), str(out)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # A session of its own, so that the Ray processes it starts can be found and ended.
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            [*command, str(recorded)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # The driver holds still once the file exists, so the test, not the machine's speed,
        # decides when it dies: with one trial recorded and three not.
        deadline = time.monotonic() + 300
        while not recorded.exists():
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial was recorded in time"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # The local Ray the driver started goes with it (sweeps.reaper ends what remains).
        deadline = time.monotonic() + 30
        while _session_pids(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {pid: _command(pid) for pid in _session_pids(driver.pid)}
        assert not left, f"processes of the killed driver left running: {left}"
    finally:
        _kill_session(driver.pid)
    kept = folder.complete_ids()
    assert kept == {recorded.read_text()}, "killed with the first trial recorded, and only it"
    early = {
        path: (path.read_bytes(), path.stat().st_mtime_ns)
        for trial_id in kept
        for path in folder.data_files(trial_id)
    }

    assert main(["run", str(spec), "--out", str(out)]) == 0
    _assert_one_complete_set(folder.root, 4)
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in early} == early
