"""Reading a sweep spec (YAML) and checking all of it before anything runs or is written.

A spec names one environment or several (`env`), the agent settings shared by every trial
(`agent`), the settings swept over (`grid`, a Cartesian product, and optionally `variants`, named
sets of overrides), the seeds, the budget, the evaluation and the resources of a trial. With
several environments the trials are environments x variants x grid x seeds; each environment
starts from its own preset (`dqn_agent.default_config`), and `per_env` may give one environment
its own budget, evaluation, agent settings and normalization scores. Every problem found is
reported at once, each as ``FILE: KEY.PATH: what is wrong; what is allowed``.

The agent's own checks are reused rather than copied: every configuration of the sweep is built
as an `AgentConfig` here, and the `ConfigError` it raises names the field refused (and the other
field of a clash), which is mapped back to the key that set it. Its message text is never read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import math
import re
import reprlib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dqn_agent import (
    AgentConfig,
    Budget,
    ConfigError,
    EvalSettings,
    UnsupportedEnvError,
    check_network,
    default_config,
    hidden_sizes_text,
    make_env,
    observation_shape,
)
from dqn_agent.config import MAX_INT

TOP_KEYS = (
    "name",
    "env",
    "seeds",
    "budget",
    "eval",
    "agent",
    "grid",
    "variants",
    "per_env",
    "resources",
)
REQUIRED_KEYS = {
    "name": "give a folder-safe name such as 'network_sizes'",
    "env": "give a gymnasium id such as 'CartPole-v1', or a list of them",
    "seeds": "give a count (seeds: 5 means seeds 0..4) or a list of distinct integers",
    "budget": "give budget: {env_steps: N} or budget: {episodes: N}",
}
AGENT_KEYS = tuple(f.name for f in dataclasses.fields(AgentConfig))
BUDGET_KEYS = tuple(f.name for f in dataclasses.fields(Budget))
EVAL_KEYS = tuple(f.name for f in dataclasses.fields(EvalSettings))
RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial", "max_in_flight")
PER_ENV_KEYS = ("budget", "eval", "agent", "scores")
SCORE_KEYS = ("random", "reference")
AGENT_SECTIONS = ("agent", "grid", "variants")
MAX_SEED = 2**63
"""Seeds are stored as 64-bit signed integers in the results."""
MAX_SEED_COUNT = 1_000_000
"""Most seeds a count may ask for (a list may name any seeds): far past any sweep, and low enough
that a typo is an error message, not a machine out of memory."""
MAX_TRIALS = 1_000_000
"""Most trials a sweep may have (envs x variants x grid x seeds), counted from the spec's shape
before anything is expanded, so that a typo in a grid is an error message, not a machine out of
memory."""
MIN_RESOURCE = 1e-4
"""Smallest fraction of a CPU or GPU a task may ask for: Ray's resource precision."""
MAX_SPEC_BYTES = 16 * 2**20
"""Largest spec file read (a spec is a few hundred bytes; this bounds what reading can cost)."""
MAX_YAML_VALUES = 2_000_000
"""Most values (mappings, lists and scalars) a spec may hold once its YAML aliases are expanded:
room for a list of `MAX_TRIALS` seeds, far below what nested aliases can expand to."""
MAX_YAML_DEPTH = 20
"""Deepest nesting of YAML collections a spec may have (a valid spec needs 6)."""
MAX_SHOWN_PROBLEMS = 20
"""Problems a `SpecError` message lists; the rest are counted."""
_SHORT = 80
"""Most characters of a value quoted in a message."""

# Folder names and variant names end up in paths and in comma-separated labels.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VARIANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,59}$")


class InputError(Exception):
    """Input that cannot run: a bad spec, a refused resume, an impossible option (exit code 2)."""


class SpecError(InputError):
    """A spec with problems. `problems` holds (key path, message) pairs; str() names the file."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [
            f"{source}: {path}: {msg}" if path else f"{source}: {msg}"
            for path, msg in self.problems[:MAX_SHOWN_PROBLEMS]
        ]
        if len(self.problems) > MAX_SHOWN_PROBLEMS:
            lines.append(f"{source}: ... and {len(self.problems) - MAX_SHOWN_PROBLEMS} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Resources:
    """What one Ray task (one trial, or one group of seeds) asks the cluster for."""

    cpus_per_trial: float = 1.0
    """CPU cores reserved per task; also the number of torch threads the task uses."""
    gpus_per_trial: float = 0.0
    """GPUs per task; fractions such as 0.25 let several tasks share one GPU."""
    max_in_flight: int | None = None
    """Most tasks submitted at once (None: twice what the cluster can run at a time)."""


@dataclass(frozen=True)
class ConfigPoint:
    """One configuration of the sweep: the agent, and a label saying what sets it apart."""

    label: str
    """What varies, e.g. 'hidden_sizes=64x64' or 'double=True,dueling=False'; 'default' if none."""
    agent: AgentConfig
    settings: Mapping[str, Any]
    """The swept values of this point (variant overrides and grid values), by hyperparameter."""


@dataclass(frozen=True)
class EnvPart:
    """One environment of a sweep, and what its trials share: budget, evaluation, settings."""

    env_id: str
    budget: Budget
    eval: EvalSettings
    agent: Mapping[str, Any]
    """Shared hyperparameters as given for this env (over `default_config(env_id)`): the spec's
    `agent`, then its `per_env.<env>.agent`."""
    configs: tuple[ConfigPoint, ...]
    """Every configuration (variants x grid), built over this env's preset."""
    obs_shape: tuple[int, ...] | None = None
    """The env's observation shape, (obs_dim,) or (C, H, W); None if the env was not made."""
    n_actions: int | None = None
    """The env's number of actions; None if the env was not made."""
    scores: tuple[float, float] | None = None
    """(random, reference) from `per_env.<env>.scores`, to normalize this env's returns; None
    where the spec gives none (the analysis then uses its shipped scores)."""

    def warnings(self) -> list[str]:
        """Legal settings that are probably a mistake, as lines to show before a run."""
        steps = self.budget.env_steps
        late = [c for c in self.configs if steps is not None and c.agent.learning_starts >= steps]
        if not late:
            return []
        return [
            f"agent.learning_starts ({late[0].agent.learning_starts}) is not below "
            f"budget.env_steps ({steps}): {len(late)} configuration(s) will act at random and "
            "never take a gradient step (fine for a random baseline; otherwise lower "
            "agent.learning_starts or raise budget.env_steps)"
        ]

    def describe(self, swept: set[str]) -> dict[str, Any]:
        """Budget, evaluation and shared settings (resolved over the preset) as plain data."""
        base = AgentConfig.from_dict({**default_config(self.env_id).to_dict(), **self.agent})
        return {
            "budget": dataclasses.asdict(self.budget),
            "eval": dataclasses.asdict(self.eval),
            "agent": {k: v for k, v in base.to_dict().items() if k not in swept},
        }


@dataclass(frozen=True, eq=False)
class SweepSpec:
    """A checked sweep spec: every value valid, every configuration of every env built."""

    name: str
    envs: tuple[EnvPart, ...]
    """The environments, in the order the spec lists them."""
    seeds: tuple[int, ...]
    agent: Mapping[str, Any]
    """Shared hyperparameters as given under `agent` (over each env's defaults)."""
    grid: Mapping[str, tuple[Any, ...]]
    """Swept hyperparameters, each with its values, in the order given."""
    variants: Mapping[str, Mapping[str, Any]]
    """Named override sets; the trials are envs x variants x grid x seeds."""
    resources: Resources
    source: str
    """Where the spec came from (a file path), for messages."""
    text: str
    """The spec's text exactly as read, to be copied into the results folder."""

    @property
    def env_ids(self) -> tuple[str, ...]:
        return tuple(part.env_id for part in self.envs)

    @property
    def configs(self) -> tuple[ConfigPoint, ...]:
        """Every configuration of every environment, environments in spec order."""
        return tuple(point for part in self.envs for point in part.configs)

    def part(self, env_id: str) -> EnvPart:
        """The environment `env_id` of this spec (KeyError if it has none of that id)."""
        for part in self.envs:
            if part.env_id == env_id:
                return part
        raise KeyError(env_id)

    @property
    def only(self) -> EnvPart:
        """The one environment of a single-env spec; for code and tests that know there is one."""
        if len(self.envs) != 1:
            raise ValueError(f"{self.source} names {len(self.envs)} environments, not one")
        return self.envs[0]

    # A single-env spec's settings, by the names they had before a spec could list several.
    @property
    def env_id(self) -> str:
        return self.only.env_id

    @property
    def budget(self) -> Budget:
        return self.only.budget

    @property
    def eval(self) -> EvalSettings:
        return self.only.eval

    @property
    def obs_shape(self) -> tuple[int, ...] | None:
        return self.only.obs_shape

    @property
    def n_actions(self) -> int | None:
        return self.only.n_actions

    def warnings(self) -> list[str]:
        """Legal settings that are probably a mistake, as lines to show before a run."""
        if len(self.envs) == 1:
            return self.envs[0].warnings()
        return [f"{part.env_id}: {line}" for part in self.envs for line in part.warnings()]

    @property
    def n_trials(self) -> int:
        return len(self.configs) * len(self.seeds)

    def describe(self) -> dict[str, Any]:
        """The settings that define the trials, as plain data, to diff one spec against another.

        Shared agent settings are resolved over the environment's defaults, so that dropping
        `agent.lr: 0.001` from a spec shows up as a change to the default. With several
        environments, budget, evaluation and shared settings are given per environment.
        """
        swept = set(self.grid) | {key for over in self.variants.values() for key in over}
        described: dict[str, Any] = {
            "env": self.envs[0].env_id if len(self.envs) == 1 else list(self.env_ids),
            "seeds": list(self.seeds),
        }
        if len(self.envs) == 1:
            described.update(self.envs[0].describe(swept))
        else:
            described["per_env"] = {part.env_id: part.describe(swept) for part in self.envs}
        described["grid"] = {key: [_plain(v) for v in values] for key, values in self.grid.items()}
        described["variants"] = {
            name: {k: _plain(v) for k, v in over.items()} for name, over in self.variants.items()
        }
        return described


def load_spec(
    path: str | Path, *, check_env: bool = True, allow_env_imports: bool = False
) -> SweepSpec:
    """Read and check the spec at `path`; raises `SpecError` listing every problem found.

    `allow_env_imports` accepts an `env` of the form 'module:EnvId', which imports the module
    (running its code) when the environment is made."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_SPEC_BYTES + 1)  # bounded: the path may be a device or a pipe
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(source, [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(source, [("", f"cannot be read: {_cap(str(exc))}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            source, [("", f"larger than {MAX_SPEC_BYTES // 2**20} MB: not a sweep spec")]
        )
    return parse_spec(text, source=source, check_env=check_env, allow_env_imports=allow_env_imports)


class _LimitError(yaml.MarkedYAMLError):
    """YAML that parses but is refused: nested too deep, or aliases that expand too far."""


class _SafeLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (it would keep the last),
    nesting deeper than `MAX_YAML_DEPTH`, and aliases that expand past `MAX_YAML_VALUES` values
    (a few hundred bytes of nested aliases can stand for billions) or into themselves."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0
        # Per node composed (by id; the nodes live as long as the loader): the values it holds
        # and its depth with aliases expanded, computed as it is composed, so never expanded.
        self._shape: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = typing.cast(yaml.Mark | None, event.start_mark)  # the pure-Python loader's
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._shape:
                raise _LimitError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a value that holds it",
                    mark,
                )
            return typing.cast(yaml.Node, super().compose_node(parent, index))
        if self._nesting >= MAX_YAML_DEPTH:
            raise _LimitError(
                None,
                None,
                f"nested deeper than {MAX_YAML_DEPTH} levels (a spec needs a few)",
                mark,
            )
        self._nesting += 1
        try:
            node = typing.cast(yaml.Node, super().compose_node(parent, index))
        finally:
            self._nesting -= 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        shapes = [self._shape[id(child)] for child in children]
        values = 1 + sum(n for n, _ in shapes)
        depth = 1 + max((d for _, d in shapes), default=0)
        if values > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            what = (
                f"more than {MAX_YAML_VALUES:,} values"
                if values > MAX_YAML_VALUES
                else f"nesting deeper than {MAX_YAML_DEPTH} levels"
            )
            raise _LimitError(
                None, None, f"with its aliases expanded, this value holds {what}", node.start_mark
            )
        self._shape[id(node)] = (values, depth)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *defaults' merges; later keys may override what it brings
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_short(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_spec(
    text: str,
    *,
    source: str = "<spec>",
    check_env: bool = True,
    allow_env_imports: bool = False,
) -> SweepSpec:
    """Check a spec given as YAML text. `check_env=False` skips making the environment once;
    `allow_env_imports` accepts an `env` of the form 'module:EnvId' (see `load_spec`)."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise SpecError(source, [_yaml_problem(exc)]) from None
    except RecursionError:  # a safety net: _SafeLoader bounds the nesting it composes
        raise SpecError(source, [("", f"nested deeper than {MAX_YAML_DEPTH} levels")]) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise SpecError(source, [("", f"YAML does not parse: {_cap(str(exc))}")]) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            source, [("", f"expected a mapping with keys {', '.join(TOP_KEYS)}; got {got}")]
        )
    _check_trial_count(data, source)

    p = _Problems()
    _check_keys(data, TOP_KEYS, "", p)
    per_env_value = data.get("per_env")
    for key, hint in REQUIRED_KEYS.items():
        if key == "budget" and _every_env_has_budget(data.get("env"), per_env_value):
            continue  # each environment gives its own budget under per_env
        if key not in data:
            p.add(key, f"missing; {hint}")

    name = _parse_name(data["name"], p) if "name" in data else ""
    env_ids = _parse_env_ids(data["env"], p) if "env" in data else []
    made = {
        env_id: _parse_env(env_id, path, p, check=check_env, allow_imports=allow_env_imports)
        for env_id, path in env_ids
    }
    seeds = _parse_seeds(data["seeds"], p) if "seeds" in data else ()
    budget = _parse_budget(data["budget"], p) if "budget" in data else None
    # Optional sections may be absent or empty (`eval:` with nothing under it).
    eval_values = _eval_values(_empty(data.get("eval")), "eval", p)
    resources = _parse_resources(_empty(data.get("resources")), p)
    agent = _parse_overrides(data.get("agent"), "agent", p)
    grid = _parse_grid(data.get("grid"), p)
    variants = _parse_variants(data.get("variants"), p)
    per_env = _parse_per_env(per_env_value, [env_id for env_id, _ in env_ids], p)
    _check_ambiguous(agent, grid, variants, p)
    for env_id, settings in per_env.items():
        _check_ambiguous_per_env(env_id, settings.agent, grid, variants, p)
    # Every value on its own first, so that each bad one is named whatever else is wrong; then,
    # unless the agent's sections have problems, every configuration, which checks how the
    # values go together. Each environment is checked over its own preset.
    agent_problems = [path for path, _ in p.items if _is_agent_path(path)]
    parts: list[EnvPart] = []
    found: list[list[tuple[str, str]]] = []
    for env_id, _ in env_ids:
        own = per_env.get(env_id, _EnvSettings())
        shape, n_actions = made[env_id]
        env_agent = {**agent, **own.agent}
        paths = {key: f"agent.{key}" for key in agent}
        paths.update({key: f"per_env.{env_id}.agent.{key}" for key in own.agent})
        problems = _Problems()
        bad_values = _check_each_value(env_id, env_agent, paths, grid, variants, problems)
        clean = not agent_problems and not bad_values
        configs = (
            _build_configs(env_id, shape, env_agent, paths, grid, variants, problems)
            if clean
            else ()
        )
        found.append(problems.items)
        env_budget = own.budget or budget
        env_eval = _build_eval(eval_values, own.eval, f"per_env.{env_id}.eval", p)
        if env_budget is not None and env_eval is not None:
            parts.append(
                EnvPart(
                    env_id=env_id,
                    budget=env_budget,
                    eval=env_eval,
                    agent=env_agent,
                    configs=configs,
                    obs_shape=shape,
                    n_actions=n_actions,
                    scores=own.scores,
                )
            )
    _merge_env_problems([env_id for env_id, _ in env_ids], found, p)
    if p.items:
        raise SpecError(source, p.items)
    assert resources is not None and len(parts) == len(env_ids)
    return SweepSpec(
        name=name,
        envs=tuple(parts),
        seeds=seeds,
        agent=agent,
        grid=grid,
        variants=variants,
        resources=resources,
        source=source,
        text=text,
    )


def _is_agent_path(path: str) -> bool:
    """Whether a problem's key path is in a section of agent settings (per_env's included)."""
    return path.split(".")[0] in AGENT_SECTIONS or bool(_PER_ENV_AGENT.match(path))


_PER_ENV_AGENT = re.compile(r"^per_env\..+\.agent(\.|\[|$)")


@dataclass(frozen=True)
class _EnvSettings:
    """What `per_env.<env>` gives one environment (each None or empty where not given)."""

    budget: Budget | None = None
    eval: Mapping[str, Any] | None = None
    agent: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    scores: tuple[float, float] | None = None


def _every_env_has_budget(env: object, per_env: object) -> bool:
    """Whether `per_env` gives a budget to every environment of `env` (then no top-level
    budget is needed)."""
    ids = env if isinstance(env, list) else [env]
    if not ids or not isinstance(per_env, dict):
        return False
    return all(
        isinstance(env_id, str)
        and isinstance(per_env.get(env_id), dict)
        and "budget" in per_env[env_id]
        for env_id in ids
    )


def _merge_env_problems(
    env_ids: Sequence[str], found: Sequence[Sequence[tuple[str, str]]], p: _Problems
) -> None:
    """Add the problems each environment's configurations have: once, as they are, where every
    environment has it (or there is one); else with the environments that have it named."""
    for problems in found:
        for path, message in problems:
            envs = [e for e, other in zip(env_ids, found, strict=True) if (path, message) in other]
            if len(envs) == len(env_ids) or path.startswith(f"per_env.{envs[0]}."):
                p.add(path, message)  # every env's problem, or one its key path names
            else:
                p.add(path, f"{message} (with env {', '.join(envs)})")


def _empty(value: object) -> object:
    """{} for a missing or empty section, else the value itself (for its type to be checked)."""
    return {} if value is None else value


class _Problems:
    """Problems found so far, in order, without repeats."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        if (path, message) not in self.items:
            self.items.append((path, message))


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = _cap(getattr(exc, "problem", None) or str(exc))
    if isinstance(exc, _LimitError):
        return where, f"{problem}; refused, so that reading a spec stays cheap"
    return where, f"YAML does not parse: {problem}"


def _check_trial_count(data: Mapping[Any, Any], source: str) -> None:
    """Refuse a spec of more than `MAX_TRIALS` trials, counted from its shape (variants x grid
    x seeds) before anything is expanded. Values the other checks refuse count as one."""
    seeds = data.get("seeds")
    grid = data.get("grid")
    variants = data.get("variants")
    n_seeds = 1
    if isinstance(seeds, list) and seeds:
        n_seeds = len(seeds)
    elif isinstance(seeds, int) and 1 <= seeds <= MAX_SEED_COUNT:
        n_seeds = seeds
    env = data.get("env")
    counts: dict[str, int] = {"env": len(env)} if isinstance(env, list) and len(env) > 1 else {}
    counts |= {
        "variants": len(variants) if isinstance(variants, dict) and variants else 1,
        "grid": math.prod(
            len(values)
            for key, values in (grid.items() if isinstance(grid, dict) else ())
            if key in AGENT_KEYS and isinstance(values, list) and values
        ),
        "seeds": n_seeds,
    }
    total = math.prod(counts.values())
    if total <= MAX_TRIALS:
        return
    largest = max(counts, key=lambda key: counts[key])
    shape = " x ".join(f"{n:,}" for n in counts.values())
    raise SpecError(
        source,
        [
            (
                largest,
                f"the spec has {total:,} trials ({' x '.join(_COUNTED[key] for key in counts)} = "
                f"{shape}), more than "
                "a sweep may have "
                f"({MAX_TRIALS:,}); sweep fewer values or seeds, or split the sweep",
            )
        ],
    )


_COUNTED = {"env": "envs", "variants": "variants", "grid": "grid", "seeds": "seeds"}


def _short(value: object) -> str:
    """A value's repr, cut to a short excerpt: a spec's values may be huge (or nested aliases)."""
    text = _REPR.repr(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _cap(text: str, most: int = 4 * _SHORT) -> str:
    """Text from elsewhere (an exception, a key) cut to a length a message can hold."""
    return text if len(text) <= most else text[: most - 3] + "..."


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 8, 8
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = _SHORT


def _key_text(key: object) -> str:
    """A key as a key path shows it: as written if printable, else escaped; cut if long."""
    text = str(key)
    return _cap(text, _SHORT) if text.isprintable() else _short(text)


def _join(path: str, key: object) -> str:
    shown = _key_text(key)
    return f"{path}.{shown}" if path else shown


# Names other libraries use for the same settings, which spelling alone would not suggest.
_ALIASES = {"learning_rate": "lr", "discount": "gamma", "net_arch": "hidden_sizes"}


def _check_keys(data: Mapping[Any, Any], allowed: Sequence[str], path: str, p: _Problems) -> None:
    for key in data:
        if key in allowed:
            continue
        alias = _ALIASES.get(str(key))
        close = (
            [alias] if alias in allowed else difflib.get_close_matches(str(key), allowed, 1, 0.6)
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        p.add(_join(path, key), f"unknown key{hint}; allowed keys are {', '.join(allowed)}")


def _describe(value: object) -> str:
    return f"{_short(value)} (a {type(value).__name__})"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_name(value: object, p: _Problems) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):  # no newline at the end
        p.add(
            "name",
            f"{_describe(value)} is not a folder-safe name: use letters, digits, '_', '-' and "
            "'.', starting with a letter or digit (at most 100 characters)",
        )
        return ""
    return value


def _parse_env_ids(value: object, p: _Problems) -> list[tuple[str, str]]:
    """The env ids of `env` (one id, or a list of distinct ids), each with its key path."""
    if isinstance(value, list):
        if not value:
            p.add("env", "empty list: give at least one gymnasium id such as 'CartPole-v1'")
            return []
        ids: list[tuple[str, str]] = []
        first: dict[str, int] = {}
        for i, env_id in enumerate(value):
            path = f"env[{i}]"
            if not _check_env_id(env_id, path, p):
                continue
            assert isinstance(env_id, str)
            if env_id in first:
                p.add(path, f"duplicate of env[{first[env_id]}] ({env_id}); list each env once")
                continue
            first[env_id] = i
            ids.append((env_id, path))
        return ids
    return [(value, "env")] if _check_env_id(value, "env", p) else []  # type: ignore[list-item]


def _check_env_id(value: object, path: str, p: _Problems) -> bool:
    """Whether `value` can be a gymnasium id (a problem at `path` if not)."""
    if not isinstance(value, str) or not value:
        p.add(path, f"{_describe(value)} is not a gymnasium id such as 'CartPole-v1'")
        return False
    if len(value) > 2 * _SHORT:
        p.add(path, f"{_short(value)} ({len(value):,} characters) is too long for a gymnasium id")
        return False
    return True


def _parse_env(
    env_id: str, path: str, p: _Problems, *, check: bool, allow_imports: bool
) -> tuple[tuple[int, ...] | None, int | None]:
    """With `check`, the shape of `env_id`'s observations and its number of actions (the env
    is made once to see them); problems at `path`."""
    if ":" in env_id and not allow_imports:
        # gymnasium imports the module before 'module:EnvId' is made: a spec would run code.
        p.add(
            path,
            f"{_short(env_id)} names a module to import, which runs its code; refused unless "
            "you trust the spec and pass --allow-env-imports",
        )
        return None, None
    shape = n_actions = None
    if check:
        try:
            env = make_env(env_id)
            shape = observation_shape(env)
            n_actions = int(env.action_space.n)  # type: ignore[attr-defined]  # Discrete, checked
            env.close()
        except UnsupportedEnvError as exc:
            p.add(path, _cap(str(exc)))
        except Exception as exc:  # gymnasium's own errors, or a 'module:Id' that fails to import
            p.add(
                path,
                f"gymnasium cannot make {_short(env_id)}: {type(exc).__name__}: {_cap(str(exc))}",
            )
    return shape, n_actions


def _parse_per_env(value: object, env_ids: Sequence[str], p: _Problems) -> dict[str, _EnvSettings]:
    """`per_env`: for environments of `env`, their own budget, eval, agent and scores."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        p.add(
            "per_env",
            f"{_describe(value)}: give a mapping of env id: {{budget: ..., eval: ..., agent: "
            "..., scores: ...}}",
        )
        return {}
    settings: dict[str, _EnvSettings] = {}
    for env_id, section in value.items():
        path = _join("per_env", env_id)
        if env_id not in env_ids:
            listed = ", ".join(env_ids) or "none"
            p.add(
                path,
                f"{_short(env_id)} is not an environment of this spec (env lists {listed}); "
                "add it to env, or remove its settings",
            )
            continue
        if not isinstance(section, dict):
            p.add(path, f"{_describe(section)}: give a mapping with keys {', '.join(PER_ENV_KEYS)}")
            continue
        _check_keys(section, PER_ENV_KEYS, path, p)
        settings[env_id] = _EnvSettings(
            budget=(
                _parse_budget(section["budget"], p, f"{path}.budget")
                if "budget" in section
                else None
            ),
            eval=_eval_values(section["eval"], f"{path}.eval", p) if "eval" in section else None,
            agent=_parse_overrides(section.get("agent"), f"{path}.agent", p),
            scores=_parse_scores(section["scores"], f"{path}.scores", p)
            if "scores" in section
            else None,
        )
    return settings


def _parse_scores(value: object, path: str, p: _Problems) -> tuple[float, float] | None:
    """`scores: {random: R, reference: F}`: the two ends of the env's normalized scale."""
    if not isinstance(value, dict):
        p.add(path, f"{_describe(value)}: give scores: {{random: R, reference: F}}")
        return None
    _check_keys(value, SCORE_KEYS, path, p)
    numbers: dict[str, float] = {}
    for key in SCORE_KEYS:
        number = value.get(key)
        if key not in value:
            p.add(f"{path}.{key}", "missing; give the mean return of " + _SCORE_MEANING[key])
        elif not isinstance(number, int | float) or isinstance(number, bool) or not _finite(number):
            p.add(f"{path}.{key}", f"{_describe(number)} is not a finite number")
        else:
            numbers[key] = float(number)
    if len(numbers) < len(SCORE_KEYS):
        return None
    if numbers["reference"] == numbers["random"]:
        p.add(
            f"{path}.reference",
            f"{numbers['reference']:g} equals scores.random: a normalized score would divide by "
            "zero; give a reference the random policy does not reach",
        )
        return None
    return numbers["random"], numbers["reference"]


_SCORE_MEANING = {
    "random": "uniformly random actions (normalized to 0)",
    "reference": "the reference policy, or the solved threshold (normalized to 1)",
}


def _check_ambiguous_per_env(
    env_id: str,
    agent: Mapping[str, Any],
    grid: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    p: _Problems,
) -> None:
    """A setting given for one env may replace a shared one (`agent`), not a swept one."""
    for key in agent:
        where = (
            f"grid.{key}"
            if key in grid
            else next((f"variants.{n}.{key}" for n, over in variants.items() if key in over), None)
        )
        if where:
            p.add(
                f"per_env.{env_id}.agent.{key}",
                f"also swept ({where}): a swept setting cannot be fixed for one environment; "
                "remove one",
            )


def _parse_seeds(value: object, p: _Problems) -> tuple[int, ...]:
    if _is_int(value):
        assert isinstance(value, int)
        if not 1 <= value <= MAX_SEED_COUNT:
            p.add("seeds", f"{_short(value)} is not a count from 1 to {MAX_SEED_COUNT:,}")
            return ()
        return tuple(range(value))
    if not isinstance(value, list) or not value:
        p.add(
            "seeds",
            f"{_describe(value)}: give a count >= 1 or a non-empty list of integers"
            + _yaml_number_hint(value),
        )
        return ()
    seen: dict[int, int] = {}
    for i, seed in enumerate(value):
        if not _is_int(seed) or not 0 <= seed < MAX_SEED:
            shown = _short(seed) if _is_int(seed) else _describe(seed)
            p.add(f"seeds[{i}]", f"{shown} is not an integer from 0 to 2**63 - 1")
        elif seed in seen:
            p.add(
                f"seeds[{i}]",
                f"duplicate seed {seed} (also seeds[{seen[seed]}]); seeds must differ",
            )
        else:
            seen[seed] = i
    return tuple(seen)


def _parse_budget(value: object, p: _Problems, path: str = "budget") -> Budget | None:
    if not isinstance(value, dict):
        p.add(path, f"{_describe(value)}: {REQUIRED_KEYS['budget']}")
        return None
    _check_keys(value, BUDGET_KEYS, path, p)
    values = {k: v for k, v in value.items() if k in BUDGET_KEYS}
    if not values:
        p.add(path, f"empty: {REQUIRED_KEYS['budget']}")
        return None
    for key in [k for k, v in values.items() if v is None]:
        p.add(f"{path}.{key}", "no value: give a number, or leave the key out")
        return None
    if len(values) > 1:  # Budget refuses both too, but as a rule of the section, not of a field
        p.add(path, "give exactly one of env_steps or episodes")
        return None
    if "env_steps" not in values and "episodes" in values:
        values["env_steps"] = None  # a budget in episodes replaces the default in env steps
    return _build_settings(Budget, values, path, p)


def _eval_values(value: object, path: str, p: _Problems) -> dict[str, Any] | None:
    """The settings of an `eval` section at `path`, each checked alone; None if unusable."""
    if not isinstance(value, dict):
        p.add(path, f"{_describe(value)}: give eval: {{every_steps: N, episodes: M}}")
        return None
    _check_keys(value, EVAL_KEYS, path, p)
    values = {k: v for k, v in value.items() if k in EVAL_KEYS}
    return values if _build_settings(EvalSettings, values, path, p) is not None else None


def _build_eval(
    shared: Mapping[str, Any] | None, own: Mapping[str, Any] | None, path: str, p: _Problems
) -> EvalSettings | None:
    """An environment's evaluation: the spec's `eval`, with its own keys (at `path`) over it."""
    if shared is None:
        return None  # the shared section has problems, already reported
    values = {**shared, **(own or {})}
    try:
        return EvalSettings(**values)
    except ConfigError as exc:
        where = path if own and exc.field in own else "eval"
        p.add(f"{where}.{exc.field}", _invalid(exc) + _yaml_number_hint(exc.value))
        return None


_Settings = typing.TypeVar("_Settings", Budget, EvalSettings)


def _build_settings(
    cls: type[_Settings], values: dict[str, Any], path: str, p: _Problems
) -> _Settings | None:
    try:
        return cls(**values)
    except ConfigError as exc:
        p.add(f"{path}.{exc.field}", _invalid(exc) + _yaml_number_hint(exc.value))
        return None


def _invalid(error: ConfigError) -> str:
    """What is wrong with the refused value, worded here: the key path names the field."""
    return f"{_short(error.value)} is invalid: allowed values are {error.allowed}"


def _yaml_number_hint(value: object) -> str:
    """Why a number came out as text: quotes, or YAML 1.1 reading 3e5 (no dot) as a string."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    if len(value) > _SHORT:
        return " (a number in quotes, or one YAML reads as text, is text)"
    if not isinstance(yaml.safe_load(value), str):  # unquoted, YAML reads a number
        return f" (a number in quotes is text: write {value} without quotes)"
    shown = f"{int(number)}" if number.is_integer() else repr(number)
    return f" (YAML read {value} as text: write {shown})"


def _parse_resources(value: object, p: _Problems) -> Resources | None:
    if not isinstance(value, dict):
        p.add("resources", f"{_describe(value)}: give resources: {{cpus_per_trial: 1}}")
        return None
    _check_keys(value, RESOURCE_KEYS, "resources", p)
    cpus = value.get("cpus_per_trial", 1.0)
    gpus = value.get("gpus_per_trial", 0.0)
    in_flight = value.get("max_in_flight")
    ok = True
    for key, number, zero_ok in (("cpus_per_trial", cpus, False), ("gpus_per_trial", gpus, True)):
        is_number = isinstance(number, int | float) and not isinstance(number, bool)
        if not is_number or not _finite(number) or number < 0 or (number == 0 and not zero_ok):
            allowed = "a number >= 0" if zero_ok else "a number > 0"
            p.add(
                f"resources.{key}", f"{_describe(number)} is invalid: allowed values are {allowed}"
            )
            ok = False
        elif 0 < number < MIN_RESOURCE:
            p.add(
                f"resources.{key}",
                f"{number:g} is invalid: below {MIN_RESOURCE:g}, the smallest fraction Ray "
                "schedules" + ("" if not zero_ok else " (0 asks for none)"),
            )
            ok = False
        elif number > 1 and number != int(number):
            # Ray splits a CPU or GPU into fractions but schedules more than one only whole.
            p.add(f"resources.{key}", f"{number} is invalid: above 1 it must be a whole number")
            ok = False
    if in_flight is not None and (not _is_int(in_flight) or not 1 <= in_flight <= MAX_INT):
        p.add(
            "resources.max_in_flight",
            f"{_describe(in_flight)} is not an integer from 1 to 2**63 - 1",
        )
        ok = False
    if not ok:
        return None
    return Resources(
        cpus_per_trial=float(cpus), gpus_per_trial=float(gpus), max_in_flight=in_flight
    )


def _finite(number: float) -> bool:
    """Whether a number is finite; an int too large for a float is not (math.isfinite raises)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


_HINTS = typing.get_type_hints(AgentConfig)
LIST_OF = {"hidden_sizes": "layer widths", "channels": "channel counts"}
"""The settings whose value is a list, and what they list."""


def _normalize(key: str, value: object, path: str, p: _Problems) -> tuple[bool, Any]:
    """One hyperparameter value made canonical, so that equal settings give equal trial ids."""
    hint = _HINTS[key]
    if key == "hidden_sizes":
        if not isinstance(value, list):
            p.add(path, f"{_describe(value)} is not a list of layer widths such as [64, 64]")
            return False, None
        return True, tuple(value)
    if key == "channels":
        if value is None:
            return True, None
        if not isinstance(value, list):
            p.add(path, f"{_describe(value)} is not a list of channel counts such as [16]")
            return False, None
        return True, tuple(value)
    if isinstance(value, list | dict):
        p.add(path, f"{_describe(value)} is not a single value; lists of values belong in grid")
        return False, None
    if (int in typing.get_args(hint) or hint is int) and isinstance(value, str):
        text_hint = _yaml_number_hint(value)  # 1e5 or "5000": meant as a number, read as text
        if text_hint and float(value).is_integer():
            p.add(path, f"{_short(value)} is text, not an integer{text_hint}")
            return False, None
    if float in typing.get_args(hint) or hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as text; take it as the number everyone means.
            with contextlib.suppress(ValueError):
                value = float(value)
        if _is_int(value):
            assert isinstance(value, int)
            if not _finite(value):
                p.add(path, f"{_short(value)} is not a finite number")
                return False, None
            value = float(value)  # 1 and 1.0 must hash to the same trial id
        if isinstance(value, float) and not math.isfinite(value):
            p.add(path, f"{value} is not a finite number")
            return False, None
    return True, value


def _parse_overrides(value: object, path: str, p: _Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        p.add(path, f"{_describe(value)}: give a mapping of hyperparameter: value")
        return {}
    _check_keys(value, AGENT_KEYS, path, p)
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key in AGENT_KEYS:
            ok, normal = _normalize(key, raw, _join(path, key), p)
            if ok:
                out[key] = normal
    return out


def _parse_grid(value: object, p: _Problems) -> dict[str, tuple[Any, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        p.add("grid", f"{_describe(value)}: give a mapping of hyperparameter: [values]")
        return {}
    _check_keys(value, AGENT_KEYS, "grid", p)
    grid: dict[str, tuple[Any, ...]] = {}
    for key, values in value.items():
        if key not in AGENT_KEYS:
            continue
        path = f"grid.{key}"
        if not isinstance(values, list):
            p.add(path, f"{_describe(values)} is not a list of values to sweep, e.g. [a, b]")
            continue
        if not values:
            p.add(path, "empty list: give at least one value, or move the key to agent")
            continue
        axis: list[Any] = []
        first_of: dict[Any, int] = {}  # index of each hashable value, for long axes
        for i, raw in enumerate(values):
            if key in ("hidden_sizes", "channels") and _is_int(raw):
                example = "[[64], [64, 64]]" if key == "hidden_sizes" else "[[8], [16], [32]]"
                p.add(
                    f"{path}[{i}]",
                    f"{_short(raw)} is not a list of {LIST_OF[key]}: the grid is a list of such "
                    f"lists, e.g. {example}",
                )
                continue
            ok, normal = _normalize(key, raw, f"{path}[{i}]", p)
            if not ok:
                continue
            try:
                first: int | None = first_of.get(normal)
            except TypeError:  # unhashable (a list inside hidden_sizes): AgentConfig refuses it
                first = axis.index(normal) if normal in axis else None
            if first is not None:
                shown = _cap(_label_value(normal), _SHORT)
                p.add(f"{path}[{i}]", f"duplicate of {path}[{first}] ({shown})")
                continue
            with contextlib.suppress(TypeError):
                first_of.setdefault(normal, len(axis))
            axis.append(normal)
        grid[key] = tuple(axis)
    return grid


def _parse_variants(value: object, p: _Problems) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        p.add("variants", f"{_describe(value)}: give a mapping of name: {{hyperparameter: value}}")
        return {}
    variants: dict[str, dict[str, Any]] = {}
    for name, overrides in value.items():
        path = _join("variants", name)
        if not isinstance(name, str) or not _VARIANT_RE.fullmatch(name):
            quote = (
                ""
                if isinstance(name, str)
                else f" (YAML read it as {_short(name)}: quote the name)"
            )
            p.add(path, f"a variant name uses letters, digits, '_', '-', '+' and '.'{quote}")
            continue
        variants[name] = _parse_overrides(overrides if overrides is not None else {}, path, p)
    return variants


def _check_ambiguous(
    agent: Mapping[str, Any],
    grid: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    p: _Problems,
) -> None:
    for key in grid:
        if key in agent:
            p.add(
                f"grid.{key}",
                f"also given under agent (agent.{key}): a hyperparameter is shared (agent) or "
                "swept (grid), not both; remove one",
            )
    for name, overrides in variants.items():
        for key in overrides:
            where = "agent" if key in agent else "grid" if key in grid else None
            if where:
                p.add(
                    f"variants.{name}.{key}",
                    f"also given under {where} ({where}.{key}): set it in one place only",
                )


def _check_each_value(
    env_id: str,
    agent: Mapping[str, Any],
    agent_paths: Mapping[str, str],
    grid: Mapping[str, tuple[Any, ...]],
    variants: Mapping[str, Mapping[str, Any]],
    p: _Problems,
) -> bool:
    """Check every value of agent, grid and variants alone, by `AgentConfig`, against the
    environment's defaults; add a problem for each value that is bad by itself or clashes with a
    default no key changes (not one that clashes with a field the spec sets: the configurations
    judge that). Returns whether any was bad."""
    base = default_config(env_id).to_dict()
    given = set(agent) | set(grid) | {key for over in variants.values() for key in over}
    values = [(agent_paths[key], key, value) for key, value in agent.items()]
    values += [
        (f"grid.{key}[{i}]", key, v) for key, axis in grid.items() for i, v in enumerate(axis)
    ]
    values += [
        (f"variants.{name}.{key}", key, value)
        for name, overrides in variants.items()
        for key, value in overrides.items()
    ]
    bad = False
    for path, key, value in values:
        try:
            AgentConfig.from_dict({**base, key: value})
        except ConfigError as exc:
            # batch_size 200000 clashes with the default buffer_size, not with 500000 set beside it.
            involved = {exc.field} if exc.other is None else {exc.field, exc.other}
            if key in involved and not (involved - {key}) & given:
                _add_config_problem(exc, {key: path}, p)
                bad = True
    return bad


def _build_configs(
    env_id: str,
    obs_shape: tuple[int, ...] | None,
    agent: Mapping[str, Any],
    agent_paths: Mapping[str, str],
    grid: Mapping[str, tuple[Any, ...]],
    variants: Mapping[str, Mapping[str, Any]],
    p: _Problems,
) -> tuple[ConfigPoint, ...]:
    """Every configuration of the sweep, built (and so checked) by `AgentConfig` itself, and,
    where the env was made, against its observations (an MLP cannot read images)."""
    base = {**default_config(env_id).to_dict(), **agent}
    named: list[tuple[str | None, Mapping[str, Any]]] = (
        list(variants.items()) if variants else [(None, {})]
    )
    axes = [[(key, i, value) for i, value in enumerate(values)] for key, values in grid.items()]
    points: list[ConfigPoint] = []
    for variant, overrides in named:
        for combo in itertools.product(*axes):
            paths = dict(agent_paths)
            paths.update({key: f"variants.{variant}.{key}" for key in overrides})
            paths.update({key: f"grid.{key}[{i}]" for key, i, _ in combo})
            settings = {**overrides, **{key: value for key, _, value in combo}}
            try:
                config = AgentConfig.from_dict({**base, **settings})
                if obs_shape is not None:
                    check_network(config, env_id, obs_shape)
            except ConfigError as exc:
                _add_config_problem(exc, paths, p)
                continue
            points.append(ConfigPoint(_label(variant, combo), config, settings))
    seen: dict[AgentConfig, str] = {}
    for point in points:
        if point.agent in seen:
            p.add(
                "variants" if variants else "grid",
                f"configurations {seen[point.agent]!r} and {point.label!r} are the same agent "
                "(they would be the same trials); remove one",
            )
        seen.setdefault(point.agent, point.label)
    return tuple(points)


def _add_config_problem(error: ConfigError, paths: Mapping[str, str], p: _Problems) -> None:
    """Blame the key that set the field AgentConfig refuses. A field at its default is set by no
    key: then blame the key that set the other field of the clash, saying which default to set."""
    other = paths.get(error.other) if error.other is not None else None  # the key that set it
    if error.field in paths:
        # In a grid or a variant, the other field of a clash may be set far from this key.
        note = f" ({error.other} is set by {other})" if other else ""
        p.add(paths[error.field], _invalid(error) + note)
    else:
        p.add(
            other or "agent",
            f"{error.field}={_invalid(error)} ({error.field} is at its default: "
            f"set agent.{error.field})",
        )


def _label_value(value: object) -> str:
    if isinstance(value, tuple):
        return hidden_sizes_text(value)
    return repr(value) if isinstance(value, float) else str(value)


def _label(variant: str | None, combo: Sequence[tuple[str, int, Any]]) -> str:
    parts = [variant] if variant else []
    parts += [f"{key}={_label_value(value)}" for key, _, value in combo]
    return ",".join(parts) or "default"


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
