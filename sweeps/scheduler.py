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
    """The outcomes recorded, in the order they came back, and whether a signal (Ctrl-C, or
    SIGTERM) ended the run."""

    outcomes: list[TrialOutcome]
    interrupted: bool
    signal_number: int = signal.SIGINT
    """The signal that ended the run, where one did."""
    write_error: OSError | None = None
    """Why the run stopped writing, where it could not write a trial (a full disk, a folder
    made read-only): it then stopped, and `outcomes` are those written before."""


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
        with _signals_as_a_request() as stop:
            while queue or pending:
                if stop.signal_number is not None:
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
    except OSError as exc:  # a trial could not be written: stop, keep what was written
        _cancel(list(pending))
        return Finished(list(recorded.values()), interrupted=False, write_error=exc)
    except KeyboardInterrupt:
        if pending:
            finished, still = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            _cancel(still)  # stop using the cluster first, then write what is finished
            receive(finished)
        try:
            record_received()
        except OSError as exc:
            return Finished(list(recorded.values()), interrupted=False, write_error=exc)
        signal_number = stop.signal_number if stop.signal_number is not None else signal.SIGINT
        return Finished(list(recorded.values()), interrupted=True, signal_number=signal_number)
    finally:
        if board is not None:
            with contextlib.suppress(Exception):
                ray.kill(board)
    return Finished(list(recorded.values()), interrupted=False)


def _cancel(refs: Sequence[Any]) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


class _StopRequest:
    """Which signal asked the driver loop to stop, if one has."""

    def __init__(self) -> None:
        self.signal_number: int | None = None


@contextlib.contextmanager
def _signals_as_a_request() -> Iterator[_StopRequest]:
    """While the driver loop runs, a first Ctrl-C (SIGINT) or SIGTERM only asks it to stop; it
    does so at the top of its next pass, after writing what it had received. A second signal
    interrupts at once.

    A KeyboardInterrupt raised wherever the signal happens to land can land inside Ray's own
    calls (measured: one run in three of the Ctrl-C test went on as if nothing had happened),
    and in the middle of writing a trial. SIGTERM (what `kill`, systemd and schedulers send)
    would otherwise end the process on the spot, leaving a local Ray's processes behind. Only
    the main thread may set a signal handler; elsewhere the signals keep their default
    behaviour.
    """
    stop = _StopRequest()

    def request(signum: int, frame: object) -> None:
        if stop.signal_number is not None:
            raise KeyboardInterrupt
        stop.signal_number = signum

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
