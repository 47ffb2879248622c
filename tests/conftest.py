"""Shared by the tests: a tiny spec, one local Ray per module, and the strict mode of CI."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn

import pytest
import yaml

STRICT_ENV = "CI"
"""Set to ``true`` (as `.ci/run` does), a test that cannot run here fails instead of skipping."""


def strict() -> bool:
    """Whether this run is strict: ``CI`` is ``true`` or ``1`` (any case)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("true", "1")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test that this machine cannot run (no Docker engine, no sshd, a port taken...).

    Under ``CI=true`` it fails with the reason instead: CI is where these tests must run, and a
    CI machine that lost Docker would otherwise stay green while dropping them silently.
    """
    if strict():
        pytest.fail(f"{reason} (CI=true: a test that cannot run fails here)", pytrace=False)
    pytest.skip(reason)


TINY_SPEC = """\
name: tiny
env: CartPole-v1
seeds: 2
budget: {env_steps: 300}
eval: {every_steps: 150, episodes: 2}
agent:
  lr: 0.001
  batch_size: 16
  buffer_size: 300
  learning_starts: 50
  train_every: 4
  gradient_steps: 1
grid:
  hidden_sizes: [[16], [8]]
"""
"""Two configurations x two seeds of 300 env steps: a sweep in a second or two."""


def write_spec(where: Path, text: str = TINY_SPEC) -> Path:
    """Write `text` as `where/spec.yaml` and return its path."""
    path = where / "spec.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local Ray for a module; the runner uses it instead of starting its own."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def session_pids(session: int) -> list[int]:
    """Live processes of a session (started with start_new_session=True), read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def in_mount_namespace(shell: str, *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the shell command `shell` in a mount namespace of its own, whose mounts end with it
    (`unshare -m`); skip the calling test where this machine cannot make one or mount."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) to make a mount namespace with")
    probe = subprocess.run(
        [unshare, "-m", "true"], capture_output=True, text=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    done = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        check=False,
    )
    if "mount:" in done.stderr:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    return done


def spec_with(text: str, changes: Mapping[str, object], *, width: int | None = None) -> str:
    """The spec `text` with top-level keys replaced (None removes a key), as YAML again."""
    data = yaml.safe_load(text)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False, width=width)


def run_analysis_cli(argv: list[str]) -> int:
    """`dqn-sweep plot` or `summary` with `argv`, in this process; its exit code."""
    import argparse

    from analysis.cli import add_plot_parser, add_summary_parser

    parser = argparse.ArgumentParser(prog="dqn-sweep")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_plot_parser(subparsers)
    add_summary_parser(subparsers)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
