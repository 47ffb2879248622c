"""Running a sweep: `run_sweep` trains every trial of a spec not yet complete in its folder.

It holds the folder's lock, checks what a rerun may keep, plans the units of work once the
cluster's task slots are known, and records each trial as it comes back. The parts live apart:
the Ray session (`sweeps.session`), the task body (`sweeps.task`), the submit/collect loop
(`sweeps.scheduler`), the displays (`sweeps.display`) and the results folder (`sweeps.store`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dqn_agent import train_group
from sweeps.display import describe_plan, make_display, print_summary
from sweeps.lock import FolderLock
from sweeps.plan import check_group_size, expand, make_plan, memory_warning
from sweeps.provenance import provenance
from sweeps.resume import check_resume, check_writable
from sweeps.scheduler import Finished, run_units
from sweeps.session import ray_session
from sweeps.spec import SweepSpec
from sweeps.store import ResultsFolder, ResultsStore, TrialOutcome, describe_os_error
from sweeps.task import Train


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run a sweep: where its results go, on which cluster, in which tasks, shown how."""

    out: Path = Path("results")
    """Parent folder of the results: the sweep writes `out/<spec name>`."""
    address: str | None = None
    """Ray cluster to join ('auto', 'HOST:PORT'); None: $RAY_ADDRESS, else a local instance
    (or the caller's Ray, if it has one)."""
    fresh: bool = False
    """Delete the sweep's results folder (after the spec checks) and start over."""
    allow_env_imports: bool = False
    """Accept a stored spec.yaml whose env is 'module:EnvId' (see `sweeps.spec.load_spec`)."""
    max_in_flight: int | None = None
    """Most tasks submitted at once; None: resources.max_in_flight, else twice the task slots."""
    group_size: int | None = None
    """Seeds of one configuration trained together in one task; None: balanced over the
    cluster's task slots (`sweeps.plan.make_plan`)."""
    quiet: bool = False
    """No progress display, plan line or line per trial: the opening line, warnings, summary."""
    command: Sequence[str] | None = None
    """The command line, for the manifest and the 'run again' hint; None: sys.argv."""
    stream: TextIO | None = None
    """Where progress and the summary go; None: sys.stdout at the time of the run."""
    on_outcome: Callable[[TrialOutcome], None] | None = None
    """Called with each trial's outcome once it is recorded."""
    train: Train = train_group
    """What each task calls to train its seeds; tests give a wrapper that fails or kills."""


EXIT_WRITE_FAILED = 3
"""A run's exit code when it could not write its results (a full disk, a read-only folder)."""


@dataclass(frozen=True)
class RunReport:
    """What a run did: trials planned, skipped, finished, failed; whether it was interrupted."""

    folder: Path
    n_trials: int
    n_skipped: int
    outcomes: tuple[TrialOutcome, ...]
    interrupted: bool
    wall_s: float
    signal_number: int = signal.SIGINT
    """The signal that interrupted the run (SIGINT for Ctrl-C, or SIGTERM), if one did."""
    write_error: OSError | None = None
    """Why the run could not write its results, if it could not: it stopped there."""

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """3 if the results could not be written, 128 + the signal's number if a signal
        interrupted the run (130 for Ctrl-C, 143 for SIGTERM, as a shell reports them), 1 if a
        trial failed, else 0."""
        if self.write_error is not None:
            return EXIT_WRITE_FAILED
        return 128 + self.signal_number if self.interrupted else 1 if self.failed else 0


def run_sweep(spec: SweepSpec, options: RunOptions | None = None) -> RunReport:
    """Train every trial of `spec` not yet complete in `options.out/<name>`, on Ray.

    Raises `InputError` (nothing written) if the folder holds trials the spec would change, an
    option is impossible, or the cluster cannot be reached.
    """
    options = options or RunOptions()
    stream = options.stream or sys.stdout
    command = list(options.command if options.command is not None else sys.argv)
    check_group_size(spec, options.group_size)
    folder = ResultsFolder(options.out / spec.name)
    check_writable(folder.root)
    # Held from the resume check to the end: no other run may change the folder in between.
    with FolderLock(folder.root):
        complete = check_resume(
            folder, spec, fresh=options.fresh, allow_env_imports=options.allow_env_imports
        )
        trials = expand(spec)
        todo = [trial for trial in trials if trial.trial_id not in complete]
        skipped = len(trials) - len(todo)
        print(
            f"{spec.name}: {len(trials)} trials, {skipped} already complete, "
            f"{len(todo)} to train -> {folder.root}",
            file=stream,
            flush=True,
        )
        if not todo:
            return RunReport(folder.root, len(trials), skipped, (), False, 0.0)
        start = time.perf_counter()
        finished = _run_on_ray(spec, options, folder, complete, command, stream)
        outcomes, interrupted, signal_number, write_error = finished
    wall_s = time.perf_counter() - start
    print_summary(
        stream,
        outcomes=outcomes,
        wall_s=wall_s,
        folder=folder.root,
        interrupted=interrupted,
        command=command,
        write_error=write_error,
    )
    return RunReport(
        folder.root,
        len(trials),
        skipped,
        tuple(outcomes),
        interrupted,
        wall_s,
        signal_number,
        write_error,
    )


def _run_on_ray(
    spec: SweepSpec,
    options: RunOptions,
    folder: ResultsFolder,
    complete: set[str],
    command: Sequence[str],
    stream: TextIO,
) -> Finished:
    """Open the Ray session, plan the units for its task slots, open the store, run them."""
    with ray_session(options.address, spec.resources) as cluster:
        capacity = cluster.task_slots(spec.resources)
        cap = options.max_in_flight or spec.resources.max_in_flight or 2 * capacity
        slots = min(capacity, cap)  # tasks running at once
        memory_per_task = cluster.memory_per_task(spec.resources)
        plan = make_plan(
            spec,
            complete=complete,
            group_size=options.group_size,
            capacity=slots,
            memory_per_task=memory_per_task,
        )
        warning = memory_warning(spec, plan.units, memory_per_task)
        if warning:
            print(f"warning: {spec.source}: {warning}", file=stream, flush=True)
        if not options.quiet:
            line = describe_plan(spec, plan.units, slots=slots, cpus=cluster.cpus)
            print(line, file=stream, flush=True)
        store = ResultsStore.open(
            folder,
            spec,
            fresh=options.fresh,
            run_info={
                **provenance(command),
                "ray": cluster.facts(),
                "trials": len(plan.trials),
                "to_train": len(plan.todo),
                "group_size": options.group_size or "balanced",
                "units": [len(unit) for unit in plan.units],
                "max_in_flight": cap,
            },
        )
        if store.dropped:
            print(
                f"{len(store.dropped)} trial(s) without results are no longer in the spec; their "
                f"rows moved from trials.parquet to manifest.json: {', '.join(store.dropped)}",
                file=stream,
                flush=True,
            )

        def record(outcome: TrialOutcome) -> None:
            store.record(outcome)
            if options.on_outcome is not None:
                options.on_outcome(outcome)

        budgets = [trial.budget.env_steps for trial in plan.todo]
        total_steps = None if None in budgets else sum(b for b in budgets if b is not None)
        display = make_display(len(plan.todo), total_steps, quiet=options.quiet, stream=stream)
        with contextlib.closing(display):
            finished = run_units(
                plan.units,
                spec.resources,
                record=record,
                display=display,
                max_in_flight=cap,
                slots=slots,
                train=options.train,
            )
        failed = [o.spec.trial_id for o in finished.outcomes if o.status == "failed"]
        summary: dict[str, object] = {
            "trained": len(finished.outcomes),
            "failed": failed,
            "interrupted": finished.interrupted,
        }
        if finished.write_error is not None:
            summary["write_error"] = describe_os_error(finished.write_error)
        try:
            store.finish(summary)
        except OSError as exc:
            if finished.write_error is None:
                return finished._replace(write_error=exc)
            # The disk that refused the trial refuses the record too: the run's record stays
            # open in manifest.json, which a later run tolerates.
    return finished
