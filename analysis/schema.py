"""The results folder's contract in one place: its file names, every table's columns and dtypes,
the check that a folder follows it, and the atomic writer.

    results/<name>/
      spec.yaml                    the spec as given
      manifest.json                provenance of every run: versions, git commit, host, times
      trials.parquet               one row per trial (`TRIALS`)
      episodes/<trial_id>.parquet  one row per training episode (`EPISODES`)
      evals/<trial_id>.parquet     one row per greedy evaluation (`EVALS`)
      models/<trial_id>.pt         final weights with their config (dqn_agent's format)
      plots/                       written by `dqn-sweep plot`

`sweeps.store` writes folders through this module, `analysis.load` reads them through it and
`analysis.synthetic` writes test folders through it, so a synthetic folder has every column of a
real one, with the same dtypes. It imports neither torch, Ray, gymnasium nor dqn_agent, so that
the analysis runs on a laptop that has only the results folder.

The agent's hyperparameter columns (`AGENT_COLUMNS`) are declared here, not derived from
`dqn_agent.AgentConfig`: deriving them would import torch wherever the analysis runs, and having
the store register them at run time would leave the analysis, and synthetic folders, without
them. The price is one line here for each new hyperparameter; `sweeps.store.check_agent_tables`
compares the two (and the agent's episode and eval columns) before a run writes anything, and
names the setting the schema lacks.

Columns are added, never renamed, dropped or retyped. A column is `required` when every version
wrote it and the analysis cannot do without it; any other column may be missing from a folder
written before it existed, and a reader fills in its `fill` value (NaN, or what its absence
meant, such as `network='mlp'`). So the check has two levels:

- not strict (what `analysis.load` applies): a folder of any version that the analysis can read.
  Required columns present; every column that is present stored as its dtype or one that converts
  to it without loss (an integer in a float column); an older writer's all-null column accepted
  where the contract allows a missing value or the file has no rows; no missing value where the
  contract allows none. Columns the contract does not name (a newer version's) are ignored.
- strict: a folder as this version writes it. Also every column of the contract present, each
  stored exactly as its dtype, no column the contract does not name, and spec.yaml and
  manifest.json present. The weights in models/ are dqn_agent's format and never read by the
  analysis, so no level checks them.

Every file is written under a hidden temporary name in its own folder and renamed over the final
name (`write_atomic`), so a file that exists is whole and readers of a folder of Parquet files,
which skip names starting with '.', never see a half-written one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SPEC_FILE = "spec.yaml"
MANIFEST_FILE = "manifest.json"
TRIALS_FILE = "trials.parquet"
EPISODES_DIR = "episodes"
EVALS_DIR = "evals"
MODELS_DIR = "models"
PLOTS_DIR = "plots"
TEMP_SUFFIX = ".tmp"
"""Ending of a file being written; `remove_temp_files` deletes those a killed writer left."""

STATUSES = ("complete", "failed")
"""Values of the trials table's ``status`` column."""

Dtype = Literal["str", "int64", "Int64", "float64", "bool", "boolean"]
"""A column's pandas dtype; the capitalised ones (and float64, as NaN) allow missing values."""

NULLABLE_DTYPES: tuple[Dtype, ...] = ("Int64", "float64", "boolean")
_NULLABLE_OF: dict[Dtype, Dtype] = {"int64": "Int64", "bool": "boolean"}


class ResultsError(Exception):
    """A results folder cannot be used; the message names the path and what to do."""


class SchemaError(ResultsError):
    """A file or table breaks the contract; `problems` has one line per broken rule, each naming
    the file (or table) and the column."""

    def __init__(self, problems: Sequence[str], *, most: int = 20) -> None:
        self.problems = tuple(problems)
        shown = list(self.problems[:most])
        if len(self.problems) > most:
            shown.append(f"... and {len(self.problems) - most} more")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, pandas dtype and meaning."""

    name: str
    dtype: Dtype
    doc: str
    """What the column holds, in a line."""
    required: bool = False
    """Every version wrote it and the analysis needs it: a file without it is refused."""
    fill: str | float | bool | None = None
    """What a folder written before the column existed meant by its absence; None: unknown
    (NaN, or pandas' NA)."""

    @property
    def nullable(self) -> bool:
        """Whether the contract allows a missing value."""
        return self.dtype in NULLABLE_DTYPES

    @property
    def fill_dtype(self) -> Dtype:
        """The dtype of the column a reader adds when a file lacks it."""
        return self.dtype if self.fill is not None else _NULLABLE_OF.get(self.dtype, self.dtype)


@dataclass(frozen=True)
class Table:
    """The columns of one kind of file, in the order writers store them."""

    name: str
    """Where such a file lives in a results folder, e.g. ``episodes/<trial_id>.parquet``."""
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def dtypes(self) -> dict[str, Dtype]:
        return {column.name: column.dtype for column in self.columns}

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    def empty(self) -> pd.DataFrame:
        """A table with no rows and every column, typed."""
        return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in self.columns})

    def conform(self, frame: pd.DataFrame, *, where: str | Path) -> pd.DataFrame:
        """`frame` as this version writes it: exactly the contract's columns, in its order, cast
        to its dtypes. What writers call before writing.

        Raises:
            SchemaError: a column is missing or unknown, has a missing value where the contract
                allows none, or cannot be cast; the message names `where` and the column.
        """
        missing = [name for name in self.names if name not in frame.columns]
        unknown = [str(name) for name in frame.columns if name not in self.names]
        problems = []
        if missing:
            problems.append(f"{where}: column(s) missing: {', '.join(missing)}")
        if unknown:
            problems.append(f"{where}: column(s) not in the contract: {', '.join(unknown)}")
        if problems:
            raise SchemaError(problems)
        return self._cast(frame, where)

    def from_rows(self, rows: Iterable[Mapping[str, Any]], *, where: str | Path) -> pd.DataFrame:
        """Rows (one dict each) as a table of this contract. A row may lack a column that is not
        required (rows read from a folder written before the column existed): it gets the
        column's `fill`. A key the contract does not name is an error, never dropped.

        Raises:
            SchemaError: as `conform`, naming `where` and the column.
        """
        rows = list(rows)
        unknown = sorted({str(key) for row in rows for key in row} - set(self.names))
        absent = [name for name in self.required if any(name not in row for row in rows)]
        problems = []
        if absent:
            problems.append(f"{where}: required column(s) missing: {', '.join(absent)}")
        if unknown:
            problems.append(f"{where}: column(s) not in the contract: {', '.join(unknown)}")
        if problems:
            raise SchemaError(problems)
        fills = {column.name: column.fill for column in self.columns}
        frame = pd.DataFrame([{**fills, **row} for row in rows], columns=list(self.names))
        return self._cast(frame, where)

    def fill_missing(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add, as the last columns, those of the contract that `frame` (read from an older
        folder) lacks, each holding its `fill`; what readers call after reading."""
        for column in self.columns:
            if column.name not in frame.columns:
                values = [column.fill] * len(frame)
                frame[column.name] = pd.Series(values, index=frame.index, dtype=column.fill_dtype)
        return frame

    def _cast(self, frame: pd.DataFrame, where: str | Path) -> pd.DataFrame:
        problems = []
        data: dict[str, pd.Series[Any]] = {}
        for column in self.columns:
            values = frame[column.name]
            n_missing = int(values.isna().sum())
            if n_missing and not column.nullable:
                problems.append(
                    f"{where}: column {column.name!r} has {n_missing} missing value(s); the "
                    f"contract ({column.dtype}) allows none"
                )
                continue
            try:
                data[column.name] = values.astype(column.dtype)
            except (TypeError, ValueError) as err:
                problems.append(f"{where}: column {column.name!r} is not {column.dtype} ({err})")
        if problems:
            raise SchemaError(problems)
        return pd.DataFrame(data, index=frame.index)


IDENTITY_COLUMNS = (
    Column("trial_id", "str", "the trial's id, a hash of what defines it", required=True),
    Column("config", "str", "label of what varies, e.g. 'hidden_sizes=64x64'", required=True),
    Column("hidden_sizes", "str", "widths of the Q-network's hidden layers as text, e.g. '64x64'"),
    Column("seed", "int64", "the trial's seed", required=True),
    Column("env_id", "str", "the Gymnasium environment id", required=True),
)
"""Columns that say which trial a row came from; every row of every table starts with them.
``hidden_sizes`` is not required: the analysis never reads it."""


def _setting(name: str, dtype: Dtype, fill: str | float | bool | None = None) -> Column:
    return Column(name, dtype, f"agent setting `{name}` (see dqn_agent.AgentConfig)", fill=fill)


AGENT_COLUMNS = (
    _setting("network", "str", fill="mlp"),  # added after the first release, which ran MLPs
    # Convolution channels as text ('16', '32x64x64'); '' for an MLP or a family's own.
    _setting("channels", "str", fill=""),
    _setting("lr", "float64"),
    _setting("gamma", "float64"),
    _setting("batch_size", "int64"),
    _setting("buffer_size", "int64"),
    _setting("learning_starts", "int64"),
    _setting("train_every", "int64"),
    _setting("gradient_steps", "int64"),
    _setting("target_update_every", "int64"),
    _setting("tau", "float64"),
    _setting("loss", "str"),
    _setting("double", "bool"),
    _setting("dueling", "bool"),
    _setting("epsilon_start", "float64"),
    _setting("epsilon_end", "float64"),
    _setting("epsilon_decay_steps", "int64"),
    _setting("epsilon_schedule", "str"),
    _setting("max_grad_norm", "float64"),  # None (no clipping) is stored as missing
    # Added with image observations; folders written before them ran the fill values.
    _setting("optimizer", "str", fill="adam"),
    _setting("eps", "float64", fill=1e-8),
    _setting("rmsprop_alpha", "float64", fill=0.95),
    _setting("clip_rewards", "bool", fill=False),
    _setting("terminal_on_life_loss", "bool", fill=False),
)
"""One column per agent hyperparameter except ``hidden_sizes`` (an identity column, as text), in
`AgentConfig`'s field order, typed from its annotations: ``int`` int64, ``float`` float64 (a None
is missing), ``bool`` bool, text and choices str; an optional int or bool is Int64 or boolean."""

TRIALS = Table(
    TRIALS_FILE,
    (
        *IDENTITY_COLUMNS,
        Column("status", "str", "'complete' or 'failed'", required=True),
        Column("error", "str", "message and traceback of a failed trial; '' when complete"),
        Column("final_eval_return", "float64", "eval_return_mean of the last evaluation"),
        Column("n_episodes", "int64", "training episodes finished"),
        Column("wall_s", "float64", "seconds the task took, shared by its group_size seeds"),
        Column("group_size", "Int64", "seeds trained together in the trial's task"),
        Column("env_steps", "int64", "env steps trained"),
        Column("env_steps_per_s", "float64", "env_steps / wall_s"),
        Column("host", "str", "host name of the machine that trained it"),
        Column("node_id", "str", "Ray node id of that machine"),
        Column("device", "str", "torch device it trained on"),
        Column("attempts", "int64", "times Ray started its task (more after a worker died)"),
        Column("finished_at", "str", "when its row was written, ISO 8601 in UTC"),
        *AGENT_COLUMNS,
        Column("budget_env_steps", "Int64", "training budget in env steps, if one was set"),
        Column("budget_episodes", "Int64", "training budget in episodes, if one was set"),
        Column("eval_every_steps", "int64", "env steps between greedy evaluations"),
        Column("eval_episodes", "int64", "episodes of each greedy evaluation"),
    ),
)
"""trials.parquet: one row per trial, complete or failed, in the spec's grid order."""

EPISODES = Table(
    f"{EPISODES_DIR}/<trial_id>.parquet",
    (
        *IDENTITY_COLUMNS,
        Column("episode", "int64", "index of the episode in the trial, from 0", required=True),
        Column("env_step", "int64", "env steps trained when it ended", required=True),
        Column("episode_return", "float64", "sum of its rewards", required=True),
        Column("episode_length", "int64", "its env steps", required=True),
        Column("wall_s", "float64", "seconds from the start of training to its end"),
    ),
)
"""episodes/<trial_id>.parquet: one row per training episode that ended (the one cut off by the
budget is not recorded)."""

EVALS = Table(
    f"{EVALS_DIR}/<trial_id>.parquet",
    (
        *IDENTITY_COLUMNS,
        Column("env_step", "int64", "env steps trained when it ran", required=True),
        Column("eval_return_mean", "float64", "mean return of the greedy episodes", required=True),
        Column("eval_return_std", "float64", "their standard deviation", required=True),
        Column("wall_s", "float64", "seconds from the start of training"),
        Column("episodes_done", "int64", "training episodes finished by then"),
        Column("q_mean", "float64", "mean Q(s, a) of the batches since the last evaluation"),
        Column("td_loss", "float64", "mean TD loss of those batches"),
    ),
)
"""evals/<trial_id>.parquet: one row per greedy evaluation, the first at env step 0 (before any
update, so q_mean and td_loss are NaN there)."""


class FolderLayout:
    """Where each file of one results folder lives; paths only, nothing read or written."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.spec_path = self.root / SPEC_FILE
        self.manifest_path = self.root / MANIFEST_FILE
        self.trials_path = self.root / TRIALS_FILE
        self.episodes_dir = self.root / EPISODES_DIR
        self.evals_dir = self.root / EVALS_DIR
        self.models_dir = self.root / MODELS_DIR
        self.plots_dir = self.root / PLOTS_DIR

    def episodes_path(self, trial_id: str) -> Path:
        return self.episodes_dir / f"{trial_id}.parquet"

    def evals_path(self, trial_id: str) -> Path:
        return self.evals_dir / f"{trial_id}.parquet"

    def model_path(self, trial_id: str) -> Path:
        return self.models_dir / f"{trial_id}.pt"

    def data_files(self, trial_id: str) -> tuple[Path, Path, Path]:
        """The episodes, evals and model files of one trial."""
        return self.episodes_path(trial_id), self.evals_path(trial_id), self.model_path(trial_id)


# -- The check ------------------------------------------------------------------------------------


def _stores(column: Column, arrow: pa.DataType, *, n_rows: int, strict: bool) -> bool:
    """Whether a Parquet column of type `arrow` holds `column` (see the module docstring)."""
    types = pa.types
    if types.is_null(arrow):  # all missing: what older writers stored for an empty column
        return not strict and (column.nullable or n_rows == 0)
    if column.dtype == "str":  # pandas' own choice between the two, not the writer's
        return bool(types.is_string(arrow) or types.is_large_string(arrow))
    if column.dtype in ("int64", "Int64"):
        return bool(types.is_int64(arrow) if strict else types.is_integer(arrow))
    if column.dtype == "float64":
        if strict:
            return bool(types.is_float64(arrow))
        return bool(types.is_floating(arrow) or types.is_integer(arrow))
    return bool(types.is_boolean(arrow))


def _problems(
    where: str | Path,
    table: Table,
    fields: Mapping[str, pa.DataType],
    nulls: Mapping[str, int | None],
    n_rows: int,
    *,
    strict: bool,
) -> list[str]:
    """What breaks the contract in a file with these column types and missing-value counts."""
    problems = []
    required = [name for name in table.required if name not in fields]
    if required:
        problems.append(
            f"{where}: required column(s) missing: {', '.join(required)}; this file was not "
            "written by a compatible dqn-sweeps version"
        )
    added = [c.name for c in table.columns if c.name not in fields and not c.required]
    if strict and added:
        problems.append(
            f"{where}: column(s) missing: {', '.join(added)}; this version writes them (a folder "
            "written before they existed may lack them, and passes the check that is not strict)"
        )
    unknown = [name for name in fields if name not in table.names]
    if strict and unknown:
        problems.append(f"{where}: column(s) not in the contract: {', '.join(unknown)}")
    for column in table.columns:
        arrow = fields.get(column.name)
        if arrow is None:
            continue
        if not _stores(column, arrow, n_rows=n_rows, strict=strict):
            problems.append(
                f"{where}: column {column.name!r} is stored as {arrow}; the contract says "
                f"{column.dtype}"
            )
        elif not column.nullable and nulls.get(column.name):
            problems.append(
                f"{where}: column {column.name!r} has {nulls[column.name]} missing value(s); "
                f"the contract ({column.dtype}) allows none"
            )
    return problems


def arrow_problems(
    data: pa.Table, table: Table, *, where: str | Path, strict: bool = False
) -> list[str]:
    """What breaks the contract in a table already read (see the module docstring for the two
    levels); one line per problem, naming `where` and the column, or none."""
    fields = {field.name: field.type for field in data.schema}
    nulls = {name: int(data.column(name).null_count) for name in fields}
    return _problems(where, table, fields, nulls, data.num_rows, strict=strict)


def _file_problems(path: Path, table: Table, *, strict: bool) -> tuple[list[str], int]:
    """`check_file`'s problems and the file's row count, from its footer alone."""
    try:
        parquet = pq.ParquetFile(path)
        fields = {field.name: field.type for field in parquet.schema_arrow}
        meta = parquet.metadata
    except Exception as err:  # pyarrow raises several types for a damaged file
        return [f"{path}: cannot be read as Parquet ({err})"], 0
    nulls: dict[str, int | None] = dict.fromkeys(fields, 0)
    for group in range(meta.num_row_groups):
        chunks = meta.row_group(group)
        for i in range(chunks.num_columns):
            chunk = chunks.column(i)
            name, stats = chunk.path_in_schema, chunk.statistics
            if name not in nulls or nulls[name] is None:
                continue
            if stats is None or not stats.has_null_count:
                nulls[name] = None  # not recorded: not checked
            else:
                nulls[name] = (nulls[name] or 0) + int(stats.null_count)
    return _problems(path, table, fields, nulls, int(meta.num_rows), strict=strict), meta.num_rows


def check_file(path: str | Path, table: Table, *, strict: bool = False) -> None:
    """Check one Parquet file against `table`, reading only its footer (column types, row count
    and missing-value counts).

    Raises:
        SchemaError: the file cannot be read, or breaks the contract; one line per problem, each
            naming the file and the column.
    """
    problems, _ = _file_problems(Path(path), table, strict=strict)
    if problems:
        raise SchemaError(problems)


def check_folder(root: str | Path, *, strict: bool = False) -> None:
    """Check that a results folder follows the contract (see the module docstring for what each
    level requires and tolerates): its index, and the episodes and evals files of every trial
    the index marks complete (failed trials have none; files without a row yet are those of a
    trial whose row a killed run never wrote, and are not checked).

    Raises:
        SchemaError: with every problem found, one line each, naming the file and the column.
    """
    layout = FolderLayout(root)
    if not layout.root.is_dir():
        raise SchemaError([f"{layout.root}: no such folder"])
    problems = []
    if strict:
        for path in (layout.spec_path, layout.manifest_path):
            if not path.is_file():
                problems.append(f"{path}: file is missing")
        if layout.manifest_path.is_file() and not _is_json_object(layout.manifest_path):
            problems.append(f"{layout.manifest_path}: not a JSON object")
    if not layout.trials_path.is_file():
        raise SchemaError([*problems, f"{layout.trials_path}: file is missing"])
    index, _ = _file_problems(layout.trials_path, TRIALS, strict=strict)
    problems += index
    if index:  # trial ids or statuses unreadable: the data files cannot be found
        raise SchemaError(problems)
    trials = pq.read_table(layout.trials_path, columns=["trial_id", "status"]).to_pandas()
    repeated = sorted(set(trials.loc[trials["trial_id"].duplicated(), "trial_id"]))
    if repeated:
        problems.append(f"{layout.trials_path}: trial id(s) in several rows: {', '.join(repeated)}")
    odd = sorted(set(trials["status"]) - set(STATUSES))
    if odd:
        problems.append(
            f"{layout.trials_path}: column 'status' holds {', '.join(map(repr, odd))}; the "
            f"contract allows {' or '.join(map(repr, STATUSES))}"
        )
    for trial_id in trials.loc[trials["status"] == "complete", "trial_id"]:
        for path, table in (
            (layout.episodes_path(trial_id), EPISODES),
            (layout.evals_path(trial_id), EVALS),
        ):
            if not path.is_file():
                problems.append(
                    f"{path}: file is missing, but {layout.trials_path} marks trial {trial_id} "
                    "complete"
                )
                continue
            found, n_rows = _file_problems(path, table, strict=strict)
            problems += found
            if table is EVALS and not found and n_rows == 0:
                problems.append(f"{path}: has no rows (every trial evaluates at step 0)")
    if problems:
        raise SchemaError(problems)


def _is_json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


# -- The atomic writer ----------------------------------------------------------------------------


def temp_path(path: Path) -> Path:
    """The hidden name `path` is written under before it is renamed: '.', its name, the writer's
    process id (two writers never share one), `TEMP_SUFFIX`."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Have `write` fill a hidden temporary file next to `path`, then rename it over `path`;
    on any failure the temporary file is removed and `path` is left as it was."""
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(path, write)


def write_parquet_atomic(table: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def remove_temp_files(root: Path) -> None:
    """Delete the temporary files a killed writer left in a results folder (never a whole one)."""
    for path in root.rglob(f".*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)
