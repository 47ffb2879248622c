"""From a checked spec to the trials to run: envs x configurations x seeds, grouped into units.

A trial is a `dqn_agent.TrialSpec`, whose id is a hash of its content: the same spec always
plans the same ids, so a rerun can skip what is already complete and a changed hyperparameter
names new trials. A unit of work is one Ray task: a group of seeds of one configuration on one
environment, which `dqn_agent.train_group` trains at once.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dqn_agent import AgentConfig, TrialSpec
from dqn_agent.envs import frames_per_observation
from dqn_agent.memory import MemoryEstimate, env_package_bytes, gigabytes, task_memory
from sweeps.spec import InputError, Resources, SweepSpec

Unit = tuple[TrialSpec, ...]


@dataclass(frozen=True)
class Plan:
    """All trials of a spec, and the units of work still to run."""

    trials: tuple[TrialSpec, ...]
    """Every trial of the spec: environments, then configurations in spec order, seeds within
    each."""
    units: tuple[Unit, ...]
    """Trials not yet complete, grouped by environment and configuration, in the order to
    submit them."""

    @property
    def todo(self) -> tuple[TrialSpec, ...]:
        return tuple(trial for unit in self.units for trial in unit)

    @property
    def n_skipped(self) -> int:
        return len(self.trials) - len(self.todo)


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """One TrialSpec per environment, configuration and seed. Tasks given a GPU train on
    'cuda'. A trial's id depends on its own settings only, so adding an environment to a spec
    leaves the other trials' ids as they were."""
    device = "cuda" if spec.resources.gpus_per_trial > 0 else "cpu"
    return [
        TrialSpec(
            env_id=part.env_id,
            agent=point.agent,
            seed=seed,
            budget=part.budget,
            eval=part.eval,
            label=point.label,
            device=device,
        )
        for part in spec.envs
        for point in part.configs
        for seed in spec.seeds
    ]


def group_units(trials: Sequence[TrialSpec], group_size: int) -> list[Unit]:
    """Chunks of at most `group_size` consecutive trials that differ only in their seed."""
    units: list[Unit] = []
    current: list[TrialSpec] = []
    for trial in trials:
        first = current[0] if current else None
        if first and (
            len(current) == group_size or trial.label != first.label or trial.env_id != first.env_id
        ):
            units.append(tuple(current))
            current = []
        current.append(trial)
    if current:
        units.append(tuple(current))
    return units


GROUP_STEP_OVERHEAD_S = 1.25e-3
"""Rough cost of one env step of a group apart from the agents' matrix products (Python and
operator dispatch, env stepping, acting), whatever the group's size."""
MATMUL_FLOP_PER_S = 71e9
"""Rough rate of the agents' matrix products inside training on one CPU core, by this model's
FLOP count. Both constants are a least-squares fit to the group times of the course sweep
trained on both cores of a 2-core Intel Xeon (Sapphire Rapids), where the recorded benchmarks
ran (`python -m benchmarks.bench_plans`); on a 2-core AMD EPYC, the overhead was about 1 ms and
the rate about 40 GFLOP/s. `--group-size` overrides the plan wherever they are wrong."""
CUT_GAIN_NEEDED = 0.05
"""A cut must shorten the estimated wall time of the sweep by this fraction to be kept."""


def unit_seconds(unit: Unit) -> float:
    """Estimated seconds of training `unit` to its budget in env steps (`unit_cost` times the
    budget; a budget in episodes counts as one env step): what orders the units of a spec whose
    environments have different budgets."""
    return unit_cost(unit) * (unit[0].budget.env_steps or 1)


def unit_cost(unit: Unit) -> float:
    """Estimated seconds per env step of training `unit` as one group on one CPU core.

    A group pays a fixed overhead per env step, whatever its size, plus each agent's matrix
    products: the acting forward pass of one observation and, per gradient step, the online
    forward and backward (twice the forward) and the target forward on a batch. Only the ratios
    between units matter: they decide how to split and order the work.
    """
    return _group_cost(unit[0].agent, len(unit))


@functools.cache
def _group_cost(config: AgentConfig, n_agents: int) -> float:
    return GROUP_STEP_OVERHEAD_S + n_agents * flop_per_agent_step(config) / MATMUL_FLOP_PER_S


def flop_per_agent_step(config: AgentConfig, obs_dim: int = 8, n_actions: int = 4) -> float:
    """Matmul FLOPs of one agent-env-step: the acting forward pass of one observation, and per
    gradient step the online forward, its backward (twice the forward), and the target forward.
    By default for a typical small observation and action count, as the planner estimates."""
    widths = [obs_dim, *config.hidden_sizes, n_actions]
    forward = 2 * sum(a * b for a, b in itertools.pairwise(widths))
    updates = config.gradient_steps / config.train_every
    return forward + updates * config.batch_size * forward * (1 + 2 + 1)


def slot_loads(
    units: Sequence[Unit], capacity: int, cost: Callable[[Unit], float] = unit_cost
) -> list[float]:
    """Estimated busy time (per env step, or in seconds with `cost=unit_seconds`) of each of
    `capacity` slots, when each unit in turn, costliest first, starts on the slot that frees up
    first (as a task queue does)."""
    loads = [0.0] * max(capacity, 1)  # a heap: the least loaded slot first
    for one in sorted(map(cost, units), reverse=True):
        heapq.heapreplace(loads, loads[0] + one)
    return loads


def makespan(
    units: Sequence[Unit], capacity: int, cost: Callable[[Unit], float] = unit_cost
) -> float:
    """Estimated wall time (per env step, or in seconds with `cost=unit_seconds`) of `units` on
    `capacity` slots: the busiest slot's."""
    return max(slot_loads(units, capacity, cost))


def balanced_units(trials: Sequence[TrialSpec], capacity: int) -> list[Unit]:
    """Units for a cluster of `capacity` task slots when the user gives no group size.

    Seeds are the cheap dimension: a group of K seeds of a small network trains almost as fast
    as one seed, so each configuration starts as one group of all its seeds. A group whose
    matrix products dominate costs about K times one seed, though, and a single such group can
    keep one slot busy long after the others are idle. So the costliest unit is cut, whichever
    way finishes the sweep soonest (`_score`): its configuration split evenly into one group
    more, or the unit cut in two, evenly where each part gets a slot of its own, unevenly where
    the smaller part shares a slot with other work. Cutting repeats while it helps, but cuts that
    gain less than CUT_GAIN_NEEDED are undone; the units are returned costliest first, so that
    the longest start first.
    """
    units = group_units(trials, max(len(trials), 1))  # all seeds of each configuration
    visited = [units]
    while units:
        cuts = _cuts(max(units, key=unit_seconds), units, trials)
        if not cuts:
            break  # the longest unit is a single seed: nothing shortens the sweep further
        best = min(cuts, key=lambda cut: _score(cut, capacity))  # the first of equals
        if _score(best, capacity) >= _score(units, capacity):
            break
        units = best
        visited.append(units)
    # Every cut costs core time (one more group's overhead, and smaller groups use a core less
    # well), which the estimate of wall time does not weigh: keep the plan of fewest cuts whose
    # estimate is within CUT_GAIN_NEEDED of the shortest found.
    estimates = [makespan(plan, capacity, unit_seconds) for plan in visited]
    enough = min(estimates) * (1 + CUT_GAIN_NEEDED)
    units = next(plan for plan, t in zip(visited, estimates, strict=True) if t <= enough)
    return sorted(units, key=unit_seconds, reverse=True)


GPU_GROUP_MAX = 1_000
"""Most seeds of one configuration in one task on a GPU: the largest group the GPU benchmark
targets (`benchmarks/bench_gpu.py`). A configuration with more seeds is split evenly."""


def gpu_units(trials: Sequence[TrialSpec], capacity: int) -> list[Unit]:
    """Units for tasks on GPUs: each configuration's seeds in as few tasks as fill the
    `capacity` slots, in even groups of at most GPU_GROUP_MAX; costliest first.

    `balanced_units` cuts a costly configuration by a model of CPU cores, where a group's cost
    grows with its number of seeds. On a GPU, networks this small leave the device mostly idle
    and a step of a group costs about what its kernel launches cost, whatever its number of
    seeds (the premise of seed-batching; issue 5 asks 1,000 seeds in at most twice the time of
    10; not measured here, for want of a GPU). So a configuration is cut only where slots would
    otherwise stay idle (fewer configurations than slots: each is cut into slots // configs
    groups, each task issuing its launches from its own CPU core), never to shorten a long group
    as on CPUs: with no slot idle, a cut adds launches and leaves a task waiting for a slot."""
    configurations = group_units(trials, max(len(trials), 1))
    per_configuration = max(1, capacity // max(len(configurations), 1))
    units: list[Unit] = []
    for whole in configurations:
        parts = max(math.ceil(len(whole) / GPU_GROUP_MAX), per_configuration)
        units += split(whole, min(parts, len(whole)))
    return sorted(units, key=unit_seconds, reverse=True)


def _cuts(unit: Unit, units: Sequence[Unit], trials: Sequence[TrialSpec]) -> list[list[Unit]]:
    """The ways to cut `unit`, one of `units`, most even first: its configuration's seeds split
    evenly into one group more than now, or `unit` itself cut in two."""
    key = _configuration(unit[0])
    rest = [u for u in units if u != unit]
    n = len(unit)
    larger = range((n + 1) // 2, n)  # the larger part's size: from even to one seed off
    step = max(1, math.ceil(len(larger) / 32))  # a large unit: every step-th (estimates are rough)
    cuts = [[*rest, unit[:k], unit[k:]] for k in larger[::step]]
    n_groups = sum(_configuration(u[0]) == key for u in units)
    if n_groups > 1:  # (with one group, the even re-split is the even cut above)
        seeds = tuple(t for t in trials if _configuration(t) == key)
        others = [u for u in units if _configuration(u[0]) != key]
        cuts.insert(0, [*others, *split(seeds, min(n_groups + 1, len(seeds)))])
    return cuts


def _configuration(trial: TrialSpec) -> tuple[str, str]:
    """What the seeds of one configuration share: environment and label."""
    return trial.env_id, trial.label


def _score(units: Sequence[Unit], capacity: int) -> tuple[float, int]:
    """The estimated wall time of `units` on `capacity` slots (each unit trained to its budget,
    which may differ between environments), then how many slots are busy until then: lower is
    better. The second counts a step towards finishing sooner (with four equal groups on eight
    slots, no one cut shortens the sweep, but cutting each of them does). Loads are rounded to a
    nanosecond, so that the float error of adding the same costs in another order cannot
    decide."""
    loads = [round(load, 9) for load in slot_loads(units, capacity, unit_seconds)]
    longest = max(loads)
    return longest, loads.count(longest)


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
    memory_per_task: float | None = None,
) -> Plan:
    """Plan `spec`, leaving out the trials whose ids are in `complete`.

    `group_size` None balances the units over `capacity` task slots (`balanced_units`), or for
    tasks on GPUs keeps each configuration's seeds together (`gpu_units`); otherwise each unit
    holds up to `group_size` seeds of one configuration, in spec order. With `memory_per_task`
    (bytes), a unit whose estimated memory exceeds it is split (`fit_memory`).
    """
    check_group_size(spec, group_size)
    episodes = any(part.budget.episodes is not None for part in spec.envs)
    trials = expand(spec)
    todo = [trial for trial in trials if trial.trial_id not in complete]
    if group_size is None and episodes:
        units = group_units(todo, 1)
    elif group_size is None:
        # Each environment is planned on its own; with several, the units of all of them are
        # submitted longest first (their budgets may differ).
        way = gpu_units if spec.resources.gpus_per_trial > 0 else balanced_units
        units = way(todo, capacity)
    else:
        units = group_units(todo, group_size)
    if memory_per_task is not None:
        units = fit_memory(spec, units, memory_per_task)
    return Plan(trials=tuple(trials), units=tuple(units))


def unit_memory(
    spec: SweepSpec, config: AgentConfig, n_agents: int, env_id: str | None = None
) -> MemoryEstimate | None:
    """What a task of `n_agents` seeds of `config` on `env_id` (default: the spec's only env)
    takes (`dqn_agent.memory.task_memory`); None if the spec was read without making its env
    (its observations unknown)."""
    part = spec.only if env_id is None else spec.part(env_id)
    if part.obs_shape is None or part.n_actions is None:
        return None
    return task_memory(
        config,
        part.obs_shape,
        part.n_actions,
        n_agents,
        frames_per_observation=frames_per_observation(part.env_id),
        env_package_bytes=env_package_bytes(part.env_id),
    )


def fit_memory(spec: SweepSpec, units: Sequence[Unit], limit: float) -> list[Unit]:
    """`units`, each split into groups small enough to fit `limit` bytes of memory.

    Raises:
        InputError: a single seed of some configuration does not fit; the message gives the
            estimate and names the setting to lower.
    """
    fitted: list[Unit] = []
    for unit in units:
        config, env_id = unit[0].agent, unit[0].env_id
        size = len(unit)
        while size > 0 and _over(unit_memory(spec, config, size, env_id), limit):
            size -= 1
        if size == 0:
            one = unit_memory(spec, config, 1, env_id)
            assert one is not None
            raise InputError(too_large(spec, unit[0], one, limit))
        fitted += [unit[i : i + size] for i in range(0, len(unit), size)]
    return fitted


def largest_task_memory(spec: SweepSpec, units: Sequence[Unit]) -> MemoryEstimate | None:
    """The estimate of the unit that needs the most memory; None if the env was not made."""
    sizes = {(unit[0].agent, len(unit), unit[0].env_id) for unit in units}
    estimates = [
        e for config, n, env_id in sizes if (e := unit_memory(spec, config, n, env_id)) is not None
    ]
    return max(estimates, key=lambda e: e.total, default=None)


def memory_warning(spec: SweepSpec, units: Sequence[Unit], limit: float | None) -> str:
    """A line on the largest task's memory where it is over half of what a task can have
    (`limit` bytes), else ''."""
    if limit is None:
        return ""
    largest = largest_task_memory(spec, units)
    if largest is None or largest.total <= limit / 2:
        return ""
    return (
        f"the largest task needs about {largest.describe()} of memory, more than half of the "
        f"{gigabytes(limit)} a task can have; lower agent.buffer_size or the seeds per task "
        "(--group-size) if the machine has other work"
    )


def _over(estimate: MemoryEstimate | None, limit: float) -> bool:
    return estimate is not None and estimate.total > limit


def too_large(spec: SweepSpec, trial: TrialSpec, one: MemoryEstimate, limit: float) -> str:
    """Why one seed of `trial`'s configuration cannot run, and what to lower."""
    if one.replay >= one.networks:
        what = (
            f"lower agent.buffer_size ({trial.agent.buffer_size:,} transitions take "
            f"{gigabytes(one.replay)} a seed)"
        )
    else:
        what = f"use a smaller network (agent.hidden_sizes or agent.channels of {trial.label})"
    where = f" on {trial.env_id}" if len(spec.envs) > 1 else ""
    return (
        f"{spec.source}: one seed of {trial.label!r}{where} needs about {one.describe()} of "
        f"memory, more than a task can have ({gigabytes(limit)}): {what}"
    )


def check_group_size(spec: SweepSpec, group_size: int | None) -> None:
    """Refuse a `group_size` that `make_plan` could not plan for `spec` (`InputError`)."""
    if group_size is not None and group_size < 1:
        raise InputError(f"--group-size {group_size}: give an integer >= 1")
    in_episodes = [part.env_id for part in spec.envs if part.budget.episodes is not None]
    if group_size is not None and group_size > 1 and in_episodes:
        # Agents of a group finish their episodes at different steps, so they cannot share one.
        where = f" (for {', '.join(in_episodes)})" if len(spec.envs) > 1 else ""
        raise InputError(
            f"--group-size {group_size}: {spec.source} sets budget.episodes{where}, which trains "
            "one seed per task; use budget.env_steps to group seeds, or --group-size 1"
        )


def tasks_that_fit(resources: Resources, *, cpus: float, gpus: float = 0.0) -> int:
    """How many tasks asking for `resources` one node of `cpus` CPUs and `gpus` GPUs runs at
    once (0 where not even one fits)."""
    fit = cpus / resources.cpus_per_trial
    if resources.gpus_per_trial > 0:
        fit = min(fit, gpus / resources.gpus_per_trial)
    return math.floor(fit + 1e-9)  # 1 / 0.1 is 9.999999999999998


LOCAL_MEMORY_SHARE = 0.7
"""The share of this machine's memory a local run lets its tasks fill: Ray gives tasks the
memory left after its object store (30% by default) and its own processes."""


def machine_memory() -> int:
    """Bytes of memory this machine has."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def local_memory_per_task(slots: int) -> float:
    """Bytes each of `slots` tasks running at once on this machine can fill."""
    return machine_memory() * LOCAL_MEMORY_SHARE / max(1, slots)


def machine_cpus() -> int:
    """CPU cores this process may use (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Estimate(NamedTuple):
    """What the planner's cost model expects a sweep's training to cost."""

    units: tuple[int, ...]
    """Seeds in each task of the plan, in the order they are submitted."""
    wall_s: float
    """Seconds from the first task's start to the last one's end."""
    core_s: float
    """Seconds of CPU core time, all tasks together."""


def estimate(spec: SweepSpec, *, cpus: float, slots: int) -> Estimate | None:
    """The cost of training every trial of `spec`, `slots` tasks at a time on `cpus` cores, by
    the model that plans the groups (`unit_cost`); None where that model does not apply: tasks
    on GPUs, a budget in episodes (a number of env steps unknown in advance), or convolutional
    networks.

    The model counts training only: not Ray's start, nor evaluation episodes, nor the extra cost
    of an environment slower to step than CartPole, on which it was fitted. It costs each task
    as one core: tasks sharing a core (cpus_per_trial below 1) take longer, so the wall time is
    at least the core time over the cores; a task given several cores is not counted faster.
    On the development machine it has been within about 20% of measured times, mostly below
    (docs/sweeps.md)."""
    units = make_plan(spec, group_size=None, capacity=slots).units
    return estimate_units(spec, units, cpus=cpus, slots=slots)


def estimate_units(
    spec: SweepSpec, units: Sequence[Unit], *, cpus: float, slots: int
) -> Estimate | None:
    """`estimate` for units already planned (some trials may be complete, or grouped by hand)."""
    in_episodes = any(part.budget.env_steps is None for part in spec.envs)
    if spec.resources.gpus_per_trial > 0 or in_episodes:
        return None
    if any(point.agent.network != "mlp" for point in spec.configs):
        return None  # fitted on MLPs: it knows nothing of a convolution's cost
    core_s = sum(map(unit_seconds, units))
    return Estimate(
        units=tuple(len(unit) for unit in units),
        wall_s=max(makespan(units, slots, unit_seconds), core_s / cpus),
        core_s=core_s,
    )


def describe_tasks(sizes: Sequence[int]) -> str:
    """'4 tasks of 10 seeds', '3 tasks of 4, 1 and 5 seeds', '13 tasks: 10 of 1 seed, 3 of 10
    seeds' (a long list is counted, not spelled out)."""

    def count(n: int, noun: str) -> str:
        return f"{n:,} {noun}" + ("" if n == 1 else "s")

    tasks = count(len(sizes), "task")
    if len(set(sizes)) == 1:
        return f"{tasks} of {count(sizes[0], 'seed')}"
    if len(sizes) <= 6:
        listed = ", ".join(map(str, sizes[:-1]))
        return f"{tasks} of {listed} and {count(sizes[-1], 'seed')}"
    by_size = collections.Counter(sizes)  # in order of first appearance
    return f"{tasks}: " + ", ".join(f"{n:,} of {count(k, 'seed')}" for k, n in by_size.items())


def duration(seconds: float) -> str:
    """A duration as people read it: 'under 1 s', '32 s', '5.2 min', '1.5 h'."""
    if seconds < 0.5:
        return "under 1 s"
    if round(seconds) < 90:
        return f"{round(seconds)} s"
    if round(seconds / 60, 1) < 90:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
