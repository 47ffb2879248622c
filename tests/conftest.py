"""Fixtures shared by the sweep runner's tests: a tiny spec and one local Ray per module."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
