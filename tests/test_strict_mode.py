"""Strict mode: under CI=true a test that cannot run here fails with its reason; else it skips.

Checked without Docker: the helper itself, a pytest run of a test that uses it (exit status and
report), and the container tests' step runner given a stand-in e2e.sh that finds no engine.
Checked with the real engine's binaries: a container test run under CI=true where the real
dockerd cannot start (a read-only data root) fails, naming why; without CI=true it skips.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import test_docker_e2e
from tests.conftest import in_mount_namespace, skip_or_fail, strict

REPO = Path(__file__).resolve().parents[1]
REASON = "no Docker engine: dockerd would not start here"


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_under_ci_a_test_that_cannot_run_fails_with_its_reason(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", value)
    assert strict()
    with pytest.raises(pytest.fail.Exception, match=REASON):
        skip_or_fail(REASON)


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_elsewhere_it_skips_with_its_reason(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not strict()
    with pytest.raises(pytest.skip.Exception, match=REASON):
        skip_or_fail(REASON)


def _pytest(test_file: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test_file)],
        cwd=test_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_pytest_run_fails_under_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    test_file = tmp_path / "test_needs_an_engine.py"
    test_file.write_text(
        "from tests.conftest import skip_or_fail\n\n\n"
        "def test_container() -> None:\n"
        f"    skip_or_fail({REASON!r})\n"
    )
    strict_run = _pytest(test_file, "true")
    assert strict_run.returncode == 1, strict_run.stdout
    assert "1 failed" in strict_run.stdout and REASON in strict_run.stdout
    lax = _pytest(test_file, None)
    assert lax.returncode == 0, lax.stdout
    assert "1 skipped" in lax.stdout and REASON in lax.stdout


def test_the_container_tests_fail_under_ci_when_e2e_sh_finds_no_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for docker/e2e.sh on a machine where no engine can be had: it leaves its
    # reason where the real one does and exits with the "cannot run here" status.
    fake = tmp_path / "e2e.sh"
    fake.write_text(
        f'#!/bin/sh\necho "dockerd would not start here" > "{tmp_path}/skip-reason"\n'
        f"exit {test_docker_e2e.SKIP_EXIT}\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(test_docker_e2e, "E2E", fake)
    setup = test_docker_e2e.DockerSetup(
        env=dict(os.environ),
        state=tmp_path,
        results=tmp_path / "results",
        token_file=tmp_path / "token",
        project="unused",
        dashboard_port=0,
        image="unused",
        uid=os.getuid(),
        gid=os.getgid(),
    )
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=REASON):
        test_docker_e2e.run_steps(setup, "engine")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=REASON):
        test_docker_e2e.run_steps(setup, "engine")


@pytest.mark.docker
def test_the_container_tests_fail_under_ci_where_dockerd_cannot_start() -> None:
    # No stand-in: the real docker/e2e.sh starts the real dockerd, which cannot start on a
    # read-only data root (in a mount namespace of this test's own, so only for this run). A
    # running engine's socket is hidden first, so that e2e.sh finds none.
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("needs dockerd and root: the stand-in test above covers this machine")
    shell = (
        "mkdir -p /var/lib/docker && mount -t tmpfs -o ro tmpfs /var/lib/docker && "
        "{ [ ! -S /var/run/docker.sock ] || mount --bind /dev/null /var/run/docker.sock; } && "
        f"cd {shlex.quote(str(REPO))} && "
        f"CI=@CI@ {shlex.quote(sys.executable)} -m pytest -q -rs -p no:cacheprovider "
        "tests/test_docker_e2e.py -k test_image_runs_as_a_non_root_user"
    )
    strict_run = in_mount_namespace(shell.replace("@CI@", "true"), timeout=600)
    assert strict_run.returncode == 1, strict_run.stdout + strict_run.stderr
    assert "1 error" in strict_run.stdout  # the engine fixture fails, so the test errors
    assert "dockerd would not start here" in strict_run.stdout
    assert "CI=true: a test that cannot run fails here" in strict_run.stdout
    lax = in_mount_namespace(shell.replace("@CI@", "false"), timeout=600)
    assert lax.returncode == 0, lax.stdout + lax.stderr
    assert "1 skipped" in lax.stdout and "dockerd would not start here" in lax.stdout
