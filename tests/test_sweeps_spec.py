"""Sweep specs: every problem is caught before anything runs, named by file and key path."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dqn_agent.config
from dqn_agent import AgentConfig, Budget, ConfigError, EvalSettings
from sweeps.cli import main
from sweeps.spec import SpecError, load_spec, parse_spec
from tests.conftest import spec_with

SPECS = sorted((Path(__file__).parents[1] / "sweeps" / "specs").glob("*.yaml"))

VALID = """\
name: tiny
env: CartPole-v1
seeds: 2
budget: {env_steps: 300}
eval: {every_steps: 150, episodes: 2}
agent: {batch_size: 16, buffer_size: 500, learning_starts: 50, lr: 1e-3}
grid:
  hidden_sizes: [[16], [32]]
"""


def _with(**changes: object) -> str:
    """The valid spec with top-level keys replaced (None removes a key)."""
    return spec_with(VALID, changes)


# (case, spec text, key path the message must name, words it must contain)
BAD_SPECS = [
    ("unknown top key", _with(seed=3), "seed", "did you mean 'seeds'"),
    (
        "unknown agent key",
        _with(agent={"hiden_sizes": [16]}),
        "agent.hiden_sizes",
        "did you mean 'hidden_sizes'",
    ),
    ("unknown grid key", _with(grid={"learning_rate": [0.1]}), "grid.learning_rate", "lr"),
    ("wrong type", _with(agent={"lr": "fast"}), "agent.lr", "a number"),
    (
        "impossible grid value",
        _with(grid={"hidden_sizes": [[16], [0]]}),
        "grid.hidden_sizes[1]",
        "positive integers",
    ),
    (
        "values that clash",
        _with(agent={"batch_size": 64, "buffer_size": 32}),
        "agent.batch_size",
        "at most buffer_size",
    ),
    ("unknown env", _with(env="NoSuchEnv-v0"), "env", "not a registered"),
    ("unsupported spaces", _with(env="Pendulum-v1"), "env", "Discrete"),
    ("empty grid axis", _with(grid={"lr": []}), "grid.lr", "empty list"),
    ("duplicate seeds", _with(seeds=[0, 1, 1]), "seeds[2]", "duplicate seed 1"),
    ("YAML that does not parse", "name: [tiny\nenv: CartPole-v1\n", "line 2", "does not parse"),
    (
        "grid key also in agent",
        _with(grid={"lr": [0.001, 0.01]}),
        "grid.lr",
        "also given under agent",
    ),
    (
        "two budgets",
        _with(budget={"env_steps": 300, "episodes": 5}),
        "budget: give exactly one",  # the key path once, not "budget: budget:"
        "env_steps or episodes",
    ),
    ("zero budget", _with(budget={"env_steps": 0}), "budget.env_steps", "integers >= 1"),
    ("unsafe name", _with(name="../elsewhere"), "name", "folder-safe"),
    ("missing env", _with(env=None), "env", "missing"),
    ("no CPU", _with(resources={"cpus_per_trial": 0}), "resources.cpus_per_trial", "> 0"),
    ("negative GPU", _with(resources={"gpus_per_trial": -0.5}), "resources.gpus_per_trial", ">= 0"),
    ("not a number", _with(agent={"lr": float("nan")}), "agent.lr", "not a finite number"),
    ("bad eval", _with(eval={"every_steps": -1}), "eval.every_steps", "integers >= 1"),
    (
        "widths not in lists",
        _with(grid={"hidden_sizes": [64, 128]}),
        "grid.hidden_sizes[0]",
        "list of layer widths",
    ),
    ("duplicate grid value", _with(grid={"gamma": [0.9, 0.90]}), "grid.gamma[1]", "duplicate"),
    (
        "variant key also in agent",
        _with(variants={"soft": {"lr": 0.01}}),
        "variants.soft.lr",
        "also given under agent",
    ),
    ("not a mapping", "- just\n- a list\n", "", "expected a mapping"),
    ("empty budget", _with(budget={}), "budget", "give budget: {env_steps: N}"),
    ("budget without a value", _with(budget={"env_steps": None}), "budget.env_steps", "no value"),
    (
        "a number in quotes",
        _with(budget={"env_steps": "3000"}),
        "budget.env_steps",
        "write 3000 without quotes",
    ),
    (
        "number YAML reads as text",
        _with(budget={"env_steps": "3e5"}),
        "budget.env_steps: '3e5' is invalid",
        "YAML read 3e5 as text: write 300000",
    ),
    (
        "a default that clashes",
        _with(agent={"buffer_size": 10}),
        "agent.buffer_size",
        "batch_size is at its default: set agent.batch_size",
    ),
    ("seed too large for the results", _with(seeds=[2**63]), "seeds[0]", "2**63 - 1"),
    ("negative seed", _with(seeds=[-1]), "seeds[0]", "from 0 to"),
    ("env module that fails to import", _with(env="no_such_module:Foo-v0"), "env", "no_such"),
    ("key given twice", VALID + "seeds: 3\n", "line 9", "duplicate key 'seeds'"),
    ("seed count past all reason", _with(seeds=10**12), "seeds", "a count from 1 to 1,000,000"),
    ("seed count YAML reads as text", _with(seeds="1e3"), "seeds", "YAML read 1e3 as text"),
    (
        "integer YAML reads as text",
        _with(agent={"buffer_size": "1e5"}),
        "agent.buffer_size: '1e5' is text, not an integer",
        "YAML read 1e5 as text: write 100000",
    ),
    ("variant named yes", _with(variants={True: {}}), "variants.True", "quote the name"),
    (
        "a default that clashes in the grid",
        _with(agent=None, grid={"epsilon_start": [1.0, 0.01]}),
        "grid.epsilon_start[1]",
        "epsilon_end is at its default: set agent.epsilon_end",
    ),
    (
        "values that clash across sections",
        _with(agent=None, grid={"batch_size": [64]}, variants={"small": {"buffer_size": 32}}),
        "grid.batch_size[0]: 64 is invalid",
        "(buffer_size is set by variants.small.buffer_size)",
    ),
    ("unknown network family", _with(agent={"network": "cnn"}), "agent.network", "'mlp'"),
    (
        "unknown network in the grid",
        _with(grid={"network": ["mlp", "resnet"]}),
        "grid.network[1]",
        "'mlp'",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "path", "words"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_names_file_and_key(case: str, text: str, path: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="my_spec.yaml")
    message = str(caught.value)
    assert f"my_spec.yaml: {path}" in message
    assert words in message


@pytest.mark.parametrize(
    ("case", "text", "path", "words"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_run_with_bad_spec_exits_2_and_writes_nothing(
    case: str,
    text: str,
    path: str,
    words: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: {path}" in err
    assert words in err
    assert not out.exists()


def test_several_problems_are_reported_at_once() -> None:
    text = _with(seeds=[3, 3], agent={"lr": -1.0}, eval={"episodes": 0})
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml")
    paths = [path for path, _ in caught.value.problems]
    assert paths == ["seeds[1]", "eval.episodes", "agent.lr"]


def test_bad_values_are_named_beside_a_bad_key() -> None:
    # An unknown key stops the configurations from being built; each value is still checked.
    agent = {"lr": -1.0, "hiden_sizes": [3], "gamma": 2.0}
    text = _with(agent=agent, grid={"hidden_sizes": [[16], [0]]}, variants={"a": {"tau": 0.0}})
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml")
    problems = dict(caught.value.problems)
    assert list(problems) == [
        "agent.hiden_sizes",
        "agent.lr",
        "agent.gamma",
        "grid.hidden_sizes[1]",
        "variants.a.tau",
    ]
    assert problems["grid.hidden_sizes[1]"].startswith("[0] is invalid: allowed values are")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nowhere\.yaml: file not found"):
        load_spec(tmp_path / "nowhere.yaml")


def test_values_are_made_canonical() -> None:
    # 1e-3 is text to YAML 1.1, and tau 1 must name the same trials as tau 1.0.
    same = {"batch_size": 16, "buffer_size": 500, "learning_starts": 50}
    one = parse_spec(_with(agent={"lr": "1e-3", "tau": 1, **same}))
    two = parse_spec(_with(agent={"lr": 0.001, "tau": 1.0, **same}))
    assert [c.agent for c in one.configs] == [c.agent for c in two.configs]
    assert one.configs[0].agent.lr == 0.001


def test_defaults_come_from_the_environment() -> None:
    spec = parse_spec(
        _with(env="LunarLander-v3", agent=None, grid=None, budget={"env_steps": 100_000})
    )
    assert spec.configs[0].agent.lr == pytest.approx(6.3e-4)
    assert spec.configs[0].label == "default"


def test_seeds_as_count_or_list() -> None:
    assert parse_spec(_with(seeds=3)).seeds == (0, 1, 2)
    assert parse_spec(_with(seeds=[7, 2])).seeds == (7, 2)


def test_empty_sections_take_the_defaults() -> None:
    spec = parse_spec(_with(eval=None, resources=None) + "eval:\nresources:\n")
    assert (spec.eval.every_steps, spec.resources.cpus_per_trial) == (2_500, 1.0)


def test_budget_in_episodes() -> None:
    spec = parse_spec(_with(budget={"episodes": 20}))
    assert (spec.budget.env_steps, spec.budget.episodes) == (None, 20)


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.n_trials >= 2
    assert spec.text == path.read_text()


def test_the_course_spec_holds_the_course_settings() -> None:
    spec = load_spec(next(p for p in SPECS if p.name == "network_sizes.yaml"))
    course = {
        "lr": 1e-3,
        "batch_size": 64,
        "buffer_size": 5000,
        "gamma": 0.99,
        "target_update_every": 50,
        "tau": 1.0,
        "epsilon_start": 1.0,
        "epsilon_end": 0.05,
        "epsilon_schedule": "exponential",
        "epsilon_decay_steps": 750,
        "loss": "mse",
        "train_every": 1,
        "gradient_steps": 1,
        "learning_starts": 64,  # learning begins as soon as a batch can be drawn
        "max_grad_norm": None,
    }
    sizes = [(64,), (256,), (64, 64), (256, 256)]
    defaults = AgentConfig().to_dict()
    expected = [AgentConfig.from_dict({**defaults, **course, "hidden_sizes": s}) for s in sizes]
    assert [point.agent for point in spec.configs] == expected
    assert (len(spec.seeds), spec.budget.env_steps, spec.env_id) == (10, 50_000, "CartPole-v1")


def test_a_budget_that_ends_before_learning_starts_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_spec(VALID).warnings() == []
    path = tmp_path / "late.yaml"
    path.write_text(_with(budget={"env_steps": 50}))  # learning_starts 50: nothing learns
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: agent.learning_starts (50) is not below budget.env_steps (50)" in err
    assert "never take a gradient step" in err


def test_validate_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    smoke = next(p for p in SPECS if p.name == "smoke.yaml")
    assert main(["validate", str(smoke)]) == 0
    out = capsys.readouterr().out
    assert "2 configuration(s) x 2 seed(s) = 4 trials" in out
    assert "hidden_sizes=16" in out and "hidden_sizes=32" in out


@pytest.mark.parametrize(
    ("resources", "lines"),
    [
        (
            "cpus_per_trial: 1",
            [
                "on this machine (2 CPUs, 2 tasks at a time): 4 tasks of 10 seeds",
                "estimated training time: 5.2 min (8.8 min of CPU time), by the planner's",
            ],
        ),
        (  # two tasks share each core: at least the CPU time over the 2 cores
            "cpus_per_trial: 0.5",
            [
                "on this machine (2 CPUs, 4 tasks at a time): 5 tasks of 5, 5, 10, 10 and 10 seeds",
                "estimated training time: 4.9 min (9.9 min of CPU time)",
            ],
        ),
        (
            "cpus_per_trial: 2",
            [
                "on this machine (2 CPUs, 1 task at a time): 4 tasks of 10 seeds",
                "estimated training time: 8.8 min (8.8 min of CPU time)",
                "(the model costs a task as one core; its 2 CPUs may speed it up)",
            ],
        ),
        (
            "{cpus_per_trial: 1, max_in_flight: 1}",
            [
                "on this machine (2 CPUs, 1 task at a time): 4 tasks of 10 seeds",
                "estimated training time: 8.8 min (8.8 min of CPU time)",
            ],
        ),
        (
            "cpus_per_trial: 4",
            ["no time estimate: a task asks for 4 CPUs and this machine has 2, so a local run"],
        ),
    ],
)
def test_validate_estimates_the_training_time_on_this_machine(
    resources: str,
    lines: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The course sweep on a 2-CPU machine, by the planner's model (README, Running sweeps)."""
    from sweeps import plan

    monkeypatch.setattr(plan, "machine_cpus", lambda: 2)
    course = next(p for p in SPECS if p.name == "network_sizes.yaml")
    text = course.read_text().replace("resources:\n  cpus_per_trial: 1", "resources: RESOURCES")
    path = tmp_path / "course.yaml"
    path.write_text(
        text.replace("RESOURCES", resources if "{" in resources else "{" + resources + "}")
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    for line in lines:
        assert line in out


def test_validate_says_when_it_cannot_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gpu.yaml"
    path.write_text(_with(resources={"gpus_per_trial": 0.5}))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no time estimate: the planner's cost model is of CPU tasks" in out
    assert "estimated training time" not in out


def test_help_and_validate_import_no_numerical_library() -> None:
    """`dqn-sweep --help` and `validate` answer without torch, Ray, pandas, scipy or matplotlib,
    whose imports took five seconds. A fresh interpreter, since this one has them loaded."""
    smoke = next(p for p in SPECS if p.name == "smoke.yaml")
    heavy = ("torch", "ray", "pandas", "scipy", "matplotlib")
    check = (
        "import contextlib, io, sys\n"
        "from sweeps.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    with contextlib.suppress(SystemExit):\n"
        "        main(['--help'])\n"
        f"    assert main(['validate', {str(smoke)!r}]) == 0\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_lazily_imported_names_are_the_exported_ones() -> None:
    """`analysis` and `dqn_agent` list their exports three times (for type checkers, for the
    imports on first use, in `__all__`): every exported name must resolve, and every name
    imported on first use must be exported."""
    import analysis
    import dqn_agent

    assert set(analysis._MODULE_OF) == set(analysis.__all__)
    assert set(dqn_agent._NEEDS_TORCH) <= set(dqn_agent.__all__)
    for package in (analysis, dqn_agent):
        # Importing a submodule sets an attribute of its package: a function named as its own
        # module (analysis.align in analysis/align.py) would then read as the module.
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        for name in package.__all__:
            exported = getattr(package, name)
            assert not isinstance(exported, types.ModuleType) or name == "training", name
            assert exported is not None, f"{package.__name__}.{name}"
    assert analysis.align is analysis.alignment.align


def test_validate_bad_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(_with(grid={"lr": []}))
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}: grid.lr: empty list" in capsys.readouterr().err


def test_group_size_needs_a_budget_in_env_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(_with(budget={"episodes": 5}))
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out), "--group-size", "2"]) == 2
    assert "budget.episodes" in capsys.readouterr().err
    assert not out.exists()


def test_an_address_where_no_cluster_listens_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # free again once closed: nothing listens there
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID)
    out = tmp_path / "results"
    address = f"127.0.0.1:{closed}"
    assert main(["run", str(spec), "--out", str(out), "--address", address]) == 2
    assert f"--address {address}: no Ray cluster answers there" in capsys.readouterr().err
    assert not out.exists()


def test_resources_no_node_has_exit_2_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checked once the local Ray instance is up (it knows the machine's size), still before any
    # file is written: a task asking for more CPUs than the machine has would wait forever.
    spec = tmp_path / "spec.yaml"
    spec.write_text(_with(resources={"cpus_per_trial": 4096}))
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out)]) == 2
    assert "resources: a task asks for 4096 CPU" in capsys.readouterr().err
    assert not out.exists()


def test_values_that_clash_only_with_defaults_they_replace_are_accepted() -> None:
    # Each alone clashes with the other's default (buffer_size 100,000, epsilon_start 1.0).
    agent = {"batch_size": 200_000, "buffer_size": 500_000, "epsilon_end": 0.5}
    spec = parse_spec(_with(agent=None, grid={"epsilon_start": [0.6, 0.9]}, variants={"a": agent}))
    assert [c.agent.batch_size for c in spec.configs] == [200_000, 200_000]


def _nonsense(error: ConfigError) -> str:
    """A reworded message that names other keys first, to lure any reader of the text."""
    return "gamma=0.5 nonsense: tau, lr and buffer_size; see budget.episodes=3 and eval.episodes="


WRONG_TYPE = "nonsense"
"""A value of the wrong type for every field: text where a number, a name or a flag belongs."""
OUT_OF_RANGE: dict[str, object] = {
    "hidden_sizes": [16, 0],
    "lr": 0.0,
    "gamma": 1.5,
    "batch_size": 0,
    "buffer_size": 0,
    "learning_starts": -1,
    "train_every": 0,
    "gradient_steps": 0,
    "target_update_every": 0,
    "tau": 0.0,
    "epsilon_start": 1.5,
    "epsilon_end": -0.1,
    "epsilon_decay_steps": 0,
    "max_grad_norm": -1.0,
}
"""A value of the right type out of range, for each agent field that has a range."""


def _every_field_cases() -> list[tuple[str, str, str]]:
    """(case, spec text, key path to blame) for a bad value of every field in every section."""
    defaults = AgentConfig().to_dict()
    alone = {"agent": None, "grid": None}  # the valid spec's agent and grid would repeat a key
    cases = []
    for field in dataclasses.fields(AgentConfig):
        name = field.name
        bad_values: dict[str, object] = {
            "type": [WRONG_TYPE] if name in ("hidden_sizes", "channels") else WRONG_TYPE
        }
        if name in OUT_OF_RANGE:
            bad_values["range"] = OUT_OF_RANGE[name]
        for kind, bad in bad_values.items():
            grid = {name: [defaults[name], bad]}
            cases += [
                (f"agent.{name} {kind}", _with(agent={name: bad}, grid=None), f"agent.{name}"),
                (f"grid.{name} {kind}", _with(agent=None, grid=grid), f"grid.{name}[1]"),
                (
                    f"variants.{name} {kind}",
                    _with(**alone, variants={"v": {name: bad}}),
                    f"variants.v.{name}",
                ),
            ]
    for section, cls in (("budget", Budget), ("eval", EvalSettings)):
        for field in dataclasses.fields(cls):
            for kind, value in (("type", WRONG_TYPE), ("range", 0)):
                text = _with(**{section: {field.name: value}})
                cases.append((f"{section}.{field.name} {kind}", text, f"{section}.{field.name}"))
    return cases


EVERY_FIELD = _every_field_cases()


def test_every_field_has_a_bad_value_in_every_section() -> None:
    assert set(OUT_OF_RANGE) <= set(AgentConfig.__dataclass_fields__)
    paths = {path for _, _, path in EVERY_FIELD}
    assert {f"agent.{f.name}" for f in dataclasses.fields(AgentConfig)} <= paths
    assert {f"grid.{f.name}[1]" for f in dataclasses.fields(AgentConfig)} <= paths
    assert {f"budget.{f.name}" for f in dataclasses.fields(Budget)} <= paths
    assert {f"eval.{f.name}" for f in dataclasses.fields(EvalSettings)} <= paths


@pytest.mark.parametrize("reworded", [False, True], ids=["as worded", "reworded"])
@pytest.mark.parametrize(("case", "text", "path"), EVERY_FIELD, ids=[c[0] for c in EVERY_FIELD])
def test_a_bad_value_of_any_field_names_its_key_path(
    case: str, text: str, path: str, reworded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key path comes from the error's fields: rewording dqn_agent's messages changes none."""
    if reworded:
        monkeypatch.setattr(dqn_agent.config, "_message", _nonsense)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml", check_env=False)
    [(blamed, message)] = caught.value.problems
    assert blamed == path
    assert "is invalid: allowed values are" in message
    assert "nonsense:" not in message


CLASHES = [
    (_with(agent={"buffer_size": 10}), "agent.buffer_size", "batch_size is at its default"),
    (_with(agent={"batch_size": 64, "buffer_size": 32}), "agent.batch_size", "at most buffer_size"),
    (
        _with(agent=None, grid={"epsilon_start": [1.0, 0.01]}),
        "grid.epsilon_start[1]",
        "epsilon_end",
    ),
    (_with(agent={"epsilon_end": 0.5}, grid={"epsilon_start": [0.4]}), "agent.epsilon_end", "0.4"),
]


@pytest.mark.parametrize(("text", "path", "words"), CLASHES)
def test_rewording_the_messages_does_not_move_the_blame_for_a_clash(
    text: str, path: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dqn_agent.config, "_message", _nonsense)
    with pytest.raises(ConfigError, match=r"^gamma=0\.5 nonsense"):  # the rewording is in force
        AgentConfig(batch_size=64, buffer_size=32)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml", check_env=False)
    [(blamed, message)] = caught.value.problems
    assert (blamed, words in message, "nonsense" in message) == (path, True, False)


def test_a_message_lists_twenty_problems_and_counts_the_rest() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(seeds=[-1] * 30), source="s.yaml", check_env=False)
    assert len(caught.value.problems) == 30  # all kept, for code that reads them
    lines = str(caught.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "s.yaml: ... and 10 more"


@pytest.mark.parametrize("name", ["tiny\n", "tiny\r", "ti\tny", "tiny\x00"])
def test_a_name_with_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(name=name), source="s.yaml", check_env=False)
    [(where, message)] = caught.value.problems
    assert where == "name" and "folder-safe" in message


def test_integer_settings_past_int64_name_their_key() -> None:
    text = _with(budget={"env_steps": 2**63}, eval={"every_steps": 2**63 - 1})
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml", check_env=False)
    [(where, message)] = caught.value.problems
    assert where == "budget.env_steps"
    assert "allowed values are integers from 1 to 2**63 - 1" in message
