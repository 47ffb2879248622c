"""The `dqn-sweep` command: validate and run sweep specs; plot and summarise their results.

Exit codes: 0 all good; 1 the run finished but some trials failed; 2 bad input (nothing
written); 3 the results could not be written (a full disk, a read-only folder: the run stopped,
trials written before are kept, a rerun resumes); 130 interrupted by Ctrl-C, 143 by SIGTERM
(finished trials are kept, a rerun resumes).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sweeps.spec import InputError, SweepSpec

if TYPE_CHECKING:
    from dqn_agent import Budget
    from sweeps.plan import Unit

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dqn-sweep",
        description="Run sweeps of DQN trials on Ray and analyse their results.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="check a sweep spec and list the configurations it plans"
    )
    validate.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    _add_allow_env_imports(validate)
    validate.set_defaults(func=_validate)

    run = commands.add_parser(
        "run",
        help="train every trial of a spec not yet complete in its results folder",
        description="Train every trial of SPEC not yet complete in OUT/<name>; a rerun resumes.",
    )
    run.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    _add_allow_env_imports(run)
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="parent folder of the results (default: results)",
    )
    run.add_argument(
        "--address",
        help="Ray cluster to use ('auto', 'HOST:PORT'); default: $RAY_ADDRESS, else a local one",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="delete the sweep's results folder (after the spec checks) and start over",
    )
    run.add_argument(
        "--max-in-flight",
        type=_positive_int,
        metavar="N",
        help="most tasks submitted at once (default: resources.max_in_flight, else 2x capacity)",
    )
    run.add_argument(
        "--group-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="seeds of one configuration trained together in one task, as one batched "
        "computation (default: balanced over the cluster's task slots: all seeds of a "
        "configuration in one task, costly ones split where that shortens the sweep by 5%% or "
        "more, costliest first; on GPUs, split only to fill the task slots, in even groups of at "
        "most 1,000 seeds; 1 for budgets in episodes)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress display, plan line or line per trial: the opening line, warnings and "
        "the final summary",
    )
    run.set_defaults(func=_run)

    _add_analysis_commands(commands)
    return parser


def _add_allow_env_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-env-imports",
        action="store_true",
        help="accept an env of the form 'module:EnvId', which imports the module and so runs "
        "its code: only for specs you trust",
    )


def _add_analysis_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `plot` and `summary` from the analysis package, where it provides them."""
    try:
        from analysis.cli import add_plot_parser, add_summary_parser
    except ModuleNotFoundError as exc:
        if exc.name != "analysis":
            raise  # the package is there but broken (a missing plotting library): say so
        return
    add_plot_parser(commands)
    add_summary_parser(commands)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _validate(args: argparse.Namespace) -> int:
    from sweeps.plan import local_memory_per_task, machine_cpus, make_plan
    from sweeps.spec import load_spec

    spec = load_spec(args.spec, allow_env_imports=args.allow_env_imports)
    cpus = machine_cpus()
    slots = _local_slots(spec, cpus)
    memory_per_task = local_memory_per_task(slots) if slots else None
    # The plan a local run would make; it refuses a seed this machine cannot hold.
    plan = make_plan(spec, group_size=None, capacity=max(1, slots), memory_per_task=memory_per_task)
    _print_warnings(spec)
    print(f"{spec.source}: OK")
    configs = spec.envs[0].configs  # the same labels on every environment
    if len(spec.envs) == 1:
        print(
            f"sweep {spec.name!r} on {spec.env_id}: {len(configs)} configuration(s) x "
            f"{len(spec.seeds):,} seed(s) = {spec.n_trials:,} trials of "
            f"{_budget_text(spec.budget)} each"
        )
    else:
        print(
            f"sweep {spec.name!r} on {len(spec.envs)} environments x {len(configs)} "
            f"configuration(s) x {len(spec.seeds):,} seed(s) = {spec.n_trials:,} trials"
        )
        for part in spec.envs:
            print(f"  {part.env_id}: {_budget_text(part.budget)} a trial")
        print("configurations:")
    for point in configs:
        print(f"  {point.label}")
    print(_local_estimate(spec, cpus, slots, plan.units))
    if memory_per_task is not None:
        _print_memory(spec, plan.units, slots, memory_per_task)
    return EXIT_OK


def _budget_text(budget: Budget) -> str:
    """'50,000 env steps' or '200 episodes'."""
    if budget.env_steps is not None:
        return f"{budget.env_steps:,} env steps"
    return f"{budget.episodes:,} episodes"


def _local_slots(spec: SweepSpec, cpus: int) -> int:
    """Tasks of `spec` a local run would run at once (0: a task asks for more than there is)."""
    from sweeps.plan import tasks_that_fit

    slots = tasks_that_fit(spec.resources, cpus=cpus, gpus=math.inf)  # GPUs: no estimate
    return min(slots, spec.resources.max_in_flight or slots)


def _print_memory(
    spec: SweepSpec, units: Sequence[Unit], slots: int, memory_per_task: float
) -> None:
    """The memory the plan's largest task needs, on stdout; on stderr as a warning too if it
    is over half of what a task can have here."""
    from sweeps.plan import LOCAL_MEMORY_SHARE, largest_task_memory, machine_memory

    largest = largest_task_memory(spec, units)
    if largest is None:
        return
    line = (
        f"memory: the largest task needs about {largest.describe()}; each of {slots} task(s) "
        f"at a time can have {memory_per_task / 1e9:.1f} GB here ({LOCAL_MEMORY_SHARE:.0%} "
        f"of {machine_memory() / 1e9:.1f} GB)"
    )
    print(line)
    if largest.total > memory_per_task / 2:
        print(f"warning: {spec.source}: {line}", file=sys.stderr)


def _local_estimate(spec: SweepSpec, cpus: int, slots: int, units: Sequence[Unit]) -> str:
    """What `validate` says of the cost of running `spec`'s planned `units` on this machine."""
    from sweeps.plan import describe_tasks, duration, estimate_units

    per_task = spec.resources.cpus_per_trial
    if slots == 0:
        return (
            f"no time estimate: a task asks for {per_task:g} CPUs and this machine has {cpus}, "
            "so a local run would refuse the spec (a cluster with larger nodes would run it)"
        )
    guess = estimate_units(spec, units, cpus=cpus, slots=slots)
    if guess is None and any(point.agent.network != "mlp" for point in spec.configs):
        return (
            "no time estimate: the planner's cost model is of MLPs (on the development machine "
            "a MinAtar agent-step took about 3 ms of a core, in groups of 5 or 10: docs/pixels.md)"
        )
    if guess is None:
        return (
            "no time estimate: the planner's cost model is of CPU tasks with a budget in env steps"
        )
    at_a_time = f"{slots} task{'' if slots == 1 else 's'} at a time"
    lines = [
        f"on this machine ({cpus} CPUs, {at_a_time}): {describe_tasks(guess.units)}",
        f"estimated training time: {duration(guess.wall_s)} ({duration(guess.core_s)} of CPU "
        "time), by the planner's rough cost model; starting Ray and evaluation come on top",
    ]
    if per_task > 1:
        lines.append(f"(the model costs a task as one core; its {per_task:g} CPUs may speed it up)")
    return "\n".join(lines)


def _print_warnings(spec: SweepSpec) -> None:
    for line in spec.warnings():
        print(f"warning: {spec.source}: {line}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    # Ray is imported only by the commands that need it: `validate` stays quick.
    from sweeps.runner import RunOptions, run_sweep
    from sweeps.spec import load_spec

    spec = load_spec(args.spec, allow_env_imports=args.allow_env_imports)
    _print_warnings(spec)
    options = RunOptions(
        out=args.out,
        address=args.address,
        fresh=args.fresh,
        allow_env_imports=args.allow_env_imports,
        max_in_flight=args.max_in_flight,
        group_size=args.group_size,
        quiet=args.quiet,
        command=("dqn-sweep", *args.argv),
    )
    try:
        return run_sweep(spec, options).exit_code
    except OSError as exc:  # the results folder could not be set up: nothing was trained
        from sweeps.runner import EXIT_WRITE_FAILED
        from sweeps.store import describe_os_error

        print(f"error: cannot write the results: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_WRITE_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    previous = _sigterm_as_an_interrupt()
    try:
        code: int = args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived outside a run's driver loop (which handles it as a request to stop)."""


def _sigterm_as_an_interrupt() -> Callable[[int, FrameType | None], Any] | int | None:
    """Have SIGTERM unwind like Ctrl-C, so that `finally` blocks run (a local Ray is shut
    down, a lock released); returns the previous handler (None off the main thread)."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, terminate)
