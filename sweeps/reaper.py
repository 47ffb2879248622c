"""Ends a local Ray's processes when the driver that started them dies without shutting them
down (SIGKILL, the out-of-memory killer, a lost terminal).

A run that starts its own Ray (`sweeps.session.ray_session`) starts this watcher beside it, in a
session of its own so that what kills the driver does not kill it:

    python -m sweeps.reaper DRIVER_PID

While the driver lives, the watcher notes every process descended from it (Ray's GCS server,
raylet, agents and workers), each with its start time. Once the driver is gone, it sends SIGTERM
to each noted process still alive with the same start time (so never to a process that reused
its number), then SIGKILL to those left after a grace period, and exits. A driver that shuts
Ray down itself also ends the watcher. Linux only: it reads /proc; elsewhere it exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

POLL_S = 1.0
"""Seconds between two looks at the driver's descendants."""
GRACE_S = 3.0
"""Seconds between SIGTERM and SIGKILL."""


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if fields[0] != "Z" else None  # a zombie is gone already


def descendants(root: int) -> dict[int, int]:
    """Every living process descended from `root`, with its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, int] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        started = start_time(pid)
        if started is not None and pid != os.getpid():
            found[pid] = started
            stack.extend(children.get(pid, []))
    return found


def watch(driver: int) -> None:
    """Note the driver's descendants until it dies, then end those still alive."""
    driver_started = start_time(driver)
    known: dict[int, int] = {}
    while driver_started is not None and start_time(driver) == driver_started:
        known.update(descendants(driver))
        time.sleep(POLL_S)
    alive = _signal(known, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid: t for pid, t in alive.items() if start_time(pid) == t}
    _signal(alive, signal.SIGKILL)


def _signal(processes: dict[int, int], signum: int) -> dict[int, int]:
    """Send `signum` to each process still alive with its noted start time; return those."""
    sent = {}
    for pid, started in processes.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
            sent[pid] = started
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m sweeps.reaper DRIVER_PID", file=sys.stderr)
        return 2
    if Path("/proc/self/stat").exists():
        watch(int(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
