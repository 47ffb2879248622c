"""Hostile input: specs and folders made to hurt the machine or the user get a short message
naming the key or path, exit code 2, no traceback, and nothing written where nothing should be."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.schema import TRIALS, write_parquet_atomic
from analysis.synthetic import write_sweep
from dqn_agent import AgentConfig, ConfigError, TrialSpec
from sweeps.cli import main
from sweeps.spec import MAX_TRIALS, SpecError, parse_spec
from sweeps.store import TrialOutcome, trial_row
from tests.conftest import TINY_SPEC, in_mount_namespace, spec_with

MOST_OUTPUT = 4_000
"""Most characters a refusal may print: a few lines, whatever the input."""
BIG = 2**63  # one past what the results tables hold


def _with(**changes: object) -> str:
    """The tiny spec with top-level keys replaced (None removes a key)."""
    return spec_with(TINY_SPEC, changes, width=10**9)


def _laughs(levels: int) -> str:
    """Nested aliases, each level nine of the one before: 9**levels values from a few lines."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\ngrid: {{hidden_sizes: *l{levels - 1}}}\n"


BILLION_LAUGHS = _laughs(9)


def _alias_chain(length: int) -> str:
    """Each anchor a list holding the one before: nesting `length` deep from flat lines."""
    lines = ["c0: &c0 [1]"] + [f"c{i}: &c{i} [*c{i - 1}]" for i in range(1, length)]
    return _with() + "\n".join(lines) + "\n"


# (case, spec text, what the message must name)
HOSTILE_SPECS = [
    ("billion laughs", BILLION_LAUGHS, "line 7"),
    ("an alias inside itself", _with() + "loop: &loop [*loop]\n", "holds it"),
    ("deep nesting", "name: " + "[" * 5_000 + "]" * 5_000 + "\n", "nested deeper than 20"),
    ("deep nesting by aliases", _alias_chain(40), "deeper than 20"),
    ("a huge name", _with(name="n" * 200_000), "name"),
    ("a huge key", _with(agent={"k" * 200_000: 1}), "agent.kkkk"),
    ("a huge env id", _with(env="E" * 200_000), "env"),
    ("a huge number as text", _with(budget={"env_steps": "0." + "1" * 100_000}), "budget"),
    ("thousands of bad seeds", _with(seeds=list(range(-5_000, 0))), "seeds[0]"),
    ("an integer of 5,000 digits", "seeds: [" + "1" * 5_000 + "]\n", "does not parse"),
    ("an integer no float holds", _with(agent={"lr": 10**400}), "agent.lr"),
    ("CPUs no float holds", _with(resources={"cpus_per_trial": 10**400}), "cpus_per_trial"),
    ("code from the env id", _with(env="this:Zen-v0"), "--allow-env-imports"),
    ("env steps past int64", _with(budget={"env_steps": BIG}), "budget.env_steps"),
    ("target period past int64", _with(agent={"target_update_every": 2**64}), "target_update"),
    ("a width past int64", _with(grid={"hidden_sizes": [[16], [BIG]]}), "hidden_sizes[1]"),
    ("max_in_flight past int64", _with(resources={"max_in_flight": BIG}), "max_in_flight"),
    ("a CPU fraction Ray rounds to 0", _with(resources={"cpus_per_trial": 1e-5}), "cpus_per"),
    ("a GPU fraction Ray rounds to 0", _with(resources={"gpus_per_trial": 1e-5}), "gpus_per"),
    ("a name ending in a newline", _with(name="tiny\n"), "name"),
    ("a name with a control character", _with(name="ti\x07ny"), "name"),
    ("a variant name ending in a newline", _with(variants={"a\n": {}}), "variants.'a\\n'"),
    ("a key that moves the cursor", _with(agent={"\x1b[2Jlr": 1}), "agent.'\\x1b[2Jlr'"),
    (
        "six grid axes of twenty values",
        _with(
            agent=None,
            grid={
                key: [i + 1 for i in range(20)]
                for key in ("batch_size", "train_every", "gradient_steps", "target_update_every")
            }
            | {"lr": [0.001 * (i + 1) for i in range(20)], "gamma": [i / 20 for i in range(20)]},
        ),
        "128,000,000 trials (variants x grid x seeds = 1 x 64,000,000 x 2)",
    ),
    ("a million seeds of two configurations", _with(seeds=MAX_TRIALS), "2,000,000 trials"),
]
IDS = [case[0] for case in HOSTILE_SPECS]


def _check_refusal(code: int, err: str, out: str, words: str) -> None:
    assert code == 2, err
    assert words in err
    assert "Traceback" not in err + out
    assert len(err) + len(out) < MOST_OUTPUT, err[:500]


@pytest.mark.parametrize(("case", "text", "words"), HOSTILE_SPECS, ids=IDS)
def test_validate_refuses_hostile_specs_in_a_few_lines(
    case: str, text: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    start = time.perf_counter()
    code = main(["validate", str(spec)])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, words)
    assert f"{spec}: " in captured.err
    assert time.perf_counter() - start < 20  # refused from its shape, not expanded
    assert "Beautiful is better than ugly" not in captured.out  # module 'this' never imported
    assert os.listdir(tmp_path) == ["spec.yaml"]


@pytest.mark.parametrize(("case", "text", "words"), HOSTILE_SPECS, ids=IDS)
def test_run_refuses_hostile_specs_before_writing_anything(
    case: str, text: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "results"
    code = main(["run", str(spec), "--out", str(out)])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, words)
    assert not out.exists()


@pytest.mark.parametrize("case", ["billion laughs", "deep nesting", "code from the env id"])
def test_the_command_line_prints_no_traceback(case: str, tmp_path: Path) -> None:
    """As a user runs it: a process of its own, whose whole stderr is read."""
    [(text, words)] = [(t, w) for c, t, w in HOSTILE_SPECS if c == case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    command = "import sys; from sweeps.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", command, "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        check=False,
    )
    _check_refusal(done.returncode, done.stderr, done.stdout, words)


def test_the_billion_laughs_file_is_small_and_refused_at_its_line() -> None:
    assert len(BILLION_LAUGHS) < 600
    with pytest.raises(SpecError) as caught:
        parse_spec(BILLION_LAUGHS, source="laughs.yaml", check_env=False)
    [(where, message)] = caught.value.problems
    assert where == "line 7, column 5"  # l6 (its anchor): the first level past 2,000,000 values
    assert "more than 2,000,000 values" in message


def test_anchors_and_merge_keys_still_work() -> None:
    text = _with(
        agent=None,
        grid=None,
        variants={"plain": {"double": True, "dueling": False}},
    ).replace("plain:", "plain: &base", 1)
    text += "  both:\n    <<: *base\n    dueling: true\n"
    spec = parse_spec(text, check_env=False)
    assert [point.label for point in spec.configs] == ["plain", "both"]
    assert spec.configs[1].agent.double and spec.configs[1].agent.dueling


def test_values_in_messages_are_cut_to_a_short_excerpt() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(name="n" * 10_000), source="s.yaml", check_env=False)
    [(where, message)] = caught.value.problems
    assert where == "name"
    assert "nnn..." in message and len(message) < 300


def test_a_spec_file_past_the_limit_is_not_read_to_its_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["validate", "/dev/zero"])  # endless
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, "/dev/zero: larger than 16 MB")


def test_an_env_id_naming_a_module_needs_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(_with(env="no_such_module_here:Foo-v0"))
    assert main(["validate", str(spec)]) == 2
    refused = capsys.readouterr().err
    assert "env: 'no_such_module_here:Foo-v0' names a module to import" in refused
    assert "--allow-env-imports" in refused
    # With the flag, gymnasium is asked (and fails to import the module, which is not there).
    assert main(["validate", str(spec), "--allow-env-imports"]) == 2
    allowed = capsys.readouterr().err
    assert "env: gymnasium cannot make" in allowed and "no_such_module_here" in allowed
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out), "--allow-env-imports"]) == 2
    assert "gymnasium cannot make" in capsys.readouterr().err
    assert not out.exists()


def test_integers_up_to_int64_are_kept_exactly_in_the_trials_table(tmp_path: Path) -> None:
    top = 2**63 - 1
    agent = AgentConfig(target_update_every=top, epsilon_decay_steps=top)
    with pytest.raises(ConfigError, match=r"target_update_every=.* integers from 1 to 2\*\*63"):
        AgentConfig(target_update_every=top + 1)
    trial = TrialSpec(env_id="CartPole-v1", agent=agent, seed=top)
    row = trial_row(TrialOutcome(spec=trial, status="failed", error="stopped"))
    path = tmp_path / "trials.parquet"
    write_parquet_atomic(TRIALS.from_rows([row], where=path), path)
    [stored] = pd.read_parquet(path).to_dict("records")
    assert (stored["target_update_every"], stored["epsilon_decay_steps"]) == (top, top)
    assert stored["seed"] == top


def test_the_largest_sweep_is_accepted_and_one_more_trial_refused() -> None:
    largest = parse_spec(_with(grid=None, seeds=MAX_TRIALS), check_env=False)
    assert largest.n_trials == MAX_TRIALS
    grid = {"hidden_sizes": [[16], [32]]}
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(grid=grid, seeds=MAX_TRIALS // 2 + 1), check_env=False)
    [(where, message)] = caught.value.problems
    assert where == "seeds"
    assert "1,000,002 trials (variants x grid x seeds = 1 x 2 x 500,001)" in message


def _results_folder(where: Path) -> tuple[Path, Path]:
    """A spec and a results folder of it holding a spec.yaml and a marker file (no Ray)."""
    spec = where / "spec.yaml"
    spec.write_text(TINY_SPEC)
    real = where / "real"
    real.mkdir()
    (real / "spec.yaml").write_text(TINY_SPEC)
    (real / "keep.txt").write_text("results")
    return spec, real


def test_fresh_refuses_a_results_folder_that_is_a_symbolic_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, real = _results_folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny").symlink_to(real, target_is_directory=True)
    code = main(["run", str(spec), "--out", str(out), "--fresh"])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, f"{out / 'tiny'} is a symbolic link")
    assert (out / "tiny").is_symlink() and os.readlink(out / "tiny") == str(real)
    assert sorted(os.listdir(real)) == ["keep.txt", "spec.yaml"]
    assert sorted(os.listdir(out)) == ["tiny"]  # nothing renamed away, no lock left


def test_run_refuses_a_trials_table_without_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, real = _results_folder(tmp_path)
    trials = real / "trials.parquet"
    pd.DataFrame({"trial_id": ["abc"], "config": ["x"], "seed": [0]}).to_parquet(trials)
    before = {p.name: p.stat().st_mtime_ns for p in real.iterdir()}
    out = tmp_path / "out"
    out.mkdir()
    shutil.move(real, out / "tiny")
    code = main(["run", str(spec), "--out", str(out)])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, f"{out / 'tiny' / 'trials.parquet'} lacks")
    assert "env_id, status" in captured.err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "tiny").iterdir()} == before


@pytest.mark.parametrize("command", ["plot", "summary"])
def test_analysis_refuses_a_trials_table_without_its_columns(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "s", n_seeds=2, env_steps=3000)
    trials = folder / "trials.parquet"
    pd.read_parquet(trials).drop(columns="status").to_parquet(trials)
    code = main([command, str(folder)])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, "trials.parquet")
    assert "status" in captured.err
    assert not (folder / "plots").exists()


def test_plot_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_sweep(tmp_path, "s", n_seeds=2, env_steps=3000)
    taken = tmp_path / "figures.png"
    taken.write_bytes(b"not a folder")
    code = main(["plot", str(folder), "--out", str(taken)])
    captured = capsys.readouterr()
    _check_refusal(code, captured.err, captured.out, f"--out: {taken} exists and is not a folder")
    assert taken.read_bytes() == b"not a folder"
    assert not (folder / "plots").exists()


def _with_mount(mount: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `dqn-sweep argv` after the shell command `mount`, in a mount namespace of its own
    (its mounts end with the process); skips where this machine cannot mount."""
    python = "import sys; from sweeps.cli import main; sys.exit(main(sys.argv[1:]))"
    command = shlex.join([sys.executable, "-c", python, *argv])
    return in_mount_namespace(f"{mount} && exec {command}", timeout=120)


@pytest.mark.parametrize("with_plots_folder", [False, True], ids=["no plots/", "plots/"])
def test_plotting_a_read_only_folder_says_where_and_why(
    with_plots_folder: bool, tmp_path: Path
) -> None:
    folder = write_sweep(tmp_path, "s", n_seeds=2, env_steps=3000)
    if with_plots_folder:
        (folder / "plots").mkdir()
    where = shlex.quote(str(folder))
    read_only = f"mount --bind {where} {where} && mount -o remount,bind,ro {where}"
    done = _with_mount(read_only, ["plot", str(folder)])
    place = folder / "plots" if with_plots_folder else folder
    words = f"{place}: cannot write there (a read-only file system)"
    _check_refusal(done.returncode, done.stderr, done.stdout, words)
    plots = folder / "plots"
    assert not plots.exists() or not os.listdir(plots)


def test_plotting_onto_a_full_disk_says_where_and_why(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "s", n_seeds=2, env_steps=3000)
    out = tmp_path / "small"
    out.mkdir()
    tiny = f"mount -t tmpfs -o size=32k tmpfs {shlex.quote(str(out))}"  # less than one figure
    done = _with_mount(tiny, ["plot", str(folder), "--out", str(out)])
    _check_refusal(done.returncode, done.stderr, done.stdout, f"error: cannot write {out}")
    assert "No space left on device" in done.stderr
    assert not os.listdir(out)  # the mount is gone with its process; nothing leaked below it
