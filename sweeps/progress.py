"""Env steps done by the tasks still running, for the live progress display.

A task trains all its seeds for the whole budget before it returns anything, so a display that
counted finished trials alone would stand still for most of a sweep. Instead each task reports
its env steps, about every 1,000, to a small Ray actor, the board, and the driver reads the
board twice a second. Only a run shown on a terminal makes a board: logs and pipes get a line
per finished trial, and their runs pay for no actor.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ray


class _Board:
    """Agent-env steps done so far by each task, keyed by the task's first trial id."""

    def __init__(self) -> None:
        self._steps: dict[str, int] = {}

    def report(self, task: str, agent_steps: int) -> None:
        self._steps[task] = agent_steps

    def steps(self) -> dict[str, int]:
        return dict(self._steps)


def start_board() -> Any:
    """A board actor (its handle): no CPU reserved, so it never takes a task's slot."""
    return ray.remote(num_cpus=0)(_Board).remote()


def read_board(board: Any) -> dict[str, int]:
    """The board's counts; empty if it cannot be read now (the display just waits)."""
    try:
        steps: dict[str, int] = ray.get(board.steps.remote(), timeout=2.0)
    except Exception:
        return {}
    return steps


def report_to(board: Any, task: str, agent_steps: int) -> None:
    """Post a task's count without waiting; a lost report only delays the display."""
    with contextlib.suppress(Exception):
        board.report.remote(task, agent_steps)
