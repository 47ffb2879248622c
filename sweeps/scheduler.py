"""Running units of work as Ray tasks: a cap on tasks in flight, retries of dead workers, Ctrl-C.

Two kinds of failure are told apart. A worker process that dies (killed, out of memory, lost
node) makes Ray run the task again, up to `MAX_RETRIES` times. An ordinary Python error in
training is not retried: the task returns the trial as failed, with its traceback
(`sweeps.task`), and the others go on.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import ray

from sweeps.display import Display
from sweeps.plan import Unit
from sweeps.progress import read_board, start_board
from sweeps.spec import Resources
from sweeps.store import TrialOutcome
from sweeps.task import Train, run_unit

MAX_RETRIES = 3
"""Times Ray reruns a task whose worker process died (never for a Python exception)."""

_remote_unit = ray.remote(run_unit)


class Finished(NamedTuple):
    """The outcomes recorded, in the order they came back, and whether Ctrl-C ended the run."""

    outcomes: list[TrialOutcome]
    interrupted: bool


def run_units(
    units: Sequence[Unit],
    resources: Resources,
    *,
    record: Callable[[TrialOutcome], None],
    display: Display,
    max_in_flight: int,
    slots: int,
    train: Train,
) -> Finished:
    """Submit `units` with at most `max_in_flight` in flight; `record` each trial as it comes
    back, then show it. Ctrl-C cancels what still runs.

    `slots` is how many tasks the cluster runs at once (the rest of those in flight queue);
    `train` is what each task calls to train. On Ctrl-C every trial already trained is still
    recorded: those of the unit being written, and of tasks that finished meanwhile.
    """
    options = {
        "num_cpus": resources.cpus_per_trial,
        "num_gpus": resources.gpus_per_trial,
        "max_retries": MAX_RETRIES,
        "retry_exceptions": False,
    }
    queue: deque[Unit] = deque(units)
    pending: dict[Any, Unit] = {}  # in submission order: the first `slots` are running
    board = start_board() if display.shows_steps else None
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
            if trial_id not in recorded:  # each trial is written and shown once
                record(outcome)  # interrupted inside? then written again: harmless
                recorded[trial_id] = outcome
                display.finished(outcome)
            received.popleft()

    try:
        with _ctrl_c_as_a_request() as stop_requested:
            while queue or pending:
                if stop_requested():
                    raise KeyboardInterrupt
                while queue and len(pending) < max_in_flight:
                    unit = queue.popleft()
                    task = _remote_unit.options(name=_task_name(unit), **options)
                    pending[task.remote(unit, resources.cpus_per_trial, board, train)] = unit
                # Tasks beyond the cluster's slots wait in Ray's queue: not running yet.
                running = sum(len(unit) for unit in list(pending.values())[:slots])
                steps = read_board(board) if board is not None else {}
                done_steps = sum(steps.get(unit[0].trial_id, 0) for unit in pending.values())
                display.update(running=running, steps=done_steps)
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
        return Finished(list(recorded.values()), interrupted=True)
    finally:
        if board is not None:
            with contextlib.suppress(Exception):
                ray.kill(board)
    return Finished(list(recorded.values()), interrupted=False)


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
    """The outcomes of a finished task; each trial failed if the task itself failed."""
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
