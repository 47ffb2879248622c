"""The container path end to end, with a real Docker engine (docker/e2e.sh does the steps).

Engine (installed and started where none runs and this machine allows it), registry-free base
image, project image, a compose cluster of a Ray head and two workers, the smoke sweep submitted
to the head as a Ray job: its trials must run on the worker containers and its Parquet files and
plots must land on the host. The cluster must refuse jobs without its token; the image must run
as non-root, hold no CUDA libraries and no secrets, and run a sweep on a read-only root
filesystem. Everything this module starts is torn down at the end. Where no engine can be had,
every test here is skipped with the reason (under CI=true, fails with it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import skip_or_fail

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "docker" / "e2e.sh"
SKIP_EXIT = 77
"""e2e.sh exits with this when no Docker engine can be had here (as automake's tests do)."""
STEP_TIMEOUT_S = 1200
SMOKE_TRIALS = 4  # sweeps/specs/smoke.yaml: 2 network sizes x 2 seeds
CPU_IMAGE_MAX_BYTES = 2_500_000_000  # 1.7 GB measured; a CUDA torch alone adds several GB


@dataclass(frozen=True)
class DockerSetup:
    """Where this session's containers keep their state, and who they run as."""

    env: dict[str, str]
    state: Path
    results: Path
    token_file: Path
    project: str
    dashboard_port: int
    image: str
    uid: int
    gid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_steps(setup: DockerSetup, *steps: str) -> str:
    """Run e2e.sh steps; skip on 'no engine here' (fail under CI=true: `skip_or_fail`), fail
    with the log tail on any other error."""
    proc = subprocess.run(
        [str(E2E), *steps],
        env=setup.env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    if proc.returncode == SKIP_EXIT:
        reason = (setup.state / "skip-reason").read_text().strip()
        skip_or_fail(f"no Docker engine: {reason}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        pytest.fail(f"docker/e2e.sh {' '.join(steps)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stderr


def docker(*args: str) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc.stdout


def writable_results(setup: DockerSetup, path: Path) -> Path:
    """A host folder the containers' (non-root) user may write to."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, setup.uid, setup.gid)
    return path


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerSetup]:
    """A running Docker engine; stopped again at the end if this session started it."""
    root = tmp_path_factory.mktemp("docker")
    uid, gid = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    setup = DockerSetup(
        env={},
        state=root / "state",
        results=root / "results",
        token_file=root / "secrets" / "ray_token",
        project=f"dqn-sweeps-test-{os.getpid()}",
        dashboard_port=_free_port(),
        image=os.environ.get("DQN_IMAGE", "dqn-sweeps:cpu"),
        uid=uid,
        gid=gid,
    )
    setup.env.update(
        os.environ,
        DQN_E2E_STATE=str(setup.state),
        DQN_RESULTS=str(setup.results),
        DQN_TOKEN_FILE=str(setup.token_file),
        DQN_COMPOSE_PROJECT=setup.project,
        DQN_DASHBOARD_PORT=str(setup.dashboard_port),
        DQN_IMAGE=setup.image,
        DQN_UID=str(uid),
        DQN_GID=str(gid),
        DQN_WORKERS="2",
        RAY_USAGE_STATS_ENABLED="0",
    )
    run_steps(setup, "engine")
    yield setup
    run_steps(setup, "engine-stop")


@pytest.fixture(scope="session")
def image(engine: DockerSetup) -> str:
    """The project's CPU image, on the base image built without a registry."""
    run_steps(engine, "base", "image")
    return engine.image


@pytest.fixture(scope="module")
def cluster(engine: DockerSetup, image: str) -> Iterator[DockerSetup]:
    """A Ray head and two workers in compose, with token auth; removed at the end."""
    try:
        run_steps(engine, "up")
        yield engine
    finally:
        run_steps(engine, "down")


@pytest.fixture(scope="module")
def smoke_results(cluster: DockerSetup) -> Path:
    """The smoke sweep, submitted to the head as a Ray job; its folder on the host."""
    run_steps(cluster, "sweep")
    return cluster.results / "smoke"


def compose_containers(setup: DockerSetup, service: str) -> list[str]:
    out = docker(
        "ps",
        "--filter",
        f"label=com.docker.compose.project={setup.project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
        "--format",
        "{{.ID}}",
    )
    return out.split()


# ---- the image -------------------------------------------------------------------------------


def test_image_runs_as_a_non_root_user(image: str) -> None:
    uid = docker("run", "--rm", image, "id", "-u").strip()
    assert uid.isdigit() and int(uid) != 0


def test_cpu_image_is_small_without_cuda_or_secrets(image: str) -> None:
    probe = (
        "import importlib.metadata as m, torch; "
        "print(torch.version.cuda, "
        "[d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower()"
        ".startswith('nvidia')])"
    )
    assert docker("run", "--rm", image, "python", "-c", probe).strip() == "None []"
    # No token, and none of the build-time inputs (local wheels, the project's wheel).
    found = docker(
        "run", "--rm", image, "bash", "-c",
        "find / -xdev \\( -name ray_token -o -name auth_token -o -name 'torch-*.whl'"
        " -o -name 'dqn_sweeps-*.whl' -o -path /tmp/wheels -o -path /tmp/dist \\) 2>/dev/null"
        " || true",
    )  # fmt: skip
    assert found.strip() == "", f"the image holds build inputs or tokens: {found}"
    size = int(docker("image", "inspect", image, "--format", "{{.Size}}"))
    assert size < CPU_IMAGE_MAX_BYTES, f"CPU image is {size / 1e9:.2f} GB"


def test_read_only_container_completes_the_smoke_sweep(
    engine: DockerSetup, image: str, tmp_path: Path
) -> None:
    results = writable_results(engine, tmp_path / "results")
    docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--shm-size", "1g",
        "--user", f"{engine.uid}:{engine.gid}",
        "-v", f"{results}:/work/results",
        image, "dqn-sweep", "run", "/app/specs/smoke.yaml", "--quiet",
    )  # fmt: skip
    trials = pd.read_parquet(results / "smoke" / "trials.parquet")
    assert len(trials) == SMOKE_TRIALS
    assert (trials["status"] == "complete").all(), trials["error"].tolist()


# ---- the compose cluster ---------------------------------------------------------------------


def test_smoke_sweep_ran_on_the_worker_containers(
    cluster: DockerSetup, smoke_results: Path
) -> None:
    trials = pd.read_parquet(smoke_results / "trials.parquet")
    assert len(trials) == SMOKE_TRIALS
    assert (trials["status"] == "complete").all(), trials["error"].tolist()
    # A container's hostname is its short id: every trial ran on a worker, and both took part.
    workers = set(compose_containers(cluster, "ray-worker"))
    assert len(workers) == 2
    hosts = set(trials["host"])
    assert hosts <= workers, f"trials ran on {hosts}, workers are {workers}"
    assert len(hosts) == 2
    assert trials["node_id"].nunique() == 2

    episodes = pd.read_parquet(smoke_results / "episodes")
    evals = pd.read_parquet(smoke_results / "evals")
    for table in (episodes, evals):
        assert {"trial_id", "config", "hidden_sizes", "seed", "env_id"} <= set(table.columns)
        assert set(table["trial_id"]) == set(trials["trial_id"])
    assert {"episode", "env_step", "episode_return"} <= set(episodes.columns)
    assert evals["eval_return_mean"].notna().all()


def test_smoke_sweep_left_plots_on_the_host(cluster: DockerSetup, smoke_results: Path) -> None:
    plots = smoke_results / "plots"
    png = plots / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Written by the containers as the host user (or uid 1000 for root), never as root.
    assert png.stat().st_uid == cluster.uid != 0


def test_dashboard_is_published_on_loopback_only(cluster: DockerSetup) -> None:
    out = docker(
        "ps", "--filter", f"label=com.docker.compose.project={cluster.project}",
        "--format", "{{.Label \"com.docker.compose.service\"}}\t{{.Ports}}",
    )  # fmt: skip
    ports = dict(line.split("\t") for line in out.strip().splitlines())
    assert ports.pop("ray-head") == f"127.0.0.1:{cluster.dashboard_port}->8265/tcp"
    assert set(ports.values()) == {""}, f"other published ports: {ports}"


def _submit_raw(port: int, token: str | None, entrypoint: str) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/jobs/",
        data=json.dumps({"entrypoint": entrypoint}).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_jobs_without_the_token_are_refused(cluster: DockerSetup, tmp_path: Path) -> None:
    marker = "echo not-authorised"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token of this machine's own Ray
    ray_cli = Path(sys.executable).with_name("ray")
    address = f"http://127.0.0.1:{cluster.dashboard_port}"
    proc = subprocess.run(
        [str(ray_cli), "job", "submit", "--address", address, "--no-wait", "--", marker],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "Authentication required" in proc.stdout + proc.stderr

    assert _submit_raw(cluster.dashboard_port, None, marker) == 401
    assert _submit_raw(cluster.dashboard_port, "0" * 64, marker) == 403

    # With the token the API answers, and no job of the refused requests exists.
    token = cluster.token_file.read_text().strip()
    request = urllib.request.Request(
        f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        jobs = json.load(response)
    assert all(job["entrypoint"] != marker for job in jobs)
