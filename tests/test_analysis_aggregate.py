"""Per-configuration aggregates: the summary table by hand, curves and pairwise comparisons."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import (
    SUMMARY_KEYS,
    aggregate_curves,
    default_threshold,
    improvement_matrix,
    per_trial_scores,
    summary_table,
)
from analysis.alignment import align
from analysis.load import Results, load_results
from analysis.synthetic import write_sweep


def _hand_results() -> Results:
    """Three complete seeds of configuration A, one failed; configuration B failed entirely.

    Evaluations at steps 0, 25, 50:  seed 0: 0, 10, 20   seed 1: 5, 15, 25   seed 2: 1, 2, 3.
    """
    ids = {"sweep": "hand", "config": "A", "env_id": "Toy-v0"}
    values = {0: [0.0, 10.0, 20.0], 1: [5.0, 15.0, 25.0], 2: [1.0, 2.0, 3.0]}
    evals = pd.concat(
        pd.DataFrame(
            {
                **ids,
                "trial_id": f"t{seed}",
                "seed": seed,
                "env_step": [0, 25, 50],
                "eval_return_mean": v,
                "eval_return_std": 0.0,
            }
        )
        for seed, v in values.items()
    )
    trials = pd.DataFrame(
        {
            "sweep": "hand",
            "trial_id": ["t0", "t1", "t2", "t3", "b0"],
            "config": ["A", "A", "A", "A", "B"],
            "env_id": "Toy-v0",
            "seed": [0, 1, 2, 3, 0],
            "status": ["complete"] * 3 + ["failed"] * 2,
            "wall_s": [10.0, 20.0, 30.0, 1.0, 1.0],
            "env_steps_per_s": [5.0, 2.5, 2.0, np.nan, np.nan],
        }
    )
    return Results(trials=trials, episodes=pd.DataFrame(), evals=evals, dirs=())


def test_an_entry_gets_the_same_interval_whatever_was_computed_before(tmp_path: Path) -> None:
    configs = ("hidden_sizes=8", "hidden_sizes=16")
    results = load_results(write_sweep(tmp_path, configs=configs, n_seeds=10))
    alone = summary_table(results, rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)
    aggregate_curves(align(results), rng=rng)  # as `dqn-sweep plot` does first
    after_curves = summary_table(results, rng=rng)
    pd.testing.assert_frame_equal(alone, after_curves)
    # ... and a configuration's interval does not move when another joins or leaves.
    one = Results(
        trials=results.trials[results.trials["config"] == "hidden_sizes=16"],
        episodes=results.episodes[results.episodes["config"] == "hidden_sizes=16"],
        evals=results.evals[results.evals["config"] == "hidden_sizes=16"],
        dirs=results.dirs,
    )
    only = summary_table(one, rng=np.random.default_rng(3)).set_index("config")
    both = alone.set_index("config").loc[["hidden_sizes=16"]]
    assert only["final_mean_ci"].tolist() == both["final_mean_ci"].tolist()
    assert only["final_iqm_ci"].tolist() == both["final_iqm_ci"].tolist()
    assert summary_table(results, rng=np.random.default_rng(4))["final_mean_ci"].tolist() != (
        alone["final_mean_ci"].tolist()
    )  # the seed still matters


def test_summary_matches_hand_computation() -> None:
    table = summary_table(_hand_results(), threshold=10.0, rng=np.random.default_rng(0))
    assert list(table.columns) == list(SUMMARY_KEYS)
    a = table.set_index("config").loc["A"]
    assert a["n_seeds"] == 3 and a["n_failed"] == 1
    assert a["final_mean"] == pytest.approx((20 + 25 + 3) / 3)  # last evaluations
    assert a["final_iqm"] == pytest.approx(16.0)  # 3 seeds: int(0.75) = 0 cut, the mean
    assert a["final_mean_ci"] == [3.0, 25.0]  # 3 seeds: the range (analysis.stats.FEW_SEEDS)
    # Mean eval return over training per seed: 10, 15 and (1.5 * 25 + 2.5 * 25) / 50 = 2.
    assert a["auc"] == pytest.approx((10 + 15 + 2) / 3)
    # Reached 10 at step 25, 25, never: median of (25, 25, inf).
    assert a["threshold"] == 10.0
    assert a["steps_to_threshold_median"] == 25.0
    assert a["n_reached_threshold"] == 2
    assert a["wall_s"] == pytest.approx(20.0)  # complete trials only
    assert a["env_steps_per_s"] == pytest.approx(9.5 / 3)


def test_a_nan_evaluation_makes_the_area_unknown_not_smaller() -> None:
    results = _hand_results()
    evals = results.evals.reset_index(drop=True)
    evals.loc[(evals["trial_id"] == "t2") & (evals["env_step"] == 25), "eval_return_mean"] = np.nan
    nan_mid = dataclasses.replace(results, evals=evals)
    table = summary_table(nan_mid, rng=np.random.default_rng(0))
    a = table[table["config"] == "A"].iloc[0].to_dict()
    assert a["n_seeds"] == 3 and a["final_mean"] == pytest.approx((20 + 25 + 3) / 3)
    assert math.isnan(a["auc"])  # not the mean of the other two seeds' areas


def test_the_summary_names_its_interval_method() -> None:
    table = summary_table(_hand_results(), rng=np.random.default_rng(0))
    assert table["ci_method"].tolist() == ["95% bootstrap over seeds, expanded percentile"] * 2
    table = summary_table(_hand_results(), rng=np.random.default_rng(0), confidence=0.9)
    assert table["ci_method"].iloc[0].startswith("90% bootstrap")
    assert table.attrs["confidence"] == 0.9


def test_a_configuration_whose_trials_all_failed_still_has_a_row() -> None:
    table = summary_table(_hand_results(), rng=np.random.default_rng(0))
    b = table[table["config"] == "B"].iloc[0].to_dict()
    assert b["n_seeds"] == 0 and b["n_failed"] == 1
    assert math.isnan(b["final_mean"]) and all(math.isnan(v) for v in b["final_mean_ci"])


def test_default_thresholds() -> None:
    assert default_threshold("CartPole-v1") == 475.0
    assert default_threshold("Acrobot-v1") == -100.0
    assert default_threshold("MountainCar-v0") == -110.0
    assert default_threshold("LunarLander-v3") == 200.0
    assert math.isnan(default_threshold("Toy-v0"))
    scores = per_trial_scores(_hand_results())
    assert scores["threshold"].isna().all() and scores["steps_to_threshold"].isna().all()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configs = ("hidden_sizes=32x32", "hidden_sizes=64x64", "hidden_sizes=128x128")
    return write_sweep(tmp_path_factory.mktemp("agg"), configs=configs, n_seeds=4)


def test_curves_have_one_row_per_configuration_and_grid_point(synthetic: Path) -> None:
    aligned = align(load_results(synthetic))
    curves = aggregate_curves(aligned, rng=np.random.default_rng(0), n_resamples=500)
    assert len(curves) == 3 * 21  # evaluations at 0, 1000, ..., 20000
    assert (curves["n_seeds"] == 4).all()
    for name in ("mean", "iqm"):
        assert (curves[f"{name}_low"] <= curves[name]).all()
        assert (curves[name] <= curves[f"{name}_high"]).all()
    assert (curves["std"] >= 0).all()
    assert curves.attrs["confidence"] == 0.95 and curves.attrs["metric"] == "eval"


def test_improvement_matrix_is_complementary(synthetic: Path) -> None:
    scores = per_trial_scores(load_results(synthetic))
    matrix = improvement_matrix(scores, rng=np.random.default_rng(0), column="auc")
    assert len(matrix) == 6  # ordered pairs of 3 configurations
    pairs = {(str(r["config_x"]), str(r["config_y"])): r for r in matrix.to_dict("records")}
    for (x, y), row in pairs.items():
        other = pairs[(y, x)]
        assert row["probability"] + other["probability"] == pytest.approx(1.0)
        assert row["low"] == pytest.approx(1.0 - other["high"])
    # Larger networks learn sooner in the synthetic sweep: every seed's AUC is higher.
    assert pairs[("hidden_sizes=128x128", "hidden_sizes=32x32")]["probability"] == 1.0
