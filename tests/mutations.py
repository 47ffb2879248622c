"""Break the code that tests guard, and check that those tests fail: `python -m tests.mutations`.

Each mutation is one string replaced in one file of a scratch copy of the working tree (tracked
files and untracked ones git does not ignore, so uncommitted changes count). The guarding tests
run there with pytest (``-x -q``, only their ids); a mutation they do not fail on is MISSED, and
the script exits 1. The unbroken copy runs the same tests first: they must pass, or a failure
would say nothing. Not a test module: pytest collects ``test_*.py`` only.

    .venv/bin/python -m tests.mutations            # every mutation (a few minutes)
    .venv/bin/python -m tests.mutations figures    # those whose name contains "figures"
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST_TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutation:
    """`old` (found exactly once in `path`) becomes `new`; any of `tests` must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


STATS = "tests/test_analysis_stats.py"
PLOTS = "tests/test_analysis_plots.py"
CURVES_LOOP = (
    'curves.groupby(["config", "env_id"], sort=False):\n        color = colors[str(config)]'
)
VARIANCE_LOOP = 'curves.groupby(["config", "env_id"], sort=False):\n        label = _series_label('

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "exploration: the loop acts with epsilon_at(0, config), at random all run long",
        "dqn_agent/training.py",
        "epsilon_at(step, config))",
        "epsilon_at(0, config))",
        ("tests/test_agent_exploration.py::test_the_training_loops_actions_follow_the_schedule",),
    ),
    Mutation(
        "intervals: no widening to hold the estimate (the np.fmin/np.fmax clamp removed)",
        "analysis/stats.py",
        "        low = np.fmin(low, estimate)\n        high = np.fmax(high, estimate)\n",
        "",
        (f"{STATS}::test_the_interval_holds_the_estimate_where_the_bootstrap_quantiles_miss_it",),
    ),
    Mutation(
        "loader: evaluation returns scrambled between rows",
        "analysis/load.py",
        'evals = _sort_by_trial(evals, order, "env_step")',
        'evals = _sort_by_trial(evals, order, "env_step").assign(\n'
        '        eval_return_mean=lambda f: f["eval_return_mean"].to_numpy()[::-1]\n    )',
        ("tests/test_analysis_load.py::test_same_tables_as_reading_the_folders_at_once",),
    ),
    Mutation(
        "loader: configuration labels scrambled between rows",
        "analysis/load.py",
        'episodes = _sort_by_trial(episodes, order, "episode")',
        'episodes = _sort_by_trial(episodes, order, "episode").assign(\n'
        '        config=lambda f: f["config"].to_numpy()[::-1]\n    )',
        ("tests/test_analysis_load.py::test_same_tables_as_reading_the_folders_at_once",),
    ),
    Mutation(
        "figures: learning curves draw the mean whatever the estimator",
        "analysis/plots.py",
        'ax.plot(group["x"], group[estimator], color=color',
        'ax.plot(group["x"], group["mean"], color=color',
        (f"{PLOTS}::test_learning_curves_draw_each_configurations_estimate_band_and_seeds",),
    ),
    Mutation(
        "figures: learning-curve bands from the mean's interval whatever the estimator",
        "analysis/plots.py",
        'low, high = group[f"{estimator}_low"], group[f"{estimator}_high"]',
        'low, high = group["mean_low"], group["mean_high"]',
        (f"{PLOTS}::test_learning_curves_draw_each_configurations_estimate_band_and_seeds",),
    ),
    Mutation(
        "figures: learning curves in sorted order, not the table's",
        "analysis/plots.py",
        CURVES_LOOP,
        CURVES_LOOP.replace("sort=False", "sort=True"),
        (f"{PLOTS}::test_learning_curves_draw_each_configurations_estimate_band_and_seeds",),
    ),
    Mutation(
        "figures: seed variance draws the mean column",
        "analysis/plots.py",
        'ax.plot(group["x"], group["std"]',
        'ax.plot(group["x"], group["mean"]',
        (f"{PLOTS}::test_seed_variance_draws_the_std_column_in_the_tables_order",),
    ),
    Mutation(
        "figures: seed variance in sorted order, not the table's",
        "analysis/plots.py",
        VARIANCE_LOOP,
        VARIANCE_LOOP.replace("sort=False", "sort=True"),
        (f"{PLOTS}::test_seed_variance_draws_the_std_column_in_the_tables_order",),
    ),
    Mutation(
        "figures: final performance draws the mean for both markers",
        "analysis/plots.py",
        'estimate = float(getattr(row, f"final_{name}"))',
        "estimate = float(row.final_mean)",
        (f"{PLOTS}::test_final_performance_draws_each_estimate_with_its_interval",),
    ),
    Mutation(
        "figures: final performance rows in sorted order, not the table's",
        "analysis/plots.py",
        "for i, row in enumerate(rows.itertuples(index=False)):",
        'for i, row in enumerate(rows.sort_values("config").itertuples(index=False)):',
        (f"{PLOTS}::test_final_performance_draws_each_estimate_with_its_interval",),
    ),
    Mutation(
        "figures: steps to threshold draws each run's last step",
        "analysis/plots.py",
        'steps = rows["steps_to_threshold"].to_numpy(dtype=np.float64)',
        'steps = rows["final_env_step"].to_numpy(dtype=np.float64)',
        (f"{PLOTS}::test_steps_to_threshold_draws_each_seed_and_the_censored_median",),
    ),
    Mutation(
        "figures: steps to threshold rows in sorted order, not the table's",
        "analysis/plots.py",
        'groups = list(scores.groupby(["config", "env_id"], sort=False))',
        'groups = list(scores.groupby(["config", "env_id"], sort=True))',
        (f"{PLOTS}::test_steps_to_threshold_draws_each_seed_and_the_censored_median",),
    ),
    Mutation(
        "figures: probability-of-improvement cells transposed",
        "analysis/plots.py",
        "values[index[str(row.config_x)], index[str(row.config_y)]] = row.probability",
        "values[index[str(row.config_y)], index[str(row.config_x)]] = row.probability",
        (f"{PLOTS}::test_probability_of_improvement_puts_each_pair_in_its_cell",),
    ),
    Mutation(
        "figures: Q statistics' thick line is the median, not the mean",
        "analysis/plots.py",
        "wide.to_numpy().mean(axis=0)",
        "np.median(wide.to_numpy(), axis=0)",
        (f"{PLOTS}::test_q_statistics_draw_each_seed_and_their_mean",),
    ),
    Mutation(
        "names: the bootstrap's quantiles pooled over all points (shapes unchanged)",
        "analysis/stats.py",
        "low, high = np.quantile(boot, [tail, 1 - tail], axis=0)",
        "low, high = np.quantile(boot, [tail, 1 - tail], axis=None)",
        (f"{STATS}::test_bootstrap_is_vectorised_over_points_and_shapes_follow_input",),
    ),
    Mutation(
        "names: training returns on the env-step grid binned by episode index (naive)",
        "analysis/alignment.py",
        "ends = [rows[x].to_numpy(np.float64) for _, rows in seeds]",
        'ends = [rows["episode"].to_numpy(np.float64) + 1.0 for _, rows in seeds]',
        ("tests/test_analysis_alignment.py::test_naive_averaging_by_episode_index_would_differ",),
    ),
    Mutation(
        "names: epsilon_greedy never explores more than half the time",
        "dqn_agent/exploration.py",
        "return torch.where(u[:, 0] < epsilon,",
        "return torch.where(u[:, 0] < min(epsilon, 0.5),",
        (
            "tests/test_agent_exploration.py::"
            "test_epsilon_greedy_explores_with_probability_epsilon_and_the_same_with_numpy",
        ),
    ),
    Mutation(
        "several environments: a task groups seeds of one label across environments",
        "sweeps/plan.py",
        " or trial.env_id != first.env_id",
        "",
        ("tests/test_sweeps_envs.py::test_a_task_never_mixes_environments",),
    ),
    Mutation(
        "several environments: a problem on one env only is not named with its env",
        "sweeps/spec.py",
        " (with env {', '.join(envs)})\")",
        '")',
        (
            "tests/test_sweeps_envs.py::"
            "test_a_shared_value_bad_for_one_preset_only_names_that_environment",
        ),
    ),
    Mutation(
        "several environments: every env over CartPole's preset instead of its own",
        "sweeps/spec.py",
        "base = {**default_config(env_id).to_dict(), **agent}",
        'base = {**default_config("CartPole-v1").to_dict(), **agent}',
        (
            "tests/test_sweeps_envs.py::"
            "test_trials_are_envs_by_configurations_by_seeds_each_env_over_its_own_preset",
        ),
    ),
)


def scratch_copy(where: Path) -> Path:
    """Copy the working tree's files (tracked, and untracked but not ignored) under `where`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = where / "repo"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def environment(copy: Path) -> dict[str, str]:
    """The venv's environment, with the copy's packages first on the path."""
    return {**os.environ, "PYTHONPATH": str(copy), "RAY_USAGE_STATS_ENABLED": "0"}


def pytest(copy: Path, tests: Sequence[str]) -> tuple[int, str]:
    """Run `tests` in `copy`; the exit status and pytest's output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        timeout=PYTEST_TIMEOUT_S,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def check_imports_come_from(copy: Path) -> None:
    """The copy's packages must be the ones imported there, not the editable install's."""
    code = "import analysis, dqn_agent, sweeps; print(analysis.__file__, dqn_agent.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if not all(Path(p).is_relative_to(copy) for p in out.split()):
        raise SystemExit(f"the scratch copy imports packages from elsewhere: {out}")


def apply(copy: Path, mutation: Mutation) -> str:
    """Apply `mutation` to the copy; the file's text before it."""
    path = copy / mutation.path
    text = path.read_text()
    found = text.count(mutation.old)
    if found != 1:
        raise SystemExit(f"{mutation.name}: {mutation.path} holds its string {found} times")
    path.write_text(text.replace(mutation.old, mutation.new))
    return text


def failures(output: str) -> list[str]:
    """The ids pytest reports as failed (or in error)."""
    return re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.MULTILINE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Break guarded code; the guarding tests must fail."
    )
    parser.add_argument("only", nargs="?", default="", help="run the mutations whose name has it")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only in m.name]
    if not chosen:
        parser.error(f"no mutation's name contains {args.only!r}")
    with tempfile.TemporaryDirectory(prefix="dqn-mutations-") as tmp:
        copy = scratch_copy(Path(tmp))
        check_imports_come_from(copy)
        guarding = sorted({test for m in chosen for test in m.tests})
        code, output = pytest(copy, guarding)
        if code != 0:
            print(output[-4000:])
            print("the guarding tests fail on the unbroken code: fix them first")
            return 1
        print(f"unbroken: {len(guarding)} guarding test(s) pass")
        missed = 0
        for mutation in chosen:
            start = time.perf_counter()
            original = apply(copy, mutation)
            try:
                code, output = pytest(copy, mutation.tests)
            finally:
                (copy / mutation.path).write_text(original)
            wall = time.perf_counter() - start
            failed = failures(output)
            # Exit status 1 with tests named: tests failed (2 and up: pytest could not run them).
            caught = code == 1 and bool(failed)
            missed += not caught
            verdict = "caught" if caught else "MISSED" if code == 0 else "ERROR"
            print(f"{verdict:6}  {mutation.name}  ({mutation.path}, {wall:.0f} s)")
            if caught:
                print("".join(f"        fails: {test}\n" for test in failed), end="")
            elif code == 0:
                print("".join(f"        passes: {test}\n" for test in mutation.tests), end="")
            else:
                print(output[-2000:])
    print(f"{len(chosen) - missed} of {len(chosen)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
