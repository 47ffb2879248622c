"""Normalized scores: where a return lies between a random policy's and a reference score.

    normalized = (score - random) / (reference - random)

0 is the random policy, 1 the reference; scores of different environments become comparable,
which aggregates across environments need. `SCORES` ships both ends for the classic-control
environments and LunarLander: the random end measured by the project
(`python -m benchmarks.bench_random_scores`, 100 episodes of uniformly random actions,
`benchmarks/results/random_scores.md`), the reference end gymnasium's solved threshold
(`reward_threshold`) or, for CartPole-v1, the episode's maximum return. MinAtar's random scores
are measured too, but no reference is shipped: give one (`ScoreRange`) to normalize them.

A study may give its own ranges, which win over the shipped ones: its sweep spec under
``per_env: {<env>: {scores: {random: R, reference: F}}}`` (`overrides_from_spec`, read from the
results folder's ``spec.yaml``), and over that the command line's
``--scores ENV=RANDOM:REFERENCE`` (`parse_scores_option`); `score_overrides` merges the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ScoreRange:
    """The two ends of an environment's normalized scale."""

    random: float
    """Mean return of uniformly random actions."""
    reference: float
    """The score normalized to 1."""
    source: str
    """Where the reference comes from."""

    def __post_init__(self) -> None:
        if self.reference == self.random:
            raise ValueError(
                f"reference score {self.reference:g} equals the random score: a normalized "
                "score would divide by zero; give a reference the random policy does not reach"
            )


SCORES: dict[str, ScoreRange] = {
    "CartPole-v1": ScoreRange(21.61, 500.0, "the maximum return (500 steps)"),
    "Acrobot-v1": ScoreRange(-499.85, -100.0, "gymnasium's reward_threshold (solved)"),
    "MountainCar-v0": ScoreRange(-200.0, -110.0, "gymnasium's reward_threshold (solved)"),
    "LunarLander-v3": ScoreRange(-192.50, 200.0, "gymnasium's reward_threshold (solved)"),
}
"""Shipped score ranges, by env id."""

RANDOM_SCORES: dict[str, float] = {
    "MinAtar/Breakout-v0": 0.50,
    "MinAtar/SpaceInvaders-v0": 2.88,
    "MinAtar/Asterix-v0": 0.36,
    "MinAtar/Freeway-v0": 0.17,
    "MinAtar/Seaquest-v0": 0.11,
}
"""Random-policy scores measured where no reference score is shipped."""


def score_range(env_id: str, overrides: Mapping[str, ScoreRange] | None = None) -> ScoreRange:
    """The range to normalize `env_id`'s scores with: the override if given, else shipped.

    Raises:
        KeyError: naming the env and what to give, where neither has one.
    """
    if overrides and env_id in overrides:
        return overrides[env_id]
    if env_id in SCORES:
        return SCORES[env_id]
    hint = (
        f" (its random score, {RANDOM_SCORES[env_id]:g}, is measured: give a reference)"
        if env_id in RANDOM_SCORES
        else ""
    )
    raise KeyError(f"no random and reference scores for {env_id!r}{hint}")


def normalized(
    scores: npt.ArrayLike, env_id: str, overrides: Mapping[str, ScoreRange] | None = None
) -> npt.NDArray[np.float64]:
    """`scores` of `env_id` (any shape) on its normalized scale (`score_range`)."""
    span = score_range(env_id, overrides)
    return (np.asarray(scores, dtype=np.float64) - span.random) / (span.reference - span.random)


# Overrides: the sweep spec's `per_env.<env>.scores`, and `--scores ENV=RANDOM:REFERENCE`.

SCORES_OPTION = "--scores"
SCORES_FORM = "ENV=RANDOM:REFERENCE"
SCORES_EXAMPLE = "CartPole-v1=9.4:500"


def _finite_number(value: object) -> float | None:
    """`value` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_scores_option(text: str) -> tuple[str, ScoreRange]:
    """One ``--scores ENV=RANDOM:REFERENCE`` value: the env id and its range.

    The env id is everything before the last ``=`` (ids such as ``MinAtar/Breakout-v0`` or
    ``module:Env-v0`` hold ``/`` and ``:``, never ``=``); the numbers may be negative
    (``Acrobot-v1=-500:-100``).

    Raises:
        ValueError: naming the option, the form expected and, once the env is known, the env:
            a value not of that form, a number that is not finite, or a reference equal to the
            random score.
    """
    env_id, equals, numbers = text.rpartition("=")
    parts = numbers.split(":")
    if not equals or not env_id.strip() or len(parts) != 2:
        raise ValueError(
            f"{SCORES_OPTION} {text!r}: expected {SCORES_FORM}, an env id and two numbers, "
            f"e.g. {SCORES_EXAMPLE}"
        )
    env_id = env_id.strip()
    values: list[float] = []
    for name, part in zip(("RANDOM", "REFERENCE"), parts, strict=True):
        try:
            number = float(part)
        except ValueError:
            raise ValueError(
                f"{SCORES_OPTION} {text!r}: {name} of {env_id} is {part.strip()!r}, not a "
                f"number; expected {SCORES_FORM}, e.g. {SCORES_EXAMPLE}"
            ) from None
        if not math.isfinite(number):
            raise ValueError(
                f"{SCORES_OPTION} {text!r}: {name} of {env_id} is {part.strip()!r}, not a "
                "finite number"
            )
        values.append(number)
    random, reference = values
    if reference == random:
        raise ValueError(
            f"{SCORES_OPTION} {text!r}: the REFERENCE of {env_id} ({reference:g}) equals its "
            "RANDOM score, so its normalized scores would divide by zero; give a reference "
            "the random policy does not reach"
        )
    return env_id, ScoreRange(random, reference, SCORES_OPTION)


def overrides_from_spec(path: str | Path) -> dict[str, ScoreRange]:
    """The score ranges a sweep spec gives under ``per_env: {<env>: {scores: {...}}}``.

    A results folder holds its sweep's spec as ``spec.yaml``. A missing file, a spec without
    ``per_env``, and an environment without ``scores`` give nothing; every other key is
    ignored (it is the runner's business).

    Args:
        path: the spec file, e.g. ``results/<sweep>/spec.yaml``.

    Returns:
        Env id to its range, whose ``source`` names the key and the file.

    Raises:
        ValueError: naming the file and the key (``per_env.<env>.scores.reference``) where
            the file is not YAML or a range is not two finite numbers with the reference
            different from the random score.
    """
    import yaml  # PyYAML: needed only here, so the rest of the module works without it

    spec = Path(path)
    if not spec.is_file():
        return {}
    try:
        data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(
            f"{spec}: cannot be read as YAML ({err}), so its per_env.<env>.scores cannot be "
            "read; fix or remove the file"
        ) from None
    per_env = data.get("per_env") if isinstance(data, dict) else None
    if per_env is None:
        return {}
    if not isinstance(per_env, dict):
        raise ValueError(f"{spec}: per_env must map env ids to their settings")
    ranges: dict[str, ScoreRange] = {}
    for env_id, settings in per_env.items():
        scores = settings.get("scores") if isinstance(settings, dict) else None
        if scores is None:
            continue
        key = f"per_env.{env_id}.scores"
        if not isinstance(scores, dict):
            raise ValueError(f"{spec}: {key} must be {{random: R, reference: F}}")
        numbers: dict[str, float] = {}
        for end in ("random", "reference"):
            if end not in scores:
                raise ValueError(
                    f"{spec}: {key}.{end} is missing; give {{random: R, reference: F}}"
                )
            number = _finite_number(scores[end])
            if number is None:
                raise ValueError(f"{spec}: {key}.{end} is {scores[end]!r}, not a finite number")
            numbers[end] = number
        if numbers["reference"] == numbers["random"]:
            raise ValueError(
                f"{spec}: {key}.reference ({numbers['reference']:g}) equals {key}.random, so "
                f"the normalized scores of {env_id} would divide by zero; give a reference the "
                "random policy does not reach"
            )
        source = f"{key} in {spec}"
        ranges[str(env_id)] = ScoreRange(numbers["random"], numbers["reference"], source)
    return ranges


def score_overrides(
    spec_paths: Sequence[str | Path], given: Sequence[tuple[str, ScoreRange]] = ()
) -> dict[str, ScoreRange]:
    """The ranges that win over `SCORES`: the specs' ``per_env.<env>.scores``, then `given`.

    What a command line gives (`given`, from `parse_scores_option`) wins over every spec, and a
    spec over the shipped ranges (`score_range` falls back to those).

    Args:
        spec_paths: the spec of each results folder read (missing files give nothing).
        given: (env id, range) pairs, e.g. the ``--scores`` options.

    Raises:
        ValueError: a spec is unreadable or gives a bad range (`overrides_from_spec`), `given`
            names an env twice with different ranges, or two specs give one env different
            ranges that `given` does not settle.
    """
    from_cli: dict[str, ScoreRange] = {}
    for env_id, span in given:
        earlier = from_cli.get(env_id)
        if earlier is not None and not _same_ends(earlier, span):
            raise ValueError(
                f"{SCORES_OPTION} gives {env_id} twice, {_ends(earlier)} and {_ends(span)}; "
                "give it once"
            )
        from_cli[env_id] = span
    merged: dict[str, ScoreRange] = {}
    for path in spec_paths:
        for env_id, span in overrides_from_spec(path).items():
            earlier = merged.get(env_id)
            if earlier is not None and not _same_ends(earlier, span) and env_id not in from_cli:
                raise ValueError(
                    f"{earlier.source} ({_ends(earlier)}) and {span.source} ({_ends(span)}) "
                    f"disagree on {env_id}; say which to use with {SCORES_OPTION} "
                    f"{env_id}=RANDOM:REFERENCE"
                )
            merged.setdefault(env_id, span)
    return merged | from_cli


def _same_ends(a: ScoreRange, b: ScoreRange) -> bool:
    """Whether two ranges normalize alike (their sources may differ)."""
    return (a.random, a.reference) == (b.random, b.reference)


def _ends(span: ScoreRange) -> str:
    """``9.4:500``: a range as `parse_scores_option` reads it."""
    return f"{span.random:g}:{span.reference:g}"
