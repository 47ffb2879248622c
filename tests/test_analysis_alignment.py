"""Alignment of seeds on a common grid, checked against numbers computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import aggregate_curves
from analysis.alignment import align, align_evals, bin_episode_returns, carry_last, smooth_per_seed
from analysis.load import load_results

# Three seeds of one configuration, 50 env steps each, with very different episode lengths:
#   seed 0: four episodes of 10 steps, ending at 10, 20, 30, 40 (returns 1, 2, 3, 4);
#           the episode running at step 50 is cut by the budget and not recorded
#   seed 1: episodes of 5, 3, 17 and 25 steps ending at 5, 8, 25, 50 (returns 10, 20, 30, 40)
#   seed 2: episodes of 15 and 35 steps ending at 15, 50 (returns 6, 12)
EPISODE_ENDS = {0: [10, 20, 30, 40], 1: [5, 8, 25, 50], 2: [15, 50]}
EPISODE_RETURNS = {0: [1.0, 2.0, 3.0, 4.0], 1: [10.0, 20.0, 30.0, 40.0], 2: [6.0, 12.0]}
# Greedy evaluations at steps 0, 25 and 50.
EVAL_STEPS = [0, 25, 50]
EVAL_RETURNS = {0: [0.0, 10.0, 20.0], 1: [5.0, 15.0, 25.0], 2: [1.0, 2.0, 3.0]}

# By hand, with 5 bins of 10 steps (grid: right edges 10, 20, 30, 40, 50), each bin holding the
# mean return of the episodes ending in it, an empty bin carrying the last value:
#   seed 0: (0,10]: 1   (10,20]: 2   (20,30]: 3   (30,40]: 4   (40,50]: none -> 4
#   seed 1: (0,10]: mean(10, 20) = 15   (10,20]: none -> 15   (20,30]: 30   (30,40]: -> 30
#           (40,50]: 40
#   seed 2: (0,10]: no episode yet -> NaN   (10,20]: 6   then 6, 6   (40,50]: 12
BINNED = {
    0: [1.0, 2.0, 3.0, 4.0, 4.0],
    1: [15.0, 15.0, 30.0, 30.0, 40.0],
    2: [np.nan, 6.0, 6.0, 6.0, 12.0],
}
# Mean over seeds: NaN at 10 (seed 2 has not finished an episode), then
# (2 + 15 + 6) / 3, (3 + 30 + 6) / 3, (4 + 30 + 6) / 3, (4 + 40 + 12) / 3.
BINNED_MEAN = [np.nan, 23.0 / 3, 13.0, 40.0 / 3, 56.0 / 3]


def _trial_id(seed: int) -> str:
    return f"t{seed}"


@pytest.fixture
def hand_folder(tmp_path: Path) -> Path:
    """The sweep above as a real results folder, in the contract's layout."""
    folder = tmp_path / "hand"
    (folder / "episodes").mkdir(parents=True)
    (folder / "evals").mkdir()
    ids = {"config": "hidden_sizes=64x64", "hidden_sizes": "64x64", "env_id": "CartPole-v1"}
    trials = []
    for seed, ends in EPISODE_ENDS.items():
        row = {"trial_id": _trial_id(seed), **ids, "seed": seed}
        lengths = np.diff(ends, prepend=0)
        pd.DataFrame(
            {
                **row,
                "episode": np.arange(len(ends)),
                "env_step": ends,
                "episode_return": EPISODE_RETURNS[seed],
                "episode_length": lengths,
                "wall_s": np.asarray(ends) / 100.0,
            }
        ).to_parquet(folder / "episodes" / f"{_trial_id(seed)}.parquet", index=False)
        pd.DataFrame(
            {
                **row,
                "env_step": EVAL_STEPS,
                "eval_return_mean": EVAL_RETURNS[seed],
                "eval_return_std": [0.0, 1.0, 1.0],
                "wall_s": np.asarray(EVAL_STEPS) / 100.0,
            }
        ).to_parquet(folder / "evals" / f"{_trial_id(seed)}.parquet", index=False)
        trials.append(
            {
                **row,
                "lr": 1e-3,
                "status": "complete",
                "error": "",
                "wall_s": 0.5,
                "env_steps": 50,
                "env_steps_per_s": 100.0,
            }
        )
    pd.DataFrame(trials).to_parquet(folder / "trials.parquet", index=False)
    (folder / "spec.yaml").write_text("name: hand\nenv: CartPole-v1\nseeds: 3\n")
    (folder / "manifest.json").write_text(json.dumps({"note": "hand-made"}))
    return folder


def _by_seed(aligned: pd.DataFrame) -> dict[int, list[float]]:
    return {
        int(rows["seed"].iloc[0]): rows["value"].tolist()
        for _, rows in aligned.groupby("seed", sort=True)
    }


def test_episode_returns_on_env_step_grid_match_hand_computation(hand_folder: Path) -> None:
    aligned = align(load_results(hand_folder), metric="episode", x="env_step", n_bins=5)
    assert sorted(set(aligned["x"])) == [10.0, 20.0, 30.0, 40.0, 50.0]
    for seed, expected in BINNED.items():
        np.testing.assert_allclose(_by_seed(aligned)[seed], expected)
    curves = aggregate_curves(aligned, rng=np.random.default_rng(0), n_resamples=200)
    np.testing.assert_allclose(curves["mean"], BINNED_MEAN)
    assert "mean of episodes ending in each bin" in aligned.attrs["ylabel"]


def test_naive_averaging_by_episode_index_would_differ(hand_folder: Path) -> None:
    # The second episode of each seed ends at 20, 8 and 50 steps: averaging them mixes times.
    results = load_results(hand_folder)
    by_index = align(results, metric="episode", x="episode")
    assert sorted(set(by_index["x"])) == [0.0, 1.0]  # the shortest seed has two episodes
    np.testing.assert_allclose(_by_seed(by_index)[1], [10.0, 20.0])
    rng = np.random.default_rng(0)
    naive = aggregate_curves(by_index, rng=rng, n_resamples=200)["mean"].to_numpy()
    # (1 + 10 + 6) / 3, then (2 + 20 + 12) / 3: episodes that ended at 20, 8 and 50 steps.
    np.testing.assert_allclose(naive, [17.0 / 3, 34.0 / 3])
    # On the env-step grid, where seeds are compared at one time: at 20 steps (where seed 0's
    # second episode ended) the mean is 23 / 3, and no grid point has the naive value.
    by_step = aggregate_curves(
        align(results, metric="episode", x="env_step", n_bins=5), rng=rng, n_resamples=200
    )
    np.testing.assert_allclose(by_step["mean"], BINNED_MEAN)
    at_20 = float(by_step.loc[by_step["x"] == 20.0, "mean"].iloc[0])
    assert at_20 == pytest.approx(23.0 / 3) and abs(naive[1] - at_20) > 3.0
    assert not np.isclose(by_step["mean"], naive[1]).any()


def test_a_seed_that_finished_no_episode_is_not_left_out(hand_folder: Path) -> None:
    assert load_results(hand_folder).no_episode_note() is None
    # Seed 2 as if its first episode had outlasted the budget: complete, with no episode.
    path = hand_folder / "episodes" / f"{_trial_id(2)}.parquet"
    pd.read_parquet(path).iloc[:0].to_parquet(path, index=False)
    results = load_results(hand_folder)
    binned = align(results, metric="episode", x="env_step", n_bins=5)
    assert sorted(set(binned["x"])) == [10.0, 20.0, 30.0, 40.0, 50.0]  # its budget still counts
    np.testing.assert_allclose(_by_seed(binned)[0], BINNED[0])
    assert np.isnan(_by_seed(binned)[2]).all()  # before its first episode, as in the docstring
    curves = aggregate_curves(binned, rng=np.random.default_rng(0), n_resamples=200)
    assert (curves["n_seeds"] == 3).all() and curves["mean"].isna().all()
    # By episode index: the shortest seed has none, so the configuration has no point.
    assert align(results, metric="episode", x="episode").empty
    note = results.no_episode_note()
    assert note is not None and f"hand/{_trial_id(2)}" in note
    # Evaluations are unaffected.
    assert _by_seed(align(results, metric="eval"))[2] == EVAL_RETURNS[2]


def test_smoothing_is_a_trailing_mean_per_seed(hand_folder: Path) -> None:
    aligned = align(load_results(hand_folder), metric="episode", n_bins=5, smooth=2)
    smoothed = _by_seed(aligned)
    np.testing.assert_allclose(smoothed[0], [1.0, 1.5, 2.5, 3.5, 4.0])
    np.testing.assert_allclose(smoothed[2], [np.nan, 6.0, 6.0, 6.0, 9.0])
    assert "rolling mean of 2 points" in aligned.attrs["ylabel"]


def test_evaluations_on_their_env_step_grid(hand_folder: Path) -> None:
    aligned = align(load_results(hand_folder), metric="eval")
    for seed, expected in EVAL_RETURNS.items():
        assert _by_seed(aligned)[seed] == expected
    curves = aggregate_curves(aligned, rng=np.random.default_rng(0), n_resamples=200)
    np.testing.assert_allclose(curves["mean"], [2.0, 9.0, 16.0])
    assert curves["x"].tolist() == [0.0, 25.0, 50.0]


def test_evaluations_against_training_episodes(hand_folder: Path) -> None:
    # Episodes finished by each evaluation: seed 0: 0, 2, 4; seed 1: 0, 3, 4; seed 2: 0, 1, 2.
    # The grid runs from 0 to 2 (where seed 2 stops) in 3 points; seed 0 has value 0 until its
    # second evaluation, which came after 2 episodes.
    aligned = align(load_results(hand_folder), metric="eval", x="episode")
    assert sorted(set(aligned["x"])) == [0.0, 1.0, 2.0]
    assert _by_seed(aligned)[0] == [0.0, 0.0, 10.0]
    assert _by_seed(aligned)[2] == [1.0, 2.0, 3.0]


def test_wall_time_axis_uses_wall_seconds(hand_folder: Path) -> None:
    aligned = align(load_results(hand_folder), metric="episode", x="wall_s", n_bins=5)
    np.testing.assert_allclose(sorted(set(aligned["x"])), [0.1, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(_by_seed(aligned)[1], BINNED[1])
    assert aligned.attrs["xlabel"] == "wall-clock time (s)"


def test_bin_edges_belong_to_the_bin_they_close() -> None:
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    values = bin_episode_returns([10.0, 10.5, 31.0], [1.0, 3.0, 99.0], edges)
    np.testing.assert_allclose(values, [1.0, 3.0, 3.0])  # 31 lies past the last edge


def test_carry_last_reads_a_step_function() -> None:
    grid = np.array([-1.0, 0.0, 5.0, 10.0, 12.0])
    np.testing.assert_allclose(
        carry_last([0.0, 10.0], [1.0, 2.0], grid), [np.nan, 1.0, 1.0, 2.0, 2.0]
    )


def test_grid_stops_where_the_shortest_seed_stops() -> None:
    # With an episode budget, seeds end at different steps: no seed is extrapolated.
    evals = pd.DataFrame(
        {
            "sweep": "s",
            "config": "c",
            "env_id": "e",
            "trial_id": ["a"] * 3 + ["b"] * 2,
            "seed": [0] * 3 + [1] * 2,
            "env_step": [0, 10, 20, 0, 10],
            "eval_return_mean": [1.0, 2.0, 3.0, 5.0, 6.0],
        }
    )
    aligned = align_evals(evals)
    assert sorted(set(aligned["x"])) == [0.0, 10.0]


def test_smoothing_rejects_a_zero_window(hand_folder: Path) -> None:
    aligned = align(load_results(hand_folder))
    with pytest.raises(ValueError, match="window"):
        smooth_per_seed(aligned, 0)
