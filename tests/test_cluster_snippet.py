"""The README's cluster snippet, run as written on this machine: a head, a second node, a job.

The commands are read from README.md between its `cluster-snippet` markers and run by bash in a
folder laid out like the repository root (the venv, docker/make-token.sh, sweeps/specs/), with a
home of the test's own: once clean, once after a local run made `~/.ray/auth_token` (which makes
Ray 2.60 turn token authentication on for `ray start --head` by itself). Both must pass; and a
node or a job without the cluster's token must be refused. The snippet's processes run in a
session of their own, which the test ends (never `ray stop`, which would end every Ray here).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_SPEC, session_pids, skip_or_fail

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- cluster-snippet:start -->", "<!-- cluster-snippet:end -->"
BIN = Path(sys.executable).parent
RAY_PORTS = (6379, 8265, 52365)
"""Ray's default ports the snippet's head takes: the GCS and dashboard (named in the snippet)
and the dashboard agent's, without which the head takes no jobs ("No available agent")."""
SMOKE_TRIALS = 4
REFUSED = "Authentication token is missing or incorrect"


def readme_snippet() -> str:
    """The shell commands of README.md's cluster snippet (its one fenced block)."""
    text = README.read_text()
    assert text.count(START) == 1 and text.count(END) == 1, "one cluster snippet, marked"
    between = text.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", between, flags=re.DOTALL)
    assert len(blocks) == 1, "the markers hold one ```sh block"
    return str(blocks[0])


def test_the_snippet_gives_every_node_and_the_job_the_same_token() -> None:
    """What the run below depends on is in the commands themselves, not only in prose."""
    snippet = readme_snippet()
    export = snippet.index("export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=")
    commands = ("ray start --head", "ray start --address", "ray job submit")
    assert all(export < snippet.index(command) for command in commands)
    assert "docker/make-token.sh" in snippet


def _port_taken(port: int) -> bool:
    """Whether something holds the port on any address (Ray binds some to the node's IP)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
        return False


@dataclass
class Checkout:
    """A folder laid out like the repository root, a home, and the sessions started from it."""

    root: Path
    home: Path
    env: dict[str, str]
    sessions: list[int]

    def run(self, command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
        """Run in a session of its own (recorded, to be ended); exit code and output."""
        proc = subprocess.Popen(
            command,
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    if not Path("/proc").is_dir():
        skip_or_fail("ends the snippet's processes via /proc")
    taken = [port for port in RAY_PORTS if _port_taken(port)]
    if taken:
        skip_or_fail(f"the snippet uses Ray's default ports; {taken} in use here (another Ray?)")
    root, home = tmp_path / "repo", tmp_path / "home"
    (root / "docker").mkdir(parents=True)
    home.mkdir()
    (root / ".venv").symlink_to(BIN.parent)
    shutil.copy2(REPO / "docker" / "make-token.sh", root / "docker")
    shutil.copytree(REPO / "sweeps" / "specs", root / "sweeps" / "specs")
    # A user's shell: no venv active, no Ray settings; Ray's usage stats off, as everywhere here.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "VIRTUAL_ENV")) and k != "PYTHONPATH"
    }
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != str(BIN)
    )
    checkout = Checkout(root, home, env, [])
    try:
        yield checkout
    finally:
        for session in checkout.sessions:
            for pid in session_pids(session):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Until they are gone, and their ports free for whatever runs next.
        deadline = time.monotonic() + 30
        while any(map(session_pids, checkout.sessions)) and time.monotonic() < deadline:
            time.sleep(0.2)


def _local_run(checkout: Checkout) -> None:
    """A sweep on a local Ray, as `make demo` runs one: it leaves ~/.ray/auth_token behind."""
    spec = checkout.root / "local.yaml"
    spec.write_text(TINY_SPEC)
    out = checkout.root / "local-results"
    code, log = checkout.run(
        [str(BIN / "dqn-sweep"), "run", str(spec), "--out", str(out), "--quiet"],
        checkout.env,
        300,
    )
    assert code == 0, log[-3000:]
    assert (checkout.home / ".ray" / "auth_token").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("home", ["after a local run", "clean"])
def test_the_readme_cluster_snippet_runs_verbatim(checkout: Checkout, home: str) -> None:
    if home == "after a local run":
        _local_run(checkout)
    code, log = checkout.run(["bash", "-e", "-c", readme_snippet()], checkout.env, 600)
    assert code == 0, log[-4000:]
    results = checkout.root / "results" / "smoke"
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == SMOKE_TRIALS
    assert (trials["status"] == "complete").all(), trials["error"].tolist()
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["runs"][-1]["ray"]["nodes"] == 2  # the second node joined

    # Without the token the cluster lets in neither a node nor a job (only the first case:
    # the same refusal either way, and each costs a node start).
    if home != "after a local run":
        return
    venv = {**checkout.env, "PATH": f"{BIN}{os.pathsep}{checkout.env['PATH']}"}
    code, log = checkout.run([str(BIN / "ray"), "start", "--address", "127.0.0.1:6379"], venv, 180)
    assert code != 0
    assert REFUSED in log
    code, log = checkout.run(
        [str(BIN / "ray"), "job", "submit", "--address", "http://127.0.0.1:8265",
         "--no-wait", "--", "echo", "refused"],
        venv,
        120,
    )  # fmt: skip
    assert code != 0
    assert "Authentication required" in log
