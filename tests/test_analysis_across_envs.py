"""Aggregates across environments: `dqn-sweep summary`'s aggregate table, the score overrides,
and the figures `aggregate_metrics`, `performance_profile` and `sample_efficiency`.

Every expected number is built here from the folder's Parquet files with pandas (each run's last
evaluation, normalized by hand) and `analysis.across_tasks`, never from `analysis.aggregate`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from scipy.stats import trim_mean

from analysis.across_tasks import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
)
from analysis.aggregate import (
    aggregate_table,
    per_trial_scores,
    sample_efficiency,
    select_across_envs,
    summary_table,
)
from analysis.cli import EXIT_BAD_INPUT, EXIT_OK
from analysis.load import load_results
from analysis.plots import config_colors
from analysis.report import _per_env, draw_figures, facet_shape, format_summary
from analysis.stats import FloatArray
from analysis.synthetic import RETURN_SCALES, write_sweep
from tests.conftest import run_analysis_cli

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
CONFIGS = ("dqn", "double", "dueling")
SHIPPED = {"CartPole-v1": (21.61, 500.0), "Acrobot-v1": (-499.85, -100.0)} | {
    "MountainCar-v0": (-200.0, -110.0)
}
"""The shipped ranges, copied: a change to `analysis.normalization.SCORES` shows here."""
RESAMPLES = "200"
FIGURES = ["learning_curves", "final_performance", "seed_variance", "steps_to_threshold"]
ACROSS = ["aggregate_metrics", "performance_profile", "sample_efficiency"]
STATISTICS = {
    "mean": aggregate_mean,
    "median": aggregate_median,
    "iqm": aggregate_iqm,
    "optimality_gap": aggregate_optimality_gap,
}


_run = run_analysis_cli


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 configurations x 3 environments x 4 seeds; the last environment is not solved by all."""
    return write_sweep(
        tmp_path_factory.mktemp("multi"),
        "multi",
        configs=CONFIGS,
        env_ids=ENVS,
        n_seeds=4,
        env_steps=4000,
        with_q=False,
    )


def _copy(folder: Path, where: Path) -> Path:
    return Path(shutil.copytree(folder, where / folder.name))


def _finals(folder: Path) -> pd.DataFrame:
    """``config, env_id, seed, final``: each complete run's last evaluation return, read from
    trials.parquet and the run's evals file."""
    trials = pd.read_parquet(folder / "trials.parquet")
    trials = trials[trials["status"] == "complete"]
    finals = []
    for trial_id in trials["trial_id"]:
        evals = pd.read_parquet(folder / "evals" / f"{trial_id}.parquet")
        finals.append(float(evals.sort_values("env_step")["eval_return_mean"].iloc[-1]))
    return trials[["config", "env_id", "seed"]].assign(final=finals)


def _matrix(
    folder: Path,
    config: str,
    ranges: dict[str, tuple[float, float]] | None = None,
    envs: tuple[str, ...] = ENVS,
) -> FloatArray:
    """`config`'s ``(runs, envs)`` normalized final returns, seeds in increasing order."""
    ranges = SHIPPED | (ranges or {})
    finals = _finals(folder)
    columns = []
    for env in envs:
        mine = finals[(finals["config"] == config) & (finals["env_id"] == env)]
        random, reference = ranges[env]
        values = mine.sort_values("seed")["final"].to_numpy(dtype=np.float64)
        columns.append((values - random) / (reference - random))
    return np.column_stack(columns)


def _summary_json(
    folder: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[dict[str, Any], str]:
    """The parsed JSON document of `summary` and its stderr."""
    argv = ["summary", str(folder), "--format", "json", "--resamples", RESAMPLES, *options]
    assert _run(argv) == EXIT_OK
    captured = capsys.readouterr()
    document: dict[str, Any] = json.loads(captured.out)
    return document, captured.err


def _aggregate_rows(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["config"]: row for row in document["aggregate"]}


# The aggregate table.


def test_the_aggregate_table_is_across_tasks_on_the_normalized_final_returns(
    multi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    finals = _finals(multi)
    for env, (worst, best) in RETURN_SCALES.items():  # each env's returns on its own scale
        mine = finals.loc[finals["env_id"] == env, "final"]
        assert env == "LunarLander-v3" or worst <= mine.min() < mine.max() <= best
    document, err = _summary_json(multi, capsys)
    assert "note:" not in err  # every env has a range and every configuration every env
    rows = _aggregate_rows(document)
    assert list(rows) == list(CONFIGS)
    for config, row in rows.items():
        matrix = _matrix(multi, config)
        assert matrix.shape == (4, 3)
        assert (row["n_envs"], row["runs_per_env"]) == (3, 4)
        assert row["envs"] == ", ".join(ENVS)
        for name, statistic in STATISTICS.items():
            expected = float(statistic(matrix))
            assert row[name] == pytest.approx(expected, abs=1e-12), (config, name)
            low, high = row[f"{name}_ci"]
            assert low <= row[name] <= high
            assert high > low, "four runs per environment give an interval"
        assert "stratified bootstrap" in row["ci_method"]
    # The data differ between configurations, so a statistic of the wrong one would show.
    assert len({round(row["iqm"], 9) for row in rows.values()}) == 3
    ranges = document["score_ranges"]
    assert {env: (r["random"], r["reference"]) for env, r in ranges.items()} == SHIPPED
    # The per-configuration rows are the summary that one environment gets, unchanged.
    configurations = document["configurations"]
    assert len(configurations) == 9
    assert [(r["config"], r["env_id"]) for r in configurations] == [
        (c, e) for e in ENVS for c in CONFIGS
    ]


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others(
    multi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _aggregate_rows(_summary_json(multi, capsys, "--seed", "3")[0])
    again = _aggregate_rows(_summary_json(multi, capsys, "--seed", "3")[0])
    other = _aggregate_rows(_summary_json(multi, capsys, "--seed", "4")[0])
    assert first == again
    assert [r["iqm_ci"] for r in first.values()] != [r["iqm_ci"] for r in other.values()]
    assert [r["iqm"] for r in first.values()] == [r["iqm"] for r in other.values()]


def test_markdown_and_csv_add_the_aggregate_as_a_second_block(
    multi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = load_results(multi)
    per_config = summary_table(results, rng=np.random.default_rng(0), n_resamples=200)
    iqm = {c: float(aggregate_iqm(_matrix(multi, c))) for c in CONFIGS}

    assert _run(["summary", str(multi), "--resamples", RESAMPLES]) == EXIT_OK
    out = capsys.readouterr().out
    alone = format_summary(per_config, "markdown")
    assert out.startswith(alone + "\n")  # the per-configuration block exactly as before
    block = out[len(alone) + 1 :]
    lines = block.splitlines()
    assert lines[0].startswith("Across environments: the normalized final return")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 3
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:3] == ["config", "n_envs", "runs_per_env"] and "iqm_ci" in header
    for line, config in zip(table[2:], CONFIGS, strict=True):
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        assert cells["config"] == config
        assert float(cells["iqm"]) == pytest.approx(iqm[config], rel=5e-3)  # 3 significant
    assert (
        "Intervals: 95% stratified bootstrap over seeds within each environment, percentile."
        in lines
    )
    ranges = next(line for line in lines if line.startswith("Environments, normalized"))
    assert "CartPole-v1 from 21.61 to 500" in ranges
    assert "Acrobot-v1 from -499.85 to -100" in ranges
    assert "MountainCar-v0 from -200 to -110" in ranges

    assert _run(["summary", str(multi), "--resamples", RESAMPLES, "--format", "csv"]) == 0
    first, second = capsys.readouterr().out.split("\n\n")
    assert first + "\n" == format_summary(per_config, "csv")
    rows = list(csv.DictReader(io.StringIO(second)))
    assert [row["config"] for row in rows] == list(CONFIGS)
    for row in rows:
        assert float(row["iqm"]) == pytest.approx(iqm[row["config"]], abs=1e-12)
        assert float(row["iqm_ci_low"]) <= float(row["iqm"]) <= float(row["iqm_ci_high"])


def test_one_environment_prints_exactly_what_it_printed_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "one", n_seeds=2, env_steps=2000)
    per_config = summary_table(load_results(folder), rng=np.random.default_rng(0), n_resamples=200)
    for fmt in ("markdown", "csv", "json"):
        assert _run(["summary", str(folder), "--resamples", RESAMPLES, "--format", fmt]) == 0
        captured = capsys.readouterr()
        assert captured.out == format_summary(per_config, fmt)
        assert captured.err == ""
    assert isinstance(json.loads(format_summary(per_config, "json")), list)
    # And the same figures as ever (no aggregate across environments).
    figures = draw_figures(folder, n_resamples=50)
    assert list(figures) == [*FIGURES, "probability_of_improvement", "q_statistics"]


# Score overrides: the command line, the spec, and bad input.


def test_a_scores_option_for_an_env_the_results_lack_is_noted(
    multi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, err = _summary_json(multi, capsys, "--scores", "Cartpole-v1=0:1000")
    assert (
        "note: --scores names Cartpole-v1, which these results do not hold (they hold "
        "CartPole-v1, Acrobot-v1, MountainCar-v0); check the spelling"
    ) in err
    assert document["score_ranges"]["CartPole-v1"]["reference"] == 500.0  # the shipped one


def test_a_doubled_reference_halves_the_normalized_scores(
    multi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    half = _aggregate_rows(_summary_json(multi, capsys, "--scores", "CartPole-v1=0:1000")[0])
    full = _aggregate_rows(_summary_json(multi, capsys, "--scores", "CartPole-v1=0:500")[0])
    for config in CONFIGS:
        cartpole = _matrix(multi, config, {"CartPole-v1": (0.0, 500.0)})[:, 0]
        # With random at 0, doubling the reference halves CartPole's column, and the mean over
        # three environments loses a sixth of that column's mean.
        expected = full[config]["mean"] - cartpole.mean() / 6
        assert half[config]["mean"] == pytest.approx(expected, abs=1e-12)
        matrix = _matrix(multi, config, {"CartPole-v1": (0.0, 1000.0)})
        np.testing.assert_allclose(matrix[:, 0], cartpole / 2, rtol=1e-12)
        assert half[config]["iqm"] == pytest.approx(float(aggregate_iqm(matrix)), abs=1e-12)


SPEC_SCORES = """
per_env:
  CartPole-v1:
    budget: {env_steps: 4000}
    scores: {random: 0, reference: 1000}
  Acrobot-v1:
    agent: {lr: 0.001}
"""


def test_the_spec_scores_are_read_and_the_command_line_wins(
    multi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(multi, tmp_path)
    with (folder / "spec.yaml").open("a") as spec:
        spec.write(SPEC_SCORES)
    document = _summary_json(folder, capsys)[0]
    cartpole = document["score_ranges"]["CartPole-v1"]
    assert (cartpole["random"], cartpole["reference"]) == (0.0, 1000.0)
    assert cartpole["source"] == f"per_env.CartPole-v1.scores in {folder / 'spec.yaml'}"
    assert document["score_ranges"]["Acrobot-v1"]["reference"] == -100.0  # shipped
    for config, row in _aggregate_rows(document).items():
        matrix = _matrix(folder, config, {"CartPole-v1": (0.0, 1000.0)})
        assert row["mean"] == pytest.approx(float(aggregate_mean(matrix)), abs=1e-12)

    document = _summary_json(folder, capsys, "--scores", "CartPole-v1=0:250")[0]
    cartpole = document["score_ranges"]["CartPole-v1"]
    assert (cartpole["random"], cartpole["reference"], cartpole["source"]) == (0, 250, "--scores")
    for config, row in _aggregate_rows(document).items():
        matrix = _matrix(folder, config, {"CartPole-v1": (0.0, 250.0)})
        assert row["mean"] == pytest.approx(float(aggregate_mean(matrix)), abs=1e-12)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("CartPole-v1=9.4", ["--scores", "expected ENV=RANDOM:REFERENCE", "CartPole-v1=9.4:500"]),
        ("CartPole-v1", ["--scores", "expected ENV=RANDOM:REFERENCE"]),
        ("CartPole-v1=9.4:500:7", ["--scores", "expected ENV=RANDOM:REFERENCE"]),
        ("CartPole-v1=500:500", ["--scores", "CartPole-v1", "equals its RANDOM score"]),
        ("CartPole-v1=nan:500", ["--scores", "CartPole-v1", "not a finite number"]),
        ("Acrobot-v1=-500:inf", ["--scores", "Acrobot-v1", "not a finite number"]),
        ("CartPole-v1=low:500", ["--scores", "CartPole-v1", "'low', not a number"]),
    ],
)
@pytest.mark.parametrize("command", ["plot", "summary"])
def test_bad_scores_exit_2_naming_the_option_and_the_env_and_write_nothing(
    command: str,
    value: str,
    words: list[str],
    multi: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "figures"
    argv = [command, str(multi), "--scores", value]
    argv += ["--out", str(out)] if command == "plot" else []
    with pytest.raises(SystemExit) as exited:
        _run(argv)
    assert exited.value.code == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    for word in words:
        assert word in captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()


@pytest.mark.parametrize(
    ("scores", "words"),
    [
        (
            "{random: -200, reference: -200}",
            ["per_env.MountainCar-v0.scores.reference (-200) equals", "MountainCar-v0"],
        ),
        ("{random: .inf, reference: -110}", ["per_env.MountainCar-v0.scores.random", "finite"]),
        ("{random: -200}", ["per_env.MountainCar-v0.scores.reference is missing"]),
        ("{random: low, reference: -110}", ["per_env.MountainCar-v0.scores.random is 'low'"]),
        ("[-200, -110]", ["per_env.MountainCar-v0.scores must be {random: R, reference: F}"]),
    ],
)
@pytest.mark.parametrize("command", ["plot", "summary"])
def test_a_bad_spec_range_exits_2_naming_the_file_and_the_key(
    command: str,
    scores: str,
    words: list[str],
    multi: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(multi, tmp_path)
    with (folder / "spec.yaml").open("a") as spec:
        spec.write(f"per_env:\n  MountainCar-v0:\n    scores: {scores}\n")
    out = tmp_path / "figures"
    argv = [command, str(folder)] + (["--out", str(out)] if command == "plot" else [])
    assert _run(argv) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {folder / 'spec.yaml'}: ")
    for word in words:
        assert word in captured.err
    assert not out.exists()
    # The command line settles what the spec got wrong only by being valid itself: a bad spec
    # is still refused, so that a typo in it never goes unseen.
    argv += ["--scores", "MountainCar-v0=-200:-110"]
    assert _run(argv) == EXIT_BAD_INPUT


# What is left out, and why.


def test_an_env_without_a_range_is_left_out_with_a_note_until_one_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envs = ("CartPole-v1", "Acrobot-v1", "Toy-v0")
    folder = write_sweep(
        tmp_path, "toy", configs=CONFIGS[:2], env_ids=envs, n_seeds=3, env_steps=2000
    )
    document, err = _summary_json(folder, capsys)
    assert (
        "note: no score range for Toy-v0, so the aggregates across environments leave it out; "
        "give one with --scores ENV=RANDOM:REFERENCE or per_env.<env>.scores in the sweep spec"
    ) in err
    for config, row in _aggregate_rows(document).items():
        assert (row["n_envs"], row["envs"]) == (2, "CartPole-v1, Acrobot-v1")
        matrix = _matrix(folder, config, envs=envs[:2])
        assert row["iqm"] == pytest.approx(float(aggregate_iqm(matrix)), abs=1e-12)

    document, err = _summary_json(folder, capsys, "--scores", "Toy-v0=8:500")
    assert "note:" not in err
    for config, row in _aggregate_rows(document).items():
        assert row["n_envs"] == 3
        matrix = _matrix(folder, config, {"Toy-v0": (8.0, 500.0)}, envs=envs)
        assert row["iqm"] == pytest.approx(float(aggregate_iqm(matrix)), abs=1e-12)


def test_one_env_with_a_range_gives_no_aggregate_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(
        tmp_path, "two", configs=CONFIGS[:2], env_ids=("CartPole-v1", "Toy-v0"), n_seeds=2
    )
    document, err = _summary_json(folder, capsys)
    assert isinstance(document, list)  # no aggregate: the one list of configurations
    why = "it needs two or more environments with a score range, and 1 has one"
    assert why in err and "no score range for Toy-v0" in err
    out = tmp_path / "figures"
    argv = ["plot", str(folder), "--out", str(out), "--format", "png", "--resamples", "50"]
    assert _run(argv) == EXIT_OK
    captured = capsys.readouterr()
    assert why in captured.err and "no score range for Toy-v0" in captured.err  # plot says so too
    written = [Path(line.removeprefix("wrote ")).stem for line in captured.out.splitlines()]
    assert written == [*FIGURES, "probability_of_improvement", "q_statistics"]


def test_a_configurations_intervals_do_not_depend_on_the_others(
    multi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(multi, tmp_path)
    trials = pd.read_parquet(folder / "trials.parquet")
    trials[trials["config"] != "dqn"].to_parquet(folder / "trials.parquet", index=False)
    alone = _aggregate_rows(_summary_json(folder, capsys)[0])
    together = _aggregate_rows(_summary_json(multi, capsys)[0])
    assert list(alone) == ["double", "dueling"]
    for config, row in alone.items():
        assert row == together[config]  # the same estimates and the same intervals


def test_unequal_seed_counts_keep_the_lowest_seeds_and_say_which_were_left_out(
    multi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(multi, tmp_path)
    trials = pd.read_parquet(folder / "trials.parquet")
    # dqn loses seed 3 on Acrobot; dueling loses Acrobot altogether.
    gone = (trials["env_id"] == "Acrobot-v1") & (
        ((trials["config"] == "dqn") & (trials["seed"] == 3)) | (trials["config"] == "dueling")
    )
    trials[~gone].to_parquet(folder / "trials.parquet", index=False)

    document, err = _summary_json(folder, capsys)
    assert (
        "note: dqn: the aggregates across environments use 3 run(s) on each environment (the "
        "stratified bootstrap needs as many on each), its lowest-numbered seeds; left out: "
        "seed(s) 3 on CartPole-v1; seed(s) 3 on MountainCar-v0"
    ) in err
    assert (
        "note: dueling is left out of the aggregates across environments: it has no "
        "complete run on Acrobot-v1"
    ) in err
    rows = _aggregate_rows(document)
    assert list(rows) == ["dqn", "double"]
    assert (rows["dqn"]["runs_per_env"], rows["double"]["runs_per_env"]) == (3, 4)
    kept = _matrix(multi, "dqn")[:3]  # seeds 0, 1 and 2 on each environment
    assert rows["dqn"]["mean"] == pytest.approx(float(aggregate_mean(kept)), abs=1e-12)
    assert rows["dqn"]["median"] == pytest.approx(float(aggregate_median(kept)), abs=1e-12)


# Figures.


@pytest.fixture(scope="module")
def figures(multi: Path) -> dict[str, Figure]:
    return draw_figures(multi, n_resamples=200)


def _panels(figure: Figure) -> list[Axes]:
    """The Axes of a figure that hold a panel (not a colour bar)."""
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def test_several_environments_add_the_aggregate_figures(figures: dict[str, Figure]) -> None:
    assert list(figures) == [*FIGURES, "probability_of_improvement", *ACROSS]


def test_per_environment_panels_are_titled_with_their_env_and_laid_out_in_a_grid(
    figures: dict[str, Figure],
) -> None:
    for name in FIGURES:
        axes = _panels(figures[name])
        assert [ax.get_title().split(":")[0] for ax in axes] == list(ENVS), name
        rows = {ax.get_subplotspec().rowspan.start for ax in axes}  # type: ignore[union-attr]
        assert rows == {0}, "three environments fit side by side"
    assert [facet_shape(n) for n in range(1, 8)] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 2),
        (2, 3),
        (2, 3),
        (3, 3),
    ]
    envs = ["a", "b", "c", "d", "e"]
    frame = pd.DataFrame({"env_id": envs})
    grid = _per_env(frame, envs, lambda rows, ax: ax)
    places = [
        (ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start)  # type: ignore[union-attr]
        for ax in grid.axes
    ]
    assert places == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # the sixth place is removed
    assert [ax.get_title() for ax in grid.axes] == envs  # an empty panel is named too


def _bars(ax: Axes) -> list[Rectangle]:
    """The interval bars of a panel, top to bottom."""
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def _estimate_ticks(ax: Axes) -> list[float]:
    """The x of each black estimate tick, top to bottom."""
    ticks = [line for line in ax.lines if line.get_color() == "k"]
    return [float(np.asarray(line.get_xdata(), np.float64)[0]) for line in ticks]


def test_aggregate_metrics_mark_the_tables_estimates_in_each_panel(
    multi: Path, figures: dict[str, Figure]
) -> None:
    panels = _panels(figures["aggregate_metrics"])
    assert [ax.get_title() for ax in panels] == [
        "Median",
        "IQM",
        "Mean",
        "Optimality gap (lower is better)",
    ]
    colors = config_colors(list(CONFIGS))
    for ax, name in zip(panels, ["median", "iqm", "mean", "optimality_gap"], strict=True):
        expected = [float(STATISTICS[name](_matrix(multi, c))) for c in CONFIGS]
        np.testing.assert_allclose(_estimate_ticks(ax), expected, rtol=1e-12)
        bars = _bars(ax)
        assert [tuple(bar.get_facecolor()[:3]) for bar in bars] == [colors[c] for c in CONFIGS]
        for bar, estimate in zip(bars, expected, strict=True):  # the bar is an interval around it
            assert bar.get_x() <= estimate <= bar.get_x() + bar.get_width()
    assert [t.get_text() for t in panels[0].get_yticklabels()] == list(CONFIGS)


def test_the_figure_and_the_table_show_the_same_aggregates(
    multi: Path, figures: dict[str, Figure]
) -> None:
    across = select_across_envs(per_trial_scores(load_results(multi)))
    assert across is not None
    table = aggregate_table(across, rng=np.random.default_rng(0), n_resamples=200)
    panels = _panels(figures["aggregate_metrics"])
    for ax, name in zip(panels, ["median", "iqm", "mean", "optimality_gap"], strict=True):
        assert _estimate_ticks(ax) == table[name].tolist()
        for bar, (low, high) in zip(_bars(ax), table[f"{name}_ci"], strict=True):
            assert bar.get_x() == pytest.approx(low) and bar.get_width() == pytest.approx(
                high - low
            )


def _labelled(ax: Axes) -> dict[str, Line2D]:
    return {
        str(line.get_label()): line
        for line in ax.lines
        if not str(line.get_label()).startswith("_")
    }


def test_the_performance_profile_is_the_fraction_of_runs_above_each_tau(
    multi: Path, figures: dict[str, Figure]
) -> None:
    (ax,) = _panels(figures["performance_profile"])
    lines = _labelled(ax)
    assert list(lines) == list(CONFIGS)
    for config, line in lines.items():
        taus = np.asarray(line.get_xdata(), np.float64)
        fractions = np.asarray(line.get_ydata(), np.float64)
        scores = _matrix(multi, config).ravel()
        by_hand = [(scores > tau).mean() for tau in taus]
        np.testing.assert_allclose(fractions, by_hand, rtol=0, atol=0)
        assert taus[0] <= min(0.0, scores.min()) and taus[-1] >= max(1.0, scores.max())
        assert 0.0 < fractions.mean() < 1.0  # the profile falls within the plotted range
    assert "stratified bootstrap" in ax.get_title()


def test_sample_efficiency_is_the_iqm_of_normalized_evaluations_at_each_step(
    multi: Path, figures: dict[str, Figure]
) -> None:
    (ax,) = _panels(figures["sample_efficiency"])
    lines = _labelled(ax)
    assert list(lines) == list(CONFIGS)
    trials = pd.read_parquet(multi / "trials.parquet")
    for config, line in lines.items():
        steps = np.asarray(line.get_xdata(), np.float64)
        np.testing.assert_array_equal(steps, np.arange(0, 4001, 1000))
        normalized = []  # one (runs x envs) sample per step
        for trial in trials[trials["config"] == config].itertuples():
            evals = pd.read_parquet(multi / "evals" / f"{trial.trial_id}.parquet")
            random, reference = SHIPPED[str(trial.env_id)]
            by_step = evals.set_index("env_step")["eval_return_mean"]
            values = by_step.loc[steps.astype(np.int64).tolist()]
            normalized.append((values.to_numpy() - random) / (reference - random))
        by_hand = trim_mean(np.array(normalized), 0.25, axis=0)
        np.testing.assert_allclose(np.asarray(line.get_ydata(), np.float64), by_hand, rtol=1e-12)


def test_sample_efficiency_stops_at_the_shortest_environments_last_evaluation(
    multi: Path, tmp_path: Path
) -> None:
    folder = _copy(multi, tmp_path)
    trials = pd.read_parquet(folder / "trials.parquet")
    for trial_id in trials.loc[trials["env_id"] == "MountainCar-v0", "trial_id"]:
        path = folder / "evals" / f"{trial_id}.parquet"
        evals = pd.read_parquet(path)
        evals[evals["env_step"] <= 2500].to_parquet(path, index=False)  # ends at step 2000
    results = load_results(folder)
    across = select_across_envs(per_trial_scores(results))
    assert across is not None
    curves = sample_efficiency(results, across, rng=np.random.default_rng(0), n_resamples=50)
    for config in CONFIGS:
        steps = curves.loc[curves["config"] == config, "x"].to_numpy()
        np.testing.assert_array_equal(steps, [0.0, 1000.0, 2000.0])
