"""How a run shows itself: a live progress bar on a terminal, a line per finished trial in logs
and pipes, and a summary at the end that says how to resume or retry.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sweeps.plan import Unit, describe_tasks, duration, estimate_units
from sweeps.spec import SweepSpec
from sweeps.store import TrialOutcome, describe_os_error


def describe_plan(spec: SweepSpec, units: Sequence[Unit], *, slots: int, cpus: float) -> str:
    """The tasks of the run, `slots` at a time on a cluster of `cpus` CPUs, and the planner's
    estimate of their training time where it has one."""
    line = f"{describe_tasks([len(unit) for unit in units])}, {slots} at a time"
    guess = estimate_units(spec, units, cpus=cpus, slots=slots) if cpus > 0 else None
    if guess is None:
        return line
    return f"{line}; estimated training time {duration(guess.wall_s)} (the planner's model)"


class Display(Protocol):
    """Shows a run's progress: a live display on a terminal, else a line per finished trial."""

    shows_steps: bool
    """Whether `update` wants the env steps of running tasks (they cost a Ray actor)."""

    def update(self, *, running: int, steps: int = 0) -> None:
        """`running` trials in tasks now; `steps` agent-env steps those tasks have done."""
        ...

    def finished(self, outcome: TrialOutcome) -> None: ...

    def close(self) -> None: ...


def make_display(total: int, total_steps: int | None, *, quiet: bool, stream: TextIO) -> Display:
    """A live display on a terminal, else a line per finished trial (none at all when quiet).
    `total` trials are to train, of `total_steps` agent-env steps (None: budgets in episodes)."""
    if not quiet and stream.isatty():
        return LiveDisplay(total, total_steps, stream)
    return LineDisplay(total, stream, quiet=quiet)


def describe_outcome(outcome: TrialOutcome) -> str:
    """One line about a finished trial: id, environment, configuration, seed, final
    evaluation, wall time."""
    spec = outcome.spec
    head = f"{spec.trial_id}  {spec.env_id}  {spec.label}  seed={spec.seed}"
    retried = f"  attempts={outcome.attempts}" if outcome.attempts > 1 else ""
    if outcome.status == "failed":
        first_line = (outcome.error.splitlines() or ["(no error message)"])[0]
        return f"FAILED    {head}{retried}  {first_line}"
    return (
        f"complete  {head}  final_eval={outcome.final_eval_return:.2f}  "
        f"wall={outcome.wall_s:.1f}s{retried}"
    )


class LineDisplay:
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


class LiveDisplay:
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


def print_summary(
    stream: TextIO,
    *,
    outcomes: Sequence[TrialOutcome],
    wall_s: float,
    folder: Path,
    interrupted: bool,
    command: Sequence[str],
    write_error: OSError | None = None,
) -> None:
    """What the run trained, which trials failed and where their errors are, and the command
    that resumes or retries it."""
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    print(
        f"trained {len(outcomes)} trial(s) in {wall_s:.1f} s: {len(outcomes) - len(failed)} "
        f"complete, {len(failed)} failed; results in {folder}",
        file=stream,
    )
    # Resuming must not start over: drop --fresh from the command to repeat.
    again = shlex.join([arg for arg in command if arg != "--fresh"]) or "dqn-sweep run ..."
    if failed:
        print(f"{len(failed)} trial(s) failed:", file=stream)
        for outcome in failed:
            print(f"  {describe_outcome(outcome)}", file=stream)
        print(
            f"their errors and tracebacks are in {folder / 'trials.parquet'} (column "
            f"'error'); to retry them, run again: {again}",
            file=stream,
        )
    if interrupted:
        print(
            f"interrupted: running tasks were cancelled; finished trials are kept in "
            f"{folder}. To resume, run again: {again}",
            file=stream,
        )
    if write_error is not None:
        print(
            f"cannot write {describe_os_error(write_error)}. The run stopped and "
            f"running tasks were cancelled; the {len(outcomes)} trial(s) written before are "
            f"kept in {folder}. Free some space (or make the folder writable), then run again: "
            f"{again}",
            file=stream,
        )
    stream.flush()
