"""The body of a sweep's Ray task: train one unit of work in a worker and hand back plain data.

`run_unit` gets everything it needs in its arguments (frozen TrialSpecs) and returns outcomes
(tables, figures, weights); only the driver writes files, so a task that Ray retries can never
leave a second copy of a trial's rows. An ordinary Python error in training becomes a failed
outcome carrying its traceback; a worker that dies is the scheduler's to retry
(`sweeps.scheduler`).
"""

from __future__ import annotations

import math
import socket
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ray
import torch

from dqn_agent import Progress, TrialResult, TrialSpec, train_group
from sweeps.progress import report_to
from sweeps.store import TrialOutcome


class Train(Protocol):
    """Trains seeds of one configuration together, as `dqn_agent.train_group` does.

    A task calls the real one; tests give a wrapper that fails or kills chosen trials. Ray
    sends it to the workers by reference: a module-level function (or a functools.partial of
    one) in a module the workers can import.
    """

    def __call__(
        self, specs: Sequence[TrialSpec], *, progress: Callable[[Progress], None] | None = None
    ) -> list[TrialResult]: ...


def run_unit(
    unit: Sequence[TrialSpec], cpus: float, board: Any = None, train: Train = train_group
) -> list[TrialOutcome]:
    """Train one unit of work (seeds of one configuration); one outcome per trial, in order.

    `cpus` is what the task reserved (the torch threads it may use); `board`, if given, hears of
    the unit's env steps as training goes (`sweeps.progress`); `train` does the training.
    """
    # Threads beyond the cores reserved for the task would compete with the other tasks.
    torch.set_num_threads(max(1, math.floor(cpus)))
    host, node_id, attempts = socket.gethostname(), _node_id(), _attempt_number() + 1
    try:
        results = train(list(unit), progress=_steps_to(board, unit))
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
            result=result,
            group_size=len(unit),
            host=host,
            node_id=node_id,
            attempts=attempts,
        )
        for result in results
    ]


def _steps_to(board: Any, unit: Sequence[TrialSpec]) -> Callable[[Progress], None] | None:
    """A progress callback that posts the unit's agent-env steps to `board` (None: no board)."""
    if board is None:
        return None
    task, n_agents = unit[0].trial_id, len(unit)
    return lambda progress: report_to(board, task, progress.env_step * n_agents)


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
