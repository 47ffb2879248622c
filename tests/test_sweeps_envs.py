"""Several environments in one spec: each from its own preset, settings per environment, trial
ids that do not move when an environment is added, and bad input named with its environment."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dqn_agent import default_config
from sweeps.cli import main
from sweeps.plan import expand, make_plan
from sweeps.spec import SpecError, parse_spec
from tests.conftest import spec_with, write_spec

STUDY = """\
name: study
env: [CartPole-v1, Acrobot-v1, LunarLander-v3]
seeds: 2
budget: {env_steps: 300}
eval: {every_steps: 150, episodes: 1}
agent: {batch_size: 16, buffer_size: 300, learning_starts: 50, train_every: 4}
variants:
  dqn: {}
  double: {double: true}
per_env:
  Acrobot-v1:
    budget: {env_steps: 400}
    eval: {episodes: 2}
    agent: {lr: 0.0005}
    scores: {random: -500, reference: -100}
"""


def _study(**changes: object) -> str:
    """The study with top-level keys replaced (None removes a key)."""
    return spec_with(STUDY, changes)


def test_trials_are_envs_by_configurations_by_seeds_each_env_over_its_own_preset() -> None:
    spec = parse_spec(STUDY)
    assert spec.env_ids == ("CartPole-v1", "Acrobot-v1", "LunarLander-v3")
    assert spec.n_trials == 3 * 2 * 2
    trials = expand(spec)
    assert [(t.env_id, t.label, t.seed) for t in trials[:4]] == [
        ("CartPole-v1", "dqn", 0),
        ("CartPole-v1", "dqn", 1),
        ("CartPole-v1", "double", 0),
        ("CartPole-v1", "double", 1),
    ]
    lunar = spec.part("LunarLander-v3").configs[0].agent
    preset = default_config("LunarLander-v3")
    cartpole = default_config("CartPole-v1")
    # The preset's settings where the spec says nothing (these differ from CartPole's) ...
    for key in ("lr", "target_update_every", "epsilon_end", "epsilon_decay_steps"):
        assert getattr(preset, key) != getattr(cartpole, key)
        assert getattr(lunar, key) == getattr(preset, key)
    # ... and the spec's where it does.
    assert (lunar.batch_size, lunar.buffer_size) == (16, 300)
    assert spec.part("CartPole-v1").configs[1].agent.double


def test_per_env_settings_apply_to_their_environment_only() -> None:
    spec = parse_spec(STUDY)
    acrobot, cartpole = spec.part("Acrobot-v1"), spec.part("CartPole-v1")
    assert acrobot.budget.env_steps == 400 and cartpole.budget.env_steps == 300
    # eval keys given per env replace the shared ones, the others are kept
    assert (acrobot.eval.every_steps, acrobot.eval.episodes) == (150, 2)
    assert (cartpole.eval.every_steps, cartpole.eval.episodes) == (150, 1)
    assert {c.agent.lr for c in acrobot.configs} == {0.0005}
    assert {c.agent.lr for c in cartpole.configs} == {default_config("CartPole-v1").lr}
    assert acrobot.scores == (-500.0, -100.0) and cartpole.scores is None
    budgets = {(t.env_id, t.budget.env_steps) for t in expand(spec)}
    assert budgets == {("CartPole-v1", 300), ("Acrobot-v1", 400), ("LunarLander-v3", 300)}


def test_adding_an_environment_leaves_every_trial_id_as_it_was() -> None:
    one = parse_spec(_study(env="CartPole-v1", per_env=None))
    two = parse_spec(_study(env=["CartPole-v1", "Acrobot-v1"], per_env=None))
    alone = [(t.trial_id, t.label, t.seed) for t in expand(one)]
    beside = [(t.trial_id, t.label, t.seed) for t in expand(two) if t.env_id == "CartPole-v1"]
    assert alone == beside
    assert len({t.trial_id for t in expand(two)}) == two.n_trials  # and no id twice


def test_a_task_never_mixes_environments() -> None:
    spec = parse_spec(_study(variants=None))  # one configuration, the same label everywhere
    for group_size in (None, 4, 100):
        units = make_plan(spec, group_size=group_size, capacity=2).units
        assert all(len({t.env_id for t in unit}) == 1 for unit in units)
        assert sorted(t.trial_id for u in units for t in u) == sorted(
            t.trial_id for t in expand(spec)
        )


def test_a_budget_may_be_given_per_environment_only() -> None:
    envs = ["CartPole-v1", "Acrobot-v1"]
    spec = parse_spec(
        _study(env=envs, budget=None, per_env={e: {"budget": {"env_steps": 250}} for e in envs})
    )
    assert {part.budget.env_steps for part in spec.envs} == {250}
    with pytest.raises(SpecError) as caught:
        parse_spec(
            _study(env=envs, budget=None, per_env={"Acrobot-v1": {"budget": {"env_steps": 9}}})
        )
    assert [where for where, _ in caught.value.problems] == ["budget"]


# (case, spec text, key path the message must name, words it must contain)
BAD = [
    (
        "a duplicated environment",
        _study(env=["CartPole-v1", "Acrobot-v1", "CartPole-v1"], per_env=None),
        "env[2]",
        "duplicate of env[0] (CartPole-v1)",
    ),
    (
        "an unknown id in the list",
        _study(env=["CartPole-v1", "CartPoel-v1"], per_env=None),
        "env[1]",
        "'CartPoel-v1'",
    ),
    (
        "settings for an environment not in the list",
        _study(per_env={"MountainCar-v0": {"budget": {"env_steps": 100}}}),
        "per_env.MountainCar-v0",
        "not an environment of this spec",
    ),
    (
        "a reference score equal to the random score",
        _study(per_env={"Acrobot-v1": {"scores": {"random": -500, "reference": -500}}}),
        "per_env.Acrobot-v1.scores.reference",
        "equals scores.random",
    ),
    (
        "an unknown key under an environment",
        _study(per_env={"Acrobot-v1": {"budgets": {"env_steps": 100}}}),
        "per_env.Acrobot-v1.budgets",
        "did you mean 'budget'",
    ),
    (
        "a bad per-env agent value",
        _study(per_env={"Acrobot-v1": {"agent": {"lr": -1}}}),
        "per_env.Acrobot-v1.agent.lr",
        "-1",
    ),
    (
        "a per-env value of a swept setting",
        _study(per_env={"Acrobot-v1": {"agent": {"double": False}}}),
        "per_env.Acrobot-v1.agent.double",
        "variants.double.double",
    ),
    (
        "a bad per-env eval value",
        _study(per_env={"Acrobot-v1": {"eval": {"episodes": 0}}}),
        "per_env.Acrobot-v1.eval.episodes",
        "0",
    ),
    (
        # The shared batch of 16 is larger than Acrobot's own buffer only.
        "a clash on one environment only",
        _study(per_env={"Acrobot-v1": {"agent": {"buffer_size": 10}}}),
        "agent.batch_size",
        "(buffer_size is set by per_env.Acrobot-v1.agent.buffer_size) (with env Acrobot-v1)",
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_input_is_refused_naming_the_key_and_the_environment(
    text: str, where: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert where in [path for path, _ in caught.value.problems]
    message = dict(caught.value.problems)[where]
    assert words in message
    # The command line: exit 2, the file and key path named, nothing written.
    spec = write_spec(tmp_path, text)
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out)]) == 2
    assert f"{spec}: {where}: " in capsys.readouterr().err
    assert not out.exists()


def test_a_shared_value_bad_for_one_preset_only_names_that_environment() -> None:
    # LunarLander's preset samples batches of 128, the others' of 64: a shared buffer of 100
    # holds a batch of CartPole or Acrobot, not one of LunarLander.
    text = _study(agent={"buffer_size": 100, "learning_starts": 50}, per_env=None)
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    ((path, message),) = caught.value.problems
    assert path == "agent.buffer_size"
    assert "set agent.batch_size" in message and message.endswith("(with env LunarLander-v3)")


def test_validate_lists_each_environment_and_its_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(write_spec(tmp_path, STUDY))]) == 0
    out = capsys.readouterr().out
    assert "3 environments x 2 configuration(s) x 2 seed(s) = 12 trials" in out
    assert "  Acrobot-v1: 400 env steps a trial" in out
    assert "  CartPole-v1: 300 env steps a trial" in out


@pytest.mark.slow
@pytest.mark.usefixtures("ray_instance")
def test_adding_an_environment_trains_only_its_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _study(env="CartPole-v1", per_env=None, variants=None, seeds=1)
    out = tmp_path / "results"
    assert main(["run", str(write_spec(tmp_path, first)), "--out", str(out)]) == 0
    folder = out / "study"
    before = {p: p.read_bytes() for p in sorted((folder / "episodes").rglob("*.parquet"))}
    capsys.readouterr()

    second = _study(env=["CartPole-v1", "Acrobot-v1"], per_env=None, variants=None, seeds=1)
    assert main(["run", str(write_spec(tmp_path, second)), "--out", str(out)]) == 0
    assert "2 trials, 1 already complete, 1 to train" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in before} == before  # the CartPole trial untouched
    trials = pd.read_parquet(folder / "trials.parquet")
    assert sorted(trials["env_id"]) == ["Acrobot-v1", "CartPole-v1"]
    assert set(trials["status"]) == {"complete"}
    evals = pd.read_parquet(folder / "evals")
    assert set(evals["env_id"]) == {"Acrobot-v1", "CartPole-v1"}
