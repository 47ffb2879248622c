"""Normalized scores: the shipped ranges are the recorded measurements, and the arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.normalization import (
    RANDOM_SCORES,
    SCORES,
    ScoreRange,
    normalized,
    overrides_from_spec,
    parse_scores_option,
    score_overrides,
    score_range,
)

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


def _ends(span: ScoreRange) -> tuple[float, float]:
    return span.random, span.reference


@pytest.mark.parametrize(
    ("text", "env_id", "ends"),
    [
        ("CartPole-v1=9.4:500", "CartPole-v1", (9.4, 500.0)),
        ("Acrobot-v1=-500:-100", "Acrobot-v1", (-500.0, -100.0)),  # negative numbers
        ("MinAtar/Breakout-v0=0.5:1e1", "MinAtar/Breakout-v0", (0.5, 10.0)),
        ("my_pkg:Toy-v0=0:1", "my_pkg:Toy-v0", (0.0, 1.0)),  # an id holding ':'
        ("MountainCar-v0=-200:-110 ", "MountainCar-v0", (-200.0, -110.0)),
    ],
)
def test_the_scores_option_reads_an_env_and_two_numbers(
    text: str, env_id: str, ends: tuple[float, float]
) -> None:
    got_env, span = parse_scores_option(text)
    assert (got_env, _ends(span), span.source) == (env_id, ends, "--scores")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CartPole-v1", r"--scores 'CartPole-v1': expected ENV=RANDOM:REFERENCE"),
        ("CartPole-v1=500", "expected ENV=RANDOM:REFERENCE"),
        ("=9.4:500", "expected ENV=RANDOM:REFERENCE"),
        ("CartPole-v1=1:2:3", "expected ENV=RANDOM:REFERENCE"),
        ("CartPole-v1=:500", "RANDOM of CartPole-v1 is '', not a number"),
        ("CartPole-v1=9.4:inf", "REFERENCE of CartPole-v1 is 'inf', not a finite number"),
        ("CartPole-v1=500:500.0", "the REFERENCE of CartPole-v1 .500. equals its RANDOM"),
    ],
)
def test_a_bad_scores_option_is_refused_naming_the_option_and_the_form(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_scores_option(text)
    assert str(err.value).startswith("--scores ")


def test_the_spec_gives_ranges_under_per_env_and_the_rest_is_ignored(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    assert overrides_from_spec(spec) == {}  # no spec at all
    spec.write_text("name: s\nenv: [CartPole-v1, Acrobot-v1]\n")
    assert overrides_from_spec(spec) == {}  # no per_env
    spec.write_text(
        "name: s\nenv: [CartPole-v1, Acrobot-v1]\nagent: {lr: 0.001}\nper_env:\n"
        "  CartPole-v1:\n    budget: {env_steps: 1000}\n    scores: {random: 9, reference: 500}\n"
        "  Acrobot-v1:\n    agent: {lr: 0.01}\n"
    )
    ranges = overrides_from_spec(spec)
    assert list(ranges) == ["CartPole-v1"]
    assert _ends(ranges["CartPole-v1"]) == (9.0, 500.0)
    assert ranges["CartPole-v1"].source == f"per_env.CartPole-v1.scores in {spec}"


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ("{random: 9, reference: 9.0}", r"per_env.CartPole-v1.scores.reference \(9\) equals"),
        ("{random: 9, reference: .nan}", "per_env.CartPole-v1.scores.reference is nan, not a fin"),
        ("{random: true, reference: 500}", "per_env.CartPole-v1.scores.random is True, not a"),
        ("{reference: 500}", "per_env.CartPole-v1.scores.random is missing"),
        ("500", r"per_env.CartPole-v1.scores must be \{random: R, reference: F\}"),
    ],
)
def test_a_bad_spec_range_names_the_file_and_the_key(
    scores: str, message: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"per_env:\n  CartPole-v1:\n    scores: {scores}\n")
    with pytest.raises(ValueError, match=message) as err:
        overrides_from_spec(spec)
    assert str(err.value).startswith(f"{spec}: ")


def test_the_command_line_wins_over_the_spec_which_wins_over_the_shipped_range(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("per_env:\n  CartPole-v1:\n    scores: {random: 0, reference: 1000}\n")
    b.write_text("per_env:\n  Acrobot-v1:\n    scores: {random: -500, reference: -50}\n")
    from_specs = score_overrides([a, b, tmp_path / "missing.yaml"])
    assert {env: _ends(r) for env, r in from_specs.items()} == {
        "CartPole-v1": (0.0, 1000.0),
        "Acrobot-v1": (-500.0, -50.0),
    }
    given = [parse_scores_option("CartPole-v1=0:250")]
    merged = score_overrides([a, b], given)
    assert _ends(merged["CartPole-v1"]) == (0.0, 250.0) and merged["CartPole-v1"].source == (
        "--scores"
    )
    np.testing.assert_allclose(normalized([125.0], "CartPole-v1", merged), [0.5])
    assert score_range("MountainCar-v0", merged) == SCORES["MountainCar-v0"]  # shipped


def test_disagreeing_specs_need_the_command_line_and_it_may_not_disagree_with_itself(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("per_env:\n  CartPole-v1:\n    scores: {random: 0, reference: 1000}\n")
    b.write_text("per_env:\n  CartPole-v1:\n    scores: {random: 0, reference: 500}\n")
    with pytest.raises(ValueError, match=r"disagree on CartPole-v1; say which to use with"):
        score_overrides([a, b])
    settled = score_overrides([a, b], [parse_scores_option("CartPole-v1=0:400")])
    assert _ends(settled["CartPole-v1"]) == (0.0, 400.0)
    assert _ends(score_overrides([a, a])["CartPole-v1"]) == (0.0, 1000.0)  # agreeing: fine
    twice = [parse_scores_option("CartPole-v1=0:400"), parse_scores_option("CartPole-v1=0:300")]
    with pytest.raises(ValueError, match="--scores gives CartPole-v1 twice, 0:400 and 0:300"):
        score_overrides([], twice)
