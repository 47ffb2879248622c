"""Normalized scores: the shipped ranges are the recorded measurements, and the arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.normalization import RANDOM_SCORES, SCORES, ScoreRange, normalized, score_range

RECORD = Path(__file__).parents[1] / "benchmarks" / "results" / "random_scores.json"


def test_the_shipped_random_scores_are_the_recorded_measurements() -> None:
    measured = {row["env_id"]: row["mean"] for row in json.loads(RECORD.read_text())["envs"]}
    shipped = {env: r.random for env, r in SCORES.items()} | RANDOM_SCORES
    assert set(shipped) == set(measured)
    for env_id, value in shipped.items():
        assert value == pytest.approx(measured[env_id], abs=0.005), env_id


def test_random_is_zero_and_reference_is_one() -> None:
    cartpole = SCORES["CartPole-v1"]
    values = normalized([cartpole.random, cartpole.reference, 260.805], "CartPole-v1")
    np.testing.assert_allclose(values, [0.0, 1.0, 0.5])
    # Lower-is-worse scales with negative returns work the same way.
    np.testing.assert_allclose(normalized([-110.0, -200.0], "MountainCar-v0"), [1.0, 0.0])


def test_a_reference_equal_to_the_random_score_is_refused() -> None:
    with pytest.raises(ValueError, match="equals the random score"):
        ScoreRange(random=3.0, reference=3.0, source="a typo")


def test_an_env_without_a_range_is_named_and_an_override_wins() -> None:
    with pytest.raises(KeyError, match=r"MinAtar/Breakout-v0.*measured: give a reference"):
        score_range("MinAtar/Breakout-v0")
    with pytest.raises(KeyError, match="'Pong'"):
        score_range("Pong")
    mine = {"MinAtar/Breakout-v0": ScoreRange(0.5, 8.5, "my own")}
    np.testing.assert_allclose(normalized([4.5], "MinAtar/Breakout-v0", mine), [0.5])
    override = {"CartPole-v1": ScoreRange(0.0, 100.0, "shorter episodes")}
    np.testing.assert_allclose(normalized([50.0], "CartPole-v1", override), [0.5])
