"""From a checked spec to the trials to run: configurations x seeds, grouped into units of work.

A trial is a `dqn_agent.TrialSpec`, whose id is a hash of its content: the same spec always
plans the same ids, so a rerun can skip what is already complete and a changed hyperparameter
names new trials. A unit of work is one Ray task: a group of seeds of one configuration, which
`dqn_agent.train_group` trains at once.
"""

from __future__ import annotations

import itertools
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
    """Trials not yet complete, grouped by configuration, in the order to submit them."""

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


GROUP_STEP_OVERHEAD_S = 2e-3
"""Rough cost of one env step of a group apart from the agents' matrix products (Python and
operator dispatch, env stepping). Measured with `python -m benchmarks.bench_speed` on two
2-core machines: about 2-2.5 ms on an Intel Xeon (Sapphire Rapids), about 1 ms on an AMD EPYC."""
MATMUL_FLOP_PER_S = 80e9
"""Rough rate of the agents' matrix products inside training on one CPU core: about 85 GFLOP/s
on the Intel Xeon, about 40 on the AMD EPYC. The constants are those of the Intel machine, where
the recorded benchmark ran; `--group-size` overrides the plan wherever they are wrong."""


def unit_cost(unit: Unit) -> float:
    """Estimated seconds per env step of training `unit` as one group on one CPU core.

    A group pays a fixed overhead per env step, whatever its size, plus each agent's matrix
    products: the acting forward pass of one observation and, per gradient step, the online
    forward and backward (twice the forward) and the target forward on a batch. Only the ratios
    between units matter: they decide how to split and order the work.
    """
    config = unit[0].agent
    widths = [8, *config.hidden_sizes, 4]  # a typical small observation and action count
    forward = 2 * sum(a * b for a, b in itertools.pairwise(widths))
    updates = config.gradient_steps / config.train_every
    flop = forward + updates * config.batch_size * forward * (1 + 2 + 1)
    return GROUP_STEP_OVERHEAD_S + len(unit) * flop / MATMUL_FLOP_PER_S


def makespan(units: Sequence[Unit], capacity: int) -> float:
    """Estimated wall time (per env step) of `units` on `capacity` slots, when each unit in turn,
    costliest first, starts on the slot that frees up first (as a task queue does)."""
    loads = [0.0] * max(capacity, 1)
    for cost in sorted(map(unit_cost, units), reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def balanced_units(trials: Sequence[TrialSpec], capacity: int) -> list[Unit]:
    """Units for a cluster of `capacity` task slots when the user gives no group size.

    Seeds are the cheap dimension: a group of K seeds of a small network trains almost as fast
    as one seed, so each configuration starts as one group of all its seeds. A group whose
    matrix products dominate costs about K times one seed, though, and a single such group can
    keep one slot busy long after the others are idle. So the configuration that holds the
    costliest unit is cut into more groups of sizes as even as possible (enough that its largest
    group has one seed fewer) while that shortens the estimated wall time of the whole sweep
    (`makespan`); the units are returned costliest first, so that the longest start first.
    """
    configs = group_units(trials, max(len(trials), 1))  # all seeds of each configuration
    n_groups = [1] * len(configs)

    def units_for(counts: Sequence[int]) -> list[Unit]:
        pairs = zip(configs, counts, strict=True)
        return [unit for config, n in pairs for unit in split(config, n)]

    units = units_for(n_groups)
    while units:
        costliest = max(units, key=unit_cost)
        if len(costliest) == 1:
            break  # the longest unit is a single seed: nothing shortens the sweep further
        i = next(i for i, config in enumerate(configs) if costliest[0] in config)
        more = list(n_groups)
        more[i] = math.ceil(len(configs[i]) / (len(costliest) - 1))
        candidate = units_for(more)
        if makespan(candidate, capacity) >= makespan(units, capacity):
            break
        n_groups, units = more, candidate
    return sorted(units, key=unit_cost, reverse=True)


def split(trials: Unit, n: int) -> list[Unit]:
    """`trials` cut into `n` consecutive groups whose sizes differ by at most one."""
    size, extra = divmod(len(trials), n)
    bounds = itertools.accumulate([size + (k < extra) for k in range(n)], initial=0)
    return [trials[a:b] for a, b in itertools.pairwise(bounds)]


def make_plan(
    spec: SweepSpec,
    *,
    complete: Collection[str] = (),
    group_size: int | None = 1,
    capacity: int = 1,
) -> Plan:
    """Plan `spec`, leaving out the trials whose ids are in `complete`.

    `group_size` None balances the units over `capacity` task slots (`balanced_units`);
    otherwise each unit holds up to `group_size` seeds of one configuration, in spec order.
    """
    if group_size is not None and group_size < 1:
        raise InputError(f"--group-size {group_size}: give an integer >= 1")
    episodes = spec.budget.episodes is not None
    if group_size is not None and group_size > 1 and episodes:
        # Agents of a group finish their episodes at different steps, so they cannot share one.
        raise InputError(
            f"--group-size {group_size}: {spec.source} sets budget.episodes, which trains one "
            "seed per task; use budget.env_steps to group seeds, or --group-size 1"
        )
    trials = expand(spec)
    todo = [trial for trial in trials if trial.trial_id not in complete]
    if group_size is None:
        units = group_units(todo, 1) if episodes else balanced_units(todo, capacity)
    else:
        units = group_units(todo, group_size)
    return Plan(trials=tuple(trials), units=tuple(units))
