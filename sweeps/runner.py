"""Running a sweep on Ray: one task per unit of work, a cap on tasks in flight, retries, Ctrl-C.

The task is the plain function `run_unit`, which Ray wraps. It gets everything it needs in its
arguments (frozen TrialSpecs) and hands back plain data (tables, figures, weights); only the
driver writes files, so a task that Ray retries can never leave a second copy of a trial's rows.

Two kinds of failure are told apart. A worker process that dies (killed, out of memory, lost
node) makes Ray run the task again, up to `MAX_RETRIES` times. An ordinary Python error in
training is not retried: the trial is recorded as failed, with its traceback, and the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TextIO

import ray
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from dqn_agent import Progress as TrainProgress
from dqn_agent import TrialSpec, train_group
from sweeps.plan import (
    Plan,
    Unit,
    describe_tasks,
    duration,
    estimate_units,
    machine_cpus,
    make_plan,
    tasks_that_fit,
)
from sweeps.progress import read_board, report_to, start_board
from sweeps.spec import InputError, Resources, SweepSpec
from sweeps.store import (
    FolderLock,
    ResultsFolder,
    ResultsStore,
    TrialOutcome,
    check_resume,
    check_writable,
    provenance,
)

MAX_RETRIES = 3
"""Times Ray reruns a task whose worker process died (never for a Python exception)."""
FAIL_ENV = "DQN_SWEEPS_FAIL_TRIAL"
"""For tests: comma-separated labels, seeds or trial ids whose training raises an error."""
KILL_ENV = "DQN_SWEEPS_KILL_ONCE"
"""For tests: a folder; each task's first attempt SIGKILLs its own worker mid-training (a marker
file named after the task's first trial records that it did)."""


class Faults(NamedTuple):
    """Failures injected on purpose, to test the runner; read by the driver, sent to tasks."""

    fail: frozenset[str] = frozenset()
    kill_once_dir: str | None = None

    @classmethod
    def from_env(cls) -> Faults | None:
        fail = frozenset(v.strip() for v in os.environ.get(FAIL_ENV, "").split(",") if v.strip())
        kill = os.environ.get(KILL_ENV) or None
        return cls(fail, kill) if fail or kill else None

    def raise_if_chosen(self, unit: Sequence[TrialSpec]) -> None:
        for spec in unit:
            if {spec.label, str(spec.seed), spec.trial_id} & self.fail:
                raise RuntimeError(f"{FAIL_ENV} injected a failure: {spec.label} seed {spec.seed}")

    def kill_hook(self, unit: Sequence[TrialSpec]) -> Callable[[TrainProgress], None] | None:
        if self.kill_once_dir is None:
            return None
        marker = Path(self.kill_once_dir) / unit[0].trial_id
        if marker.exists():
            return None

        def kill(_: TrainProgress) -> None:
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

        return kill


def run_unit(
    unit: Sequence[TrialSpec], cpus: float, faults: Faults | None, board: Any = None
) -> list[TrialOutcome]:
    """Train one unit of work (seeds of one configuration); one outcome per trial, in order.

    `cpus` is what the task reserved (the torch threads it may use); `faults` is for tests;
    `board`, if given, hears of the unit's env steps as training goes (`sweeps.progress`).
    """
    # Threads beyond the cores reserved for the task would compete with the other tasks.
    torch.set_num_threads(max(1, math.floor(cpus)))
    host, node_id, attempts = socket.gethostname(), _node_id(), _attempt_number() + 1
    try:
        hooks: list[Callable[[TrainProgress], None]] = []
        if board is not None:
            task, n_agents = unit[0].trial_id, len(unit)
            hooks.append(lambda p: report_to(board, task, p.env_step * n_agents))
        if faults is not None:
            faults.raise_if_chosen(unit)
            kill = faults.kill_hook(unit)
            hooks += [kill] if kill is not None else []
        results = train_group(list(unit), progress=_all_of(hooks))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}\n"
        if len(unit) > 1:  # the message may name one seed; say why the others carry it too
            seeds = ", ".join(str(spec.seed) for spec in unit)
            error += f"(seeds {seeds} trained together in this task: its error fails each)\n"
        error += f"\n{''.join(traceback.format_exception(exc))}"
        return [
            TrialOutcome(
                spec=spec,
                status="failed",
                error=error,
                group_size=len(unit),
                host=host,
                node_id=node_id,
                attempts=attempts,
            )
            for spec in unit
        ]
    return [
        TrialOutcome(
            spec=result.spec,
            status="complete",
            episodes=result.episodes,
            evals=result.evals,
            state_dict=result.state_dict,
            obs_dim=result.obs_dim,
            n_actions=result.n_actions,
            wall_s=result.wall_s,
            group_size=len(unit),
            env_steps=result.env_steps,
            host=host,
            node_id=node_id,
            attempts=attempts,
        )
        for result in results
    ]


_run_unit_task = ray.remote(run_unit)


def _all_of(
    hooks: Sequence[Callable[[TrainProgress], None]],
) -> Callable[[TrainProgress], None] | None:
    """One progress callback calling each of `hooks`, or None for none (no reports at all)."""
    if not hooks:
        return None

    def call_all(progress: TrainProgress) -> None:
        for hook in hooks:
            hook(progress)

    return call_all


def _node_id() -> str:
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""


def _attempt_number() -> int:
    """Times Ray already retried the running task (0 on the first attempt, or outside Ray)."""
    try:
        # Ray has no public call for this; the core worker knows it.
        worker: Any = ray._private.worker.global_worker
        return int(worker.core_worker.get_current_task_attempt_number())
    except Exception:
        return 0


@dataclass(frozen=True)
class RunReport:
    """What a run did: trials planned, skipped, finished, failed; whether it was interrupted."""

    folder: Path
    n_trials: int
    n_skipped: int
    outcomes: tuple[TrialOutcome, ...]
    interrupted: bool
    wall_s: float

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """130 if interrupted (as for SIGINT), 1 if a trial failed, else 0."""
        return 130 if self.interrupted else 1 if self.failed else 0


def run_sweep(
    spec: SweepSpec,
    *,
    out: str | Path = "results",
    address: str | None = None,
    fresh: bool = False,
    max_in_flight: int | None = None,
    group_size: int | None = None,
    quiet: bool = False,
    command: Sequence[str] | None = None,
    stream: TextIO | None = None,
    on_outcome: Callable[[TrialOutcome], None] | None = None,
) -> RunReport:
    """Train every trial of `spec` not yet complete in `out/<name>`, on Ray, recording each.

    Raises `InputError` (nothing written) if the folder holds trials the spec would change, an
    option is impossible, or the cluster cannot be reached. Uses the Ray instance of the caller
    if there is one; otherwise connects to `address` (or $RAY_ADDRESS), or else starts a local
    instance for the run. `on_outcome` is called after each finished trial has been recorded.
    """
    stream = stream or sys.stdout
    command = list(command) if command is not None else [*sys.argv]
    folder = ResultsFolder(Path(out) / spec.name)
    check_writable(folder.root)
    # Held from the resume check to the end: no other run may change the folder in between.
    with FolderLock(folder.root):
        complete = check_resume(folder, spec, fresh=fresh)
        # Trials to train, for the first message; the grouping (by default balanced over the
        # cluster's task slots) is planned again once the cluster is known.
        plan = make_plan(spec, complete=complete, group_size=group_size or 1)
        print(
            f"{spec.name}: {len(plan.trials)} trials, {plan.n_skipped} already complete, "
            f"{len(plan.todo)} to train -> {folder.root}",
            file=stream,
            flush=True,
        )
        if not plan.units:
            return RunReport(folder.root, len(plan.trials), plan.n_skipped, (), False, 0.0)
        start = time.perf_counter()
        outcomes, interrupted = _run_plan(
            spec,
            plan,
            folder,
            complete=complete,
            address=address,
            fresh=fresh,
            group_size=group_size,
            max_in_flight=max_in_flight,
            quiet=quiet,
            command=command,
            stream=stream,
            on_outcome=on_outcome,
        )
    report = RunReport(
        folder.root,
        len(plan.trials),
        plan.n_skipped,
        tuple(outcomes),
        interrupted,
        time.perf_counter() - start,
    )
    _print_summary(report, command, stream)
    return report


def _run_plan(
    spec: SweepSpec,
    plan: Plan,
    folder: ResultsFolder,
    *,
    complete: set[str],
    address: str | None,
    fresh: bool,
    group_size: int | None,
    max_in_flight: int | None,
    quiet: bool,
    command: Sequence[str],
    stream: TextIO,
    on_outcome: Callable[[TrialOutcome], None] | None,
) -> tuple[list[TrialOutcome], bool]:
    """Start or join Ray, open the results folder and run the plan's units; see `run_sweep`."""
    with ray_session(address, spec.resources) as cluster:
        nodes = _alive_nodes()
        capacity = _capacity(spec.resources, nodes)
        cap = max_in_flight or spec.resources.max_in_flight or 2 * capacity
        slots = min(capacity, cap)  # tasks running at once
        if group_size is None:  # balanced over the task slots: known once the cluster is
            plan = make_plan(spec, complete=complete, group_size=None, capacity=slots)
        if not quiet:
            cpus = sum(node.get("CPU", 0.0) for node in nodes)
            print(_plan_line(spec, plan, slots, cpus), file=stream, flush=True)
        store = ResultsStore.open(
            folder,
            spec,
            fresh=fresh,
            run_info={
                **provenance(command),
                "ray": cluster,
                "trials": len(plan.trials),
                "to_train": len(plan.todo),
                "group_size": group_size or "balanced",
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
        budgets = [trial.budget.env_steps for trial in plan.todo]
        total_steps = None if None in budgets else sum(b for b in budgets if b is not None)
        reporter = _make_reporter(len(plan.todo), total_steps, quiet=quiet, stream=stream)
        try:
            outcomes, interrupted = _execute(
                plan,
                spec.resources,
                store,
                reporter,
                cap=cap,
                capacity=capacity,
                faults=Faults.from_env(),
                on_outcome=on_outcome,
            )
        finally:
            reporter.close()
        failed = [o.spec.trial_id for o in outcomes if o.status == "failed"]
        store.finish({"trained": len(outcomes), "failed": failed, "interrupted": interrupted})
    return outcomes, interrupted


def _plan_line(spec: SweepSpec, plan: Plan, slots: int, cpus: float) -> str:
    """The tasks of the run, `slots` at a time on a cluster of `cpus` CPUs, and the planner's
    estimate of their training time where it has one."""
    line = f"{describe_tasks([len(unit) for unit in plan.units])}, {slots} at a time"
    guess = estimate_units(spec, plan.units, cpus=cpus, slots=slots) if cpus > 0 else None
    if guess is None:
        return line
    return f"{line}; estimated training time {duration(guess.wall_s)} (the planner's model)"


def _execute(
    plan: Plan,
    resources: Resources,
    store: ResultsStore,
    reporter: Reporter,
    *,
    cap: int,
    capacity: int,
    faults: Faults | None,
    on_outcome: Callable[[TrialOutcome], None] | None,
) -> tuple[list[TrialOutcome], bool]:
    """Submit units with at most `cap` in flight; record each as it finishes. Ctrl-C cancels.

    `capacity` is how many tasks the cluster runs at once (the rest of those in flight queue).
    On Ctrl-C the tasks still running are cancelled, and every trial already trained is still
    recorded: those of the unit being written, and of tasks that finished meanwhile.
    """
    options = {
        "num_cpus": resources.cpus_per_trial,
        "num_gpus": resources.gpus_per_trial,
        "max_retries": MAX_RETRIES,
        "retry_exceptions": False,
    }
    queue: deque[Unit] = deque(plan.units)
    pending: dict[Any, Unit] = {}  # in submission order: the first `capacity` are running
    board = start_board() if reporter.shows_steps else None
    received: deque[TrialOutcome] = deque()  # back from Ray, not yet written
    recorded: dict[str, TrialOutcome] = {}  # written, by trial id

    def receive(refs: Sequence[Any]) -> None:
        for ref in refs:
            received.extend(_collect(ref, pending[ref]))
            del pending[ref]  # interrupted just before this? then received twice: see below

    def record_received() -> None:
        while received:
            outcome = received[0]
            trial_id = outcome.spec.trial_id
            if trial_id not in recorded:  # each trial is written and reported once
                store.record(outcome)  # interrupted inside? then written again: harmless
                recorded[trial_id] = outcome
                reporter.finished(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
            received.popleft()

    try:
        with _ctrl_c_as_a_request() as stop_requested:
            while queue or pending:
                if stop_requested():
                    raise KeyboardInterrupt
                while queue and len(pending) < cap:
                    unit = queue.popleft()
                    ref = _run_unit_task.options(name=_task_name(unit), **options).remote(
                        unit, resources.cpus_per_trial, faults, board
                    )
                    pending[ref] = unit
                # Tasks beyond the cluster's capacity wait in Ray's queue: not running yet.
                running = sum(len(unit) for unit in list(pending.values())[:capacity])
                steps = read_board(board) if board is not None else {}
                done_steps = sum(steps.get(unit[0].trial_id, 0) for unit in pending.values())
                reporter.update(running=running, steps=done_steps)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if done:  # and whatever else has finished meanwhile
                    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                receive(done)
                record_received()
    except KeyboardInterrupt:
        if pending:
            finished, still = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in still:  # stop using the cluster first, then write what is finished
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            receive(finished)
        record_received()
        return list(recorded.values()), True
    finally:
        if board is not None:
            with contextlib.suppress(Exception):
                ray.kill(board)
    return list(recorded.values()), False


@contextlib.contextmanager
def _ctrl_c_as_a_request() -> Iterator[Callable[[], bool]]:
    """While the driver loop runs, a first Ctrl-C only asks it to stop; it does so at the top
    of its next pass, after writing what it had received. A second Ctrl-C interrupts at once.

    A KeyboardInterrupt raised wherever the signal happens to land can land inside Ray's own
    calls (measured: one run in three of the Ctrl-C test went on as if nothing had happened),
    and in the middle of writing a trial. Only the main thread may set a signal handler;
    elsewhere Ctrl-C keeps its default behaviour.
    """
    requested = False

    def request(signum: int, frame: object) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, request)
    try:
        yield lambda: requested
    finally:
        signal.signal(signal.SIGINT, previous)


def _collect(ref: Any, unit: Unit) -> list[TrialOutcome]:
    try:
        return list(ray.get(ref))
    except ray.exceptions.RayError as exc:
        # Either something run_unit does not catch (a BaseException, never retried) or a worker
        # that died on every attempt (killed, out of memory, node lost).
        attempts = 1 if isinstance(exc, ray.exceptions.RayTaskError) else MAX_RETRIES + 1
        error = f"{type(exc).__name__}: {exc}"
        return [
            TrialOutcome(
                spec=spec, status="failed", error=error, group_size=len(unit), attempts=attempts
            )
            for spec in unit
        ]


def _task_name(unit: Unit) -> str:
    seeds = ",".join(str(spec.seed) for spec in unit)
    return f"trial {unit[0].label} seed {seeds}"


@contextlib.contextmanager
def ray_session(address: str | None, resources: Resources) -> Iterator[dict[str, Any]]:
    """Use the caller's Ray, or connect to `address` / $RAY_ADDRESS, or start a local one.

    Yields facts about the cluster for the manifest. A local instance is sized to this machine
    and shut down at the end; its tasks must fit on it, while a cluster may still grow.
    """
    started = False
    target = address or os.environ.get("RAY_ADDRESS") or None
    source = "--address" if address else "$RAY_ADDRESS"  # named in errors: where it came from
    if not ray.is_initialized():
        try:
            if target is not None:
                _check_reachable(target, source)
                ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
            else:
                # 'local' so that a cluster started with `ray start` is not joined by surprise.
                ray.init(
                    address="local",
                    num_cpus=machine_cpus(),
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            if target is None:
                raise InputError(f"could not start a local Ray instance: {exc}") from exc
            raise InputError(f"{source} {target}: cannot connect to a Ray cluster: {exc}") from exc
        started = True
    try:
        _check_fits(resources, strict=started and target is None)
        if started and target is None:
            _check_cuda(resources)
        yield {
            "address": target or "local",
            "gcs_address": ray.get_runtime_context().gcs_address,
            "nodes": len(_alive_nodes()),
            "cluster_resources": ray.cluster_resources(),  # type: ignore[no-untyped-call]
        }
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str, source: str = "--address") -> None:
    """Fail fast where nothing listens at HOST:PORT: `ray.init` would retry for many minutes.
    `source` says where the address came from (``--address`` or ``$RAY_ADDRESS``)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or "auto"  # what Ray itself would use
    host, colon, port = address.rpartition(":")
    if address in ("auto", "local") or "://" in address or not colon or not port.isdigit():
        return  # Ray finds or explains these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        instead = "leave --address out" if source == "--address" else "unset RAY_ADDRESS"
        raise InputError(
            f"{source} {address}: no Ray cluster answers there ({exc}); check the address "
            f"that `ray start --head` printed, or {instead} to run on this machine"
        ) from None


def _check_cuda(resources: Resources) -> None:
    """On a local instance, refuse GPU tasks that this machine's torch cannot run.

    Ray counts the GPUs it sees, not whether torch can use them (a CPU build of torch, a missing
    driver); every trial would then fail on its first CUDA call. On a cluster the workers'
    torch may differ from the driver's, so there the tasks themselves find out."""
    if resources.gpus_per_trial > 0 and not torch.cuda.is_available():
        raise InputError(
            f"resources.gpus_per_trial: {resources.gpus_per_trial:g}, but torch "
            f"{torch.__version__} on this machine cannot use a GPU (a CPU-only build, or no "
            "CUDA driver); set gpus_per_trial: 0, or install a CUDA build of torch"
        )


def _alive_nodes() -> list[dict[str, float]]:
    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return [dict(node["Resources"]) for node in nodes if node.get("Alive")]


def _capacity(resources: Resources, nodes: Sequence[dict[str, float]]) -> int:
    """Tasks a cluster of `nodes` (their resources) can run at once, node by node (at least 1)."""
    total = sum(
        tasks_that_fit(resources, cpus=node.get("CPU", 0.0), gpus=node.get("GPU", 0.0))
        for node in nodes
    )
    return max(1, total)


def _check_fits(resources: Resources, *, strict: bool) -> None:
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    nodes = _alive_nodes()
    if any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes):
        return
    sizes = ", ".join(f"{n.get('CPU', 0):g} CPU and {n.get('GPU', 0):g} GPU" for n in nodes)
    message = (
        f"resources: a task asks for {cpus:g} CPU and {gpus:g} GPU, more than any node of the "
        f"Ray cluster has (nodes: {sizes or 'none'})"
    )
    if strict:
        raise InputError(f"{message}; lower resources.cpus_per_trial or gpus_per_trial")
    print(f"warning: {message}; tasks wait until such a node joins", file=sys.stderr)


class Reporter(Protocol):
    """Shows a run's progress: a live display on a terminal, else a line per finished trial."""

    shows_steps: bool
    """Whether `update` wants the env steps of running tasks (they cost a Ray actor)."""

    def update(self, *, running: int, steps: int = 0) -> None:
        """`running` trials in tasks now; `steps` agent-env steps those tasks have done."""
        ...

    def finished(self, outcome: TrialOutcome) -> None: ...

    def close(self) -> None: ...


def _make_reporter(total: int, total_steps: int | None, *, quiet: bool, stream: TextIO) -> Reporter:
    if not quiet and stream.isatty():
        return _LiveReporter(total, total_steps, stream)
    return _LineReporter(total, stream, quiet=quiet)


def describe_outcome(outcome: TrialOutcome) -> str:
    """One line about a finished trial: id, configuration, seed, final evaluation, wall time."""
    spec = outcome.spec
    head = f"{spec.trial_id}  {spec.label}  seed={spec.seed}"
    retried = f"  attempts={outcome.attempts}" if outcome.attempts > 1 else ""
    if outcome.status == "failed":
        first_line = (outcome.error.splitlines() or ["(no error message)"])[0]
        return f"FAILED    {head}{retried}  {first_line}"
    return (
        f"complete  {head}  final_eval={outcome.final_eval_return:.2f}  "
        f"wall={outcome.wall_s:.1f}s{retried}"
    )


class _LineReporter:
    """One log line per finished trial, for logs and pipes (nothing at all when quiet)."""

    shows_steps = False

    def __init__(self, total: int, stream: TextIO, *, quiet: bool) -> None:
        self.total, self.stream, self.quiet, self.done = total, stream, quiet, 0

    def update(self, *, running: int, steps: int = 0) -> None:
        pass

    def finished(self, outcome: TrialOutcome) -> None:
        self.done += 1
        if not self.quiet:
            width = len(str(self.total))
            line = f"[{self.done:>{width}}/{self.total}] {describe_outcome(outcome)}"
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class _LiveReporter:
    """A live progress bar: env steps done (of finished trials and of running tasks, so it
    moves while a task trains), trials done, running and failed, env steps per second, ETA.
    It fits an 80-column terminal.

    With budgets in episodes the total of env steps is unknown, and the bar counts trials.
    """

    shows_steps = True

    def __init__(self, total: int, total_steps: int | None, stream: TextIO) -> None:
        self.start = time.perf_counter()
        self.total_steps = total_steps
        self.done = self.failed = 0
        self.finished_steps = 0  # agent-env steps of finished trials
        self.shown_steps = 0
        self.progress = Progress(
            BarColumn(bar_width=12),
            TextColumn("{task.fields[steps]}"),
            TextColumn("[bold]trials {task.fields[done]}/{task.fields[total_trials]}"),
            TextColumn("running {task.fields[running]} failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=Console(file=stream),
        )
        self.task = self.progress.add_task(
            "sweep",
            total=total_steps if total_steps is not None else total,
            steps=self._steps_text(0),
            done=0,
            total_trials=total,
            running=0,
            failed=0,
            rate="-",
        )
        self.progress.start()

    def _steps_text(self, steps: int) -> str:
        if self.total_steps is None:
            return ""
        return f"{_short(steps)}/{_short(self.total_steps)} steps"

    def _show_steps(self, steps: int) -> dict[str, Any]:
        assert self.total_steps is not None
        self.shown_steps = max(self.shown_steps, min(steps, self.total_steps))  # never back
        rate = self.shown_steps / max(time.perf_counter() - self.start, 1e-9)
        return {
            "completed": self.shown_steps,
            "steps": self._steps_text(self.shown_steps),
            "rate": _short(round(rate)),
        }

    def update(self, *, running: int, steps: int = 0) -> None:
        fields: dict[str, Any] = {"running": running}
        if self.total_steps is not None:
            fields |= self._show_steps(self.finished_steps + steps)
        self.progress.update(self.task, **fields)

    def finished(self, outcome: TrialOutcome) -> None:
        self.done += 1
        if outcome.status == "failed":
            self.failed += 1
            self.progress.console.print(describe_outcome(outcome), markup=False)
        # A failed trial's budget counts as done, so that the bar still ends full.
        self.finished_steps += outcome.spec.budget.env_steps or outcome.env_steps
        fields: dict[str, Any] = {"done": self.done, "failed": self.failed}
        if self.total_steps is not None:
            fields |= self._show_steps(self.finished_steps)
        else:
            rate = self.finished_steps / max(time.perf_counter() - self.start, 1e-9)
            fields |= {"advance": 1, "rate": _short(round(rate))}
        self.progress.update(self.task, **fields)

    def close(self) -> None:
        self.progress.update(self.task, running=0)
        self.progress.stop()


def _short(n: int) -> str:
    """1234 -> '1,234'; 56789 -> '56.8k'; 2000000 -> '2.0M': numbers for a narrow display."""
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.1f}M"


def _print_summary(report: RunReport, command: Sequence[str], stream: TextIO) -> None:
    complete = len(report.outcomes) - len(report.failed)
    print(
        f"trained {len(report.outcomes)} trial(s) in {report.wall_s:.1f} s: {complete} complete, "
        f"{len(report.failed)} failed; results in {report.folder}",
        file=stream,
    )
    # Resuming must not start over: drop --fresh from the command to repeat.
    again = shlex.join([arg for arg in command if arg != "--fresh"]) or "dqn-sweep run ..."
    if report.failed:
        print(f"{len(report.failed)} trial(s) failed:", file=stream)
        for outcome in report.failed:
            print(f"  {describe_outcome(outcome)}", file=stream)
        print(
            f"their errors and tracebacks are in {report.folder / 'trials.parquet'} (column "
            f"'error'); to retry them, run again: {again}",
            file=stream,
        )
    if report.interrupted:
        print(
            f"interrupted: running tasks were cancelled; finished trials are kept in "
            f"{report.folder}. To resume, run again: {again}",
            file=stream,
        )
    stream.flush()
