"""The results contract: real, synthetic and legacy folders checked by one function, and checks
that fail with a message naming the file and the column."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import load_results
from analysis.schema import (
    AGENT_COLUMNS,
    EPISODES,
    EVALS,
    IDENTITY_COLUMNS,
    TRIALS,
    SchemaError,
    check_file,
    check_folder,
    write_parquet_atomic,
)
from analysis.synthetic import write_sweep
from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, train_group
from dqn_agent.training import EPISODE_COLUMNS, EVAL_COLUMNS
from sweeps.cli import main
from sweeps.store import check_agent_tables
from tests.conftest import write_spec

LEGACY = Path(__file__).parent / "data" / "legacy"

REAL_SPEC = """\
name: real
env: CartPole-v1
seeds: 2
budget: {env_steps: 200}
eval: {every_steps: 100, episodes: 1}
agent:
  lr: 0.001
  batch_size: 16
  buffer_size: 200
  learning_starts: 50
  train_every: 4
  gradient_steps: 1
  max_grad_norm: null
grid:
  hidden_sizes: [[16], [8]]
"""
"""Two configurations x two seeds of 200 env steps; no clipping, so a column holds missing
values where the contract allows them."""


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, ray_instance: None) -> Iterator[Path]:
    """A results folder written by `dqn-sweep run`: training, Ray and the store, as users run."""
    where = tmp_path_factory.mktemp("real")
    assert main(["run", str(write_spec(where, REAL_SPEC)), "--out", str(where), "--quiet"]) == 0
    yield where / "real"


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    configs = ("hidden_sizes=32x32", "dueling,hidden_sizes=64x64,lr=0.002")
    return write_sweep(tmp_path, "synthetic", configs=configs, n_seeds=2, n_failed=1)


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def _schema(path: Path) -> dict[str, str]:
    return {field.name: str(field.type) for field in pq.read_schema(path)}


@pytest.mark.slow
def test_the_synthetic_folder_passes_the_same_check_as_a_real_one(
    real: Path, synthetic: Path
) -> None:
    for folder in (real, synthetic):
        check_folder(folder, strict=True)
    # ... and the check has something to compare: the same columns, stored as the same types.
    trial = pd.read_parquet(synthetic / "trials.parquet")["trial_id"].iloc[0]
    files = {
        TRIALS: (real / "trials.parquet", synthetic / "trials.parquet"),
        EPISODES: (_first(real / "episodes"), synthetic / "episodes" / f"{trial}.parquet"),
        EVALS: (_first(real / "evals"), synthetic / "evals" / f"{trial}.parquet"),
    }
    for table, (real_file, synthetic_file) in files.items():
        assert list(_schema(real_file)) == list(table.names)
        assert _schema(synthetic_file) == _schema(real_file), table.name


@pytest.mark.slow
def test_a_real_folder_loads_with_every_column(real: Path) -> None:
    results = load_results(real)
    assert set(TRIALS.names) <= set(results.trials.columns)
    assert results.trials["max_grad_norm"].isna().all()  # no clipping: missing, as allowed
    assert (results.trials["network"] == "mlp").all()


def test_the_agent_tables_are_the_contract() -> None:
    # dqn_agent may not import analysis, so its own column lists are checked against the schema.
    ids = len(IDENTITY_COLUMNS)
    assert dict(list(EPISODES.dtypes.items())[ids:]) == EPISODE_COLUMNS
    assert dict(list(EVALS.dtypes.items())[ids:]) == EVAL_COLUMNS
    agent_fields = [name for name in AgentConfig.__dataclass_fields__ if name != "hidden_sizes"]
    assert [column.name for column in AGENT_COLUMNS] == agent_fields
    check_agent_tables()  # the types too, and what a missing setting meant
    # What training returns, identity columns included, before the store touches it.
    spec = TrialSpec(
        env_id="CartPole-v1",
        agent=AgentConfig(hidden_sizes=(8,), batch_size=8, buffer_size=64, learning_starts=16),
        budget=Budget(env_steps=64),
        eval=EvalSettings(every_steps=32, episodes=1),
        label="hidden_sizes=8",
    )
    (result,) = train_group([spec])
    for frame, table in ((result.episodes, EPISODES), (result.evals, EVALS)):
        assert list(frame.columns) == list(table.names)
        assert {k: str(v) for k, v in frame.dtypes.items()} == table.dtypes


def test_a_schema_that_lacks_a_setting_stops_the_store_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_tau = tuple(column for column in AGENT_COLUMNS if column.name != "tau")
    monkeypatch.setattr("sweeps.store.AGENT_COLUMNS", without_tau)
    with pytest.raises(SchemaError, match=r"agent setting 'tau': AgentConfig calls for float64"):
        check_agent_tables()


def test_a_folder_of_the_previous_release_is_read_but_is_not_this_version() -> None:
    # What the analysis requires of any version: it passes.
    check_folder(LEGACY)
    # What this version writes: the index lacks the `network` setting, added since.
    with pytest.raises(SchemaError) as caught:
        check_folder(LEGACY, strict=True)
    assert caught.value.problems == (
        f"{LEGACY / 'trials.parquet'}: column(s) missing: network, channels, optimizer, eps, "
        "rmsprop_alpha, clip_rewards, terminal_on_life_loss; this version writes them (a "
        "folder written before they existed may lack them, and passes the check that is not "
        "strict)",
    )
    # Read, it has the column, holding what its absence meant.
    trials = load_results(LEGACY).trials
    assert (trials["network"] == "mlp").all() and len(trials) == 8


def _rewrite(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    write_parquet_atomic(change(pd.read_parquet(path)), path)


def test_a_missing_column_is_named_with_its_file(synthetic: Path) -> None:
    path = _first(synthetic / "evals")
    _rewrite(path, lambda evals: evals.drop(columns=["seed", "q_mean"]))
    with pytest.raises(SchemaError) as caught:
        check_folder(synthetic)
    assert str(caught.value) == (
        f"{path}: required column(s) missing: seed; this file was not written by a compatible "
        "dqn-sweeps version"
    )
    with pytest.raises(SchemaError, match=r"column\(s\) missing: q_mean; this version writes"):
        check_file(path, EVALS, strict=True)


def test_a_wrong_dtype_is_named_with_its_file_and_column(synthetic: Path) -> None:
    path = synthetic / "trials.parquet"
    _rewrite(path, lambda t: t.assign(seed=t["seed"].astype("float64"), double=t["double"] * 1))
    with pytest.raises(SchemaError) as caught:
        check_folder(synthetic)
    assert caught.value.problems == (
        f"{path}: column 'seed' is stored as double; the contract says int64",
        f"{path}: column 'double' is stored as int64; the contract says bool",
    )
    # The loader applies the same check, so the analysis never guesses.
    with pytest.raises(SchemaError, match=r"trials\.parquet: column 'seed' is stored as double"):
        load_results(synthetic)


def test_only_the_strict_check_wants_exact_types_and_no_stray_column(synthetic: Path) -> None:
    path = _first(synthetic / "evals")
    # An older or hand-made writer: integer returns, and a column of its own.
    _rewrite(path, lambda e: e.assign(eval_return_std=e["eval_return_std"].round().astype(int)))
    _rewrite(path, lambda evals: evals.assign(note="hand-made"))
    check_folder(synthetic)
    assert load_results(synthetic).evals["eval_return_std"].dtype == "float64"
    with pytest.raises(SchemaError) as caught:
        check_folder(synthetic, strict=True)
    assert caught.value.problems == (
        f"{path}: column(s) not in the contract: note",
        f"{path}: column 'eval_return_std' is stored as int64; the contract says float64",
    )


def test_missing_values_where_the_contract_allows_none_are_named(synthetic: Path) -> None:
    path = _first(synthetic / "episodes")
    n_rows = len(pd.read_parquet(path))
    _rewrite(path, lambda e: e.assign(episode_length=pd.Series(pd.NA, e.index, dtype="Int64")))
    with pytest.raises(SchemaError) as caught:
        check_folder(synthetic)
    assert str(caught.value) == (
        f"{path}: column 'episode_length' has {n_rows} missing value(s); the contract "
        "(int64) allows none"
    )


def test_the_index_and_its_files_are_checked_together(synthetic: Path) -> None:
    index = synthetic / "trials.parquet"
    trials = pd.read_parquet(index)
    complete = trials.loc[trials["status"] == "complete", "trial_id"].iloc[0]
    (synthetic / "evals" / f"{complete}.parquet").unlink()
    _rewrite(index, lambda t: t.assign(status=t["status"].replace("failed", "crashed")))
    with pytest.raises(SchemaError) as caught:
        check_folder(synthetic)
    assert caught.value.problems == (
        f"{index}: column 'status' holds 'crashed'; the contract allows 'complete' or 'failed'",
        f"{synthetic / 'evals' / complete}.parquet: file is missing, but {index} marks trial "
        f"{complete} complete",
    )


def test_writers_conform_tables_or_name_what_is_wrong(tmp_path: Path) -> None:
    frame = pd.read_parquet(_first(write_sweep(tmp_path) / "evals"))
    assert EVALS.conform(frame.iloc[:, ::-1], where="x").columns.tolist() == list(EVALS.names)
    with pytest.raises(SchemaError, match=r"^here: column\(s\) missing: td_loss\n.*: extra$"):
        EVALS.conform(frame.drop(columns="td_loss").assign(extra=1), where="here")
    # A missing flag is refused, not stored as True (what casting NaN to bool would do).
    row = {c.name: 1 for c in TRIALS.columns} | {"dueling": None}
    with pytest.raises(SchemaError, match=r"^there: column 'dueling' has 1 missing value\(s\)"):
        TRIALS.from_rows([row], where="there")
    with pytest.raises(SchemaError, match=r"there: column\(s\) not in the contract: lr_typo"):
        TRIALS.from_rows([row | {"dueling": True, "lr_typo": 1.0}], where="there")


def test_the_table_of_a_trial_without_an_episode_keeps_its_types(tmp_path: Path) -> None:
    empty = EPISODES.conform(EPISODES.empty(), where="x")
    path = tmp_path / "e.parquet"
    write_parquet_atomic(empty, path)
    check_file(path, EPISODES, strict=True)
    # An older writer stored such a file's columns as nulls: readable, but not this version.
    table = pa.table({name: pa.array([], pa.null()) for name in EPISODES.names})
    pq.write_table(table, path)
    check_file(path, EPISODES)
    with pytest.raises(SchemaError, match="column 'seed' is stored as null"):
        check_file(path, EPISODES, strict=True)
