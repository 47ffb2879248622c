"""A real two-node Ray cluster on this machine: a sweep submitted as a Ray job, and again.

The nodes are started with `ray start` from the venv (job drivers and workers use the Python on
the node's PATH), each in a session of its own; teardown ends exactly those sessions' processes,
never another Ray on the machine (as `ray stop` would).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_SPEC, session_pids, skip_or_fail

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent

SPEC = TINY_SPEC.replace("name: tiny", "name: cluster")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass(frozen=True)
class Cluster:
    dashboard: str
    env: dict[str, str]
    root: Path


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head node and a worker node, 1 CPU each, with token authentication on loopback."""
    if not Path("/proc").is_dir():
        skip_or_fail("ends the cluster's processes via /proc")
    root = Path(tempfile.mkdtemp(prefix="dqn-ray-", dir="/tmp"))  # short: Ray's socket paths
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_USAGE_STATS_ENABLED": "0",
        # A token of its own, so the test neither depends on nor touches ~/.ray/auth_token.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard, *agent_ports = _free_ports(8)
    head = [
        "--head",
        f"--port={gcs}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
    ]
    worker = [f"--address=127.0.0.1:{gcs}"]
    sessions = []
    try:
        for i, node in enumerate((head, worker)):
            a, m, r = agent_ports[3 * i : 3 * i + 3]
            command = [
                str(BIN / "ray"),
                "start",
                *node,
                "--num-cpus=1",
                f"--temp-dir={root / f'node{i}'}",
                f"--dashboard-agent-listen-port={a}",
                f"--metrics-export-port={m}",
                f"--runtime-env-agent-port={r}",
                "--disable-usage-stats",
            ]
            # A session per node: its daemons stay in it, which is how teardown finds them.
            start = subprocess.Popen(
                command,
                env=env,
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            sessions.append(start.pid)
            out, _ = start.communicate(timeout=180)
            assert start.returncode == 0, out.decode(errors="replace")[-3000:]
        yield Cluster(f"http://127.0.0.1:{dashboard}", env, root)
    finally:
        for session in sessions:
            for pid in session_pids(session):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _submit(cluster: Cluster, job_dir: Path, out: Path) -> str:
    command = [
        str(BIN / "ray"),
        "job",
        "submit",
        f"--address={cluster.dashboard}",
        f"--working-dir={job_dir}",
        "--",
        *["dqn-sweep", "run", "spec.yaml", "--out", str(out), "--address", "auto"],
    ]
    done = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_sweep_submitted_as_a_job_runs_on_both_nodes(cluster: Cluster) -> None:
    # The working dir holds just the spec: the driver's dqn-sweep comes from the node's PATH.
    job_dir, out = cluster.root / "job", cluster.root / "results"
    job_dir.mkdir()
    (job_dir / "spec.yaml").write_text(SPEC)

    log = _submit(cluster, job_dir, out)
    assert "4 trials, 0 already complete, 4 to train" in log
    folder = out / "cluster"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"complete"}
    episodes = pd.read_parquet(folder / "episodes")
    assert set(episodes["trial_id"]) == set(trials["trial_id"])
    for _, rows in episodes.groupby("trial_id"):
        assert sorted(rows["episode"]) == list(range(len(rows)))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["runs"][0]["ray"]["nodes"] == 2

    # The same job again: the same ids, so nothing to train and nothing rewritten.
    index = (folder / "trials.parquet").read_bytes()
    log = _submit(cluster, job_dir, out)
    assert "4 trials, 4 already complete, 0 to train" in log
    assert (folder / "trials.parquet").read_bytes() == index
