"""The plot and summary subcommands, called through argparse as `dqn-sweep` will call them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import analysis.cli
import analysis.report
from analysis.aggregate import SUMMARY_KEYS
from analysis.cli import EXIT_BAD_INPUT, EXIT_OK
from analysis.normalization import ScoreRange
from analysis.synthetic import write_sweep
from tests.conftest import run_analysis_cli

_run = run_analysis_cli


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("cli"), n_seeds=3, env_steps=5000, n_failed=1)


def test_plot_writes_into_the_results_folder_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "s", n_seeds=2, env_steps=3000)
    assert _run(["plot", str(folder), "--format", "png", "--resamples", "100"]) == EXIT_OK
    written = sorted((folder / "plots").iterdir())
    assert (folder / "plots" / "learning_curves.png") in written
    out = capsys.readouterr().out
    assert all(f"wrote {path}" in out for path in written)


def test_plot_options_reach_the_figures(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    given: dict[str, Any] = {}
    real_render_all = analysis.report.render_all

    def spy(*args: Any, **kwargs: Any) -> list[Path]:
        given.update(kwargs)
        return real_render_all(*args, **kwargs)

    monkeypatch.setattr(analysis.report, "render_all", spy)  # where the handler imports it from
    argv = ["plot", str(sweep), "--out", str(tmp_path / "figs"), "--metric", "episode"]
    argv += ["--x", "wall_s", "--smooth", "3", "--per-seed", "--threshold", "100"]
    argv += ["--resamples", "100", "--seed", "1", "--format", "svg", "pdf"]
    argv += ["--estimator", "iqm", "--scores", "CartPole-v1=9.4:500", "--scores", "Toy-v0=0:1"]
    assert _run(argv) == EXIT_OK
    expected = {"metric": "episode", "x": "wall_s", "smooth": 3, "per_seed": True}
    expected |= {"threshold": 100.0, "n_resamples": 100, "seed": 1, "estimator": "iqm"}
    expected |= {
        "score_ranges": {
            "CartPole-v1": ScoreRange(9.4, 500.0, "--scores"),
            "Toy-v0": ScoreRange(0.0, 1.0, "--scores"),
        }
    }
    assert {key: given[key] for key in expected} == expected
    assert list(given["formats"]) == ["svg", "pdf"]
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {"learning_curves.svg", "learning_curves.pdf"} <= names
    assert "1 of 7 trials failed" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plot", "summary"])
def test_unfinished_sweeps_and_seeds_without_episodes_are_noted(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "running", n_seeds=2, env_steps=3000)
    (folder / "manifest.json").write_text(json.dumps({"runs": [{"trials": 6}]}))
    trial = pd.read_parquet(folder / "trials.parquet")["trial_id"].iloc[0]
    episodes = folder / "episodes" / f"{trial}.parquet"
    pd.read_parquet(episodes).iloc[:0].to_parquet(episodes, index=False)
    argv = [command, str(folder), "--resamples", "100"]
    argv += ["--out", str(tmp_path / "figs"), "--metric", "episode"] if command == "plot" else []
    assert _run(argv) == EXIT_OK
    err = capsys.readouterr().err
    assert "2 of 6 trials have no result yet (its sweep is still running" in err
    # Only a plot of training returns is missing a curve for it.
    assert (f"running/{trial}" in err) == (command == "plot")


@pytest.mark.parametrize("command", ["plot", "summary"])
def test_bad_folder_exits_2_naming_the_path(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "not-results"
    bad.mkdir()
    assert _run([command, str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(bad) in err and "not a results folder" in err
    assert not (bad / "plots").exists()  # nothing written on bad input


def test_bad_folder_among_good_ones_writes_nothing(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _run(["plot", str(sweep), str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not out.exists()


def test_summary_json_has_every_documented_key(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["summary", str(sweep), "--format", "json", "--resamples", "200"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert list(row) == list(SUMMARY_KEYS)
        assert len(row["final_mean_ci"]) == 2 and len(row["final_iqm_ci"]) == 2
        assert row["threshold"] == 475.0
    assert [row["n_failed"] for row in rows] == [1, 0]


def test_summary_threshold_and_unknown_values_are_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "toy", env_id="Toy-v0", n_seeds=2, env_steps=2000)
    assert _run(["summary", str(folder), "--format", "json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["threshold"] is None and rows[0]["steps_to_threshold_median"] is None
    assert _run(["summary", str(folder), "--format", "json", "--threshold", "20"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["threshold"] == 20.0


def test_summary_csv_splits_intervals(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["summary", str(sweep), "--format", "csv", "--resamples", "200"]) == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2
    assert float(rows[0]["final_mean_ci_low"]) <= float(rows[0]["final_mean"])
    assert float(rows[0]["final_mean"]) <= float(rows[0]["final_mean_ci_high"])
    assert "final_mean_ci" not in rows[0]


def test_summary_markdown_is_a_table(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["summary", str(sweep), "--resamples", "200"]) == EXIT_OK
    table, notes = capsys.readouterr().out.split("\n\n")
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two configurations
    assert lines[0].startswith("| config") and "final_mean_ci" in lines[0]
    assert "ci_method" not in lines[0]  # said once, below the table
    assert set(lines[1]) <= {"|", "-", ":", " "}
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "hidden_sizes=32x32" in lines[2]
    # Three seeds per configuration: the note says what their intervals are worth.
    assert notes.splitlines() == [
        "Intervals: 95% bootstrap over seeds, expanded percentile.",
        "With under 5 seeds (hidden_sizes=32x32, hidden_sizes=64x64) an interval is the "
        "seeds' range, which holds the mean less often than stated.",
    ]


def test_resamples_are_bounded_before_anything_is_allocated(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("plot", "summary"):
        with pytest.raises(SystemExit) as err:
            _run([command, str(sweep), "--resamples", "1000000000"])
        assert err.value.code == 2
        message = capsys.readouterr().err
        assert "--resamples" in message and "at most 100,000" in message
        assert "Traceback" not in message


def test_argparse_rejects_bad_options(sweep: Path) -> None:
    with pytest.raises(SystemExit) as err:
        _run(["plot", str(sweep), "--smooth", "0"])
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        _run(["summary", str(sweep), "--format", "xml"])
    assert err.value.code == 2
