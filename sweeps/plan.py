"""From a checked spec to the trials to run: configurations x seeds, grouped into units of work.

A trial is a `dqn_agent.TrialSpec`, whose id is a hash of its content: the same spec always
plans the same ids, so a rerun can skip what is already complete and a changed hyperparameter
names new trials. A unit of work is one Ray task: a group of seeds of one configuration, which
`dqn_agent.train_group` trains at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dqn_agent import TrialSpec
from sweeps.spec import InputError, SweepSpec

Unit = tuple[TrialSpec, ...]


@dataclass(frozen=True)
class Plan:
    """All trials of a spec, and the units of work still to run."""

    trials: tuple[TrialSpec, ...]
    """Every trial of the spec: configurations in spec order, seeds within each."""
    units: tuple[Unit, ...]
    """Trials not yet complete, grouped by configuration (at most `group_size` seeds a unit)."""

    @property
    def todo(self) -> tuple[TrialSpec, ...]:
        return tuple(trial for unit in self.units for trial in unit)

    @property
    def n_skipped(self) -> int:
        return len(self.trials) - len(self.todo)


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """One TrialSpec per configuration and seed. Tasks given a GPU train on 'cuda'."""
    device = "cuda" if spec.resources.gpus_per_trial > 0 else "cpu"
    return [
        TrialSpec(
            env_id=spec.env_id,
            agent=point.agent,
            seed=seed,
            budget=spec.budget,
            eval=spec.eval,
            label=point.label,
            device=device,
        )
        for point in spec.configs
        for seed in spec.seeds
    ]


def group_units(trials: Sequence[TrialSpec], group_size: int) -> list[Unit]:
    """Chunks of at most `group_size` consecutive trials that differ only in their seed."""
    units: list[Unit] = []
    current: list[TrialSpec] = []
    for trial in trials:
        if current and (len(current) == group_size or trial.label != current[0].label):
            units.append(tuple(current))
            current = []
        current.append(trial)
    if current:
        units.append(tuple(current))
    return units


def auto_group_size(spec: SweepSpec, n_todo: int, capacity: int) -> int:
    """Seeds per task when the user gives none: as few as keep every task slot busy.

    Seeds are the cheap dimension: a group of K trains almost as fast as one seed (batched
    matrix products), so the trials to train are spread over the `capacity` slots of the cluster,
    at most all seeds of one configuration in a task. A budget in episodes trains alone.
    """
    if spec.budget.episodes is not None or n_todo == 0:
        return 1
    return max(1, min(len(spec.seeds), math.ceil(n_todo / max(capacity, 1))))


def make_plan(spec: SweepSpec, *, complete: Collection[str] = (), group_size: int = 1) -> Plan:
    """Plan `spec`, leaving out the trials whose ids are in `complete`."""
    if group_size < 1:
        raise InputError(f"--group-size {group_size}: give an integer >= 1")
    if group_size > 1 and spec.budget.episodes is not None:
        # Agents of a group finish their episodes at different steps, so they cannot share one.
        raise InputError(
            f"--group-size {group_size}: {spec.source} sets budget.episodes, which trains one "
            "seed per task; use budget.env_steps to group seeds, or --group-size 1"
        )
    trials = expand(spec)
    todo = [trial for trial in trials if trial.trial_id not in complete]
    return Plan(trials=tuple(trials), units=tuple(group_units(todo, group_size)))
