"""Loading results folders: tidy tables, and errors that name the path and what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.load import ResultsError, load_results
from analysis.synthetic import write_sweep


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, "small", n_seeds=2, env_steps=3000, n_failed=1)


def _first_trial(folder: Path) -> str:
    trials = pd.read_parquet(folder / "trials.parquet")
    return str(trials.loc[trials["status"] == "complete", "trial_id"].iloc[0])


def test_tables_are_tidy_and_exclude_failed_trials(sweep: Path) -> None:
    results = load_results(sweep)
    assert len(results.trials) == 5  # 2 configurations x 2 seeds + 1 failed
    assert len(results.failed) == 1
    failed_id = results.failed["trial_id"].iloc[0]
    assert failed_id not in set(results.episodes["trial_id"])
    assert failed_id not in set(results.evals["trial_id"])
    assert results.evals["trial_id"].nunique() == 4
    assert (results.evals["sweep"] == "small").all()
    note = results.failure_note()
    assert note is not None and failed_id in note
    # Within a trial, rows are in time order.
    for _, rows in results.episodes.groupby("trial_id"):
        assert rows["env_step"].is_monotonic_increasing


def test_same_tables_as_reading_the_folders_at_once(sweep: Path) -> None:
    # Every value and label the files hold, against a plain pandas read of the folder: a loader
    # that moved values between rows or trials, or relabelled them, would differ here.
    results = load_results(sweep)
    trials = pd.read_parquet(sweep / "trials.parquet")
    # The trials table keeps the file's rows in the file's order (the order of legends).
    pd.testing.assert_frame_equal(
        results.trials[list(trials.columns)], trials, check_dtype=False, check_exact=True
    )
    complete = set(trials.loc[trials["status"] == "complete", "trial_id"])
    for table, loaded, within in (
        ("evals", results.evals, "env_step"),
        ("episodes", results.episodes, "episode"),
    ):
        direct = pd.read_parquet(sweep / table)
        direct = direct[direct["trial_id"].isin(complete)]  # failed trials' rows are left out
        assert len(direct) > 0
        key = ["trial_id", within]
        ours = loaded[list(direct.columns)].sort_values(key).reset_index(drop=True)
        theirs = direct.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, check_exact=True)


def test_not_a_results_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match=r"empty.*not a results folder.*trials\.parquet"):
        load_results(tmp_path / "empty")
    with pytest.raises(ResultsError, match=r"nowhere.*no such folder"):
        load_results(tmp_path / "nowhere")


def test_a_sweep_that_has_not_recorded_a_trial_yet(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    (started / "spec.yaml").write_text("name: started\n")
    with pytest.raises(ResultsError, match=r"started: no trial has finished yet.*resume"):
        load_results(started)


@pytest.mark.parametrize(
    ("run", "why"),
    [
        ({}, "still running, or its driver was killed"),
        ({"finished_at": "t", "interrupted": True}, "was interrupted"),
        ({"finished_at": "t", "interrupted": False}, "did not train them"),
    ],
)
def test_trials_still_to_run_are_counted_from_the_manifest(
    sweep: Path, run: dict[str, object], why: str
) -> None:
    assert load_results(sweep).unfinished_note() is None  # a manifest without runs says nothing
    planned = {"runs": [{"trials": 3}, {"trials": 7, **run}]}  # the last run's plan counts
    (sweep / "manifest.json").write_text(json.dumps(planned))
    note = load_results(sweep).unfinished_note()
    assert note is not None
    assert "2 of 7 trials have no result yet" in note and why in note and str(sweep) in note
    (sweep / "manifest.json").write_text(json.dumps({"runs": [{"trials": 5, **run}]}))
    assert load_results(sweep).unfinished_note() is None  # all 5 (one failed) have a row


def test_missing_file_is_named(sweep: Path) -> None:
    trial_id = _first_trial(sweep)
    (sweep / "evals" / f"{trial_id}.parquet").unlink()
    with pytest.raises(ResultsError) as err:
        load_results(sweep)
    message = str(err.value)
    assert f"evals/{trial_id}.parquet" in message
    assert "missing" in message and "re-run" in message


def test_unreadable_file_is_named(sweep: Path) -> None:
    trial_id = _first_trial(sweep)
    (sweep / "episodes" / f"{trial_id}.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ResultsError, match=rf"episodes/{trial_id}\.parquet: cannot be read"):
        load_results(sweep)


def test_missing_columns_are_named(sweep: Path) -> None:
    trial_id = _first_trial(sweep)
    path = sweep / "evals" / f"{trial_id}.parquet"
    pd.read_parquet(path).drop(columns=["eval_return_mean", "seed"]).to_parquet(path)
    with pytest.raises(ResultsError) as err:
        load_results(sweep)
    assert str(path) in str(err.value)
    assert "seed, eval_return_mean" in str(err.value)


def test_missing_columns_in_trials_are_named(sweep: Path) -> None:
    path = sweep / "trials.parquet"
    pd.read_parquet(path).drop(columns=["status"]).to_parquet(path)
    with pytest.raises(
        ResultsError, match=r"trials\.parquet: required column\(s\) missing: status"
    ):
        load_results(sweep)


def test_optional_columns_of_older_folders_become_nan(sweep: Path) -> None:
    for path in (sweep / "evals").glob("*.parquet"):
        pd.read_parquet(path).drop(columns=["q_mean", "td_loss"]).to_parquet(path)
    evals = load_results(sweep).evals
    assert evals["q_mean"].isna().all() and evals["td_loss"].isna().all()


def test_several_sweeps_get_a_sweep_column_and_distinct_labels(tmp_path: Path) -> None:
    a = write_sweep(tmp_path, "a", configs=("hidden_sizes=64x64", "hidden_sizes=32x32"))
    b = write_sweep(tmp_path, "b", configs=("hidden_sizes=64x64",), seed=1)
    results = load_results([a, b])
    assert set(results.evals["sweep"]) == {"a", "b"}
    # The label both sweeps use on the same environment is made distinct; the other is kept.
    assert set(results.evals["config"]) == {"a/hidden_sizes=64x64", "b/hidden_sizes=64x64"} | {
        "hidden_sizes=32x32"
    }
    assert set(results.trials["config"]) == set(results.evals["config"])


def test_same_label_on_another_environment_is_kept(tmp_path: Path) -> None:
    a = write_sweep(tmp_path, "cartpole", configs=("hidden_sizes=64x64",))
    b = write_sweep(tmp_path, "acrobot", configs=("hidden_sizes=64x64",), env_id="Acrobot-v1")
    results = load_results([a, b])
    assert set(results.evals["config"]) == {"hidden_sizes=64x64"}
    assert set(results.evals["env_id"]) == {"CartPole-v1", "Acrobot-v1"}


def test_the_same_folder_twice_is_read_once(sweep: Path) -> None:
    assert len(load_results([sweep, sweep]).trials) == len(load_results(sweep).trials)


def test_no_folder_given() -> None:
    with pytest.raises(ResultsError, match="no results folder"):
        load_results([])


def test_analysis_imports_neither_torch_nor_ray(sweep: Path, tmp_path: Path) -> None:
    # Plots must regenerate on a laptop that has only the results folder: every module of the
    # package, and the commands that import the rest as they run.
    code = (
        "import argparse, sys, pkgutil, importlib, analysis, analysis.cli\n"
        "for module in pkgutil.iter_modules(analysis.__path__):\n"
        "    importlib.import_module(f'analysis.{module.name}')\n"
        f"for argv in (['summary', {str(sweep)!r}], ['plot', {str(sweep)!r}, '--out', "
        f"{str(tmp_path)!r}, '--format', 'png', '--resamples', '50']):\n"
        "    parser = argparse.ArgumentParser()\n"
        "    commands = parser.add_subparsers(required=True)\n"
        "    analysis.cli.add_plot_parser(commands)\n"
        "    analysis.cli.add_summary_parser(commands)\n"
        "    args = parser.parse_args(argv)\n"
        "    assert args.func(args) == 0\n"
        "heavy = {'torch', 'ray', 'dqn_agent', 'sweeps', 'gymnasium'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
