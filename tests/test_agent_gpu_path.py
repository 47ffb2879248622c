"""The GPU's code path, run on the CPU: it trains as the CPU's path does, and never waits for the
host within a step.

On a GPU, acting, stepping CartPole and evaluating run in torch on the device; on a CPU they are
handed to numpy (see `dqn_agent.placement`). Setting `placement.NUMPY_ON_CPU` to False sends CPU
tensors down the GPU's branches, so that machines without a GPU test them too. What only a GPU
can show (speed, CUDA's own synchronisation) is measured where one is lent (issue 5's note).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
import torch
from torch.overrides import TorchFunctionMode

from dqn_agent import EvalSettings, TrialResult, placement, train_group
from dqn_agent.training import WINDOW
from tests.test_agent_train import _spec

HOST_READS = frozenset(
    {"item", "tolist", "numpy", "cpu", "to", "__bool__", "__int__", "__float__", "__index__"}
    | {"__array__", "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}
)
"""Tensor methods and functions that, on a GPU, copy data to the host or must learn a size from
the data first, and so wait for the device to finish its queued work. ('to' and 'cpu' count
even when they only move host data to the device: such a copy from ordinary host memory waits
too.) Indexing with a boolean mask is counted as well (see `_HostReads`). Not counted: `copy_`
from host memory into the device's, which on the CPU cannot be told from a copy within the
device; `TorchCartPole` makes one per 256 steps, its next block of start states."""


class _HostReads(TorchFunctionMode):
    """Counts, by name, the calls in `HOST_READS` made while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.calls[name] += 1
        elif name in ("__getitem__", "__setitem__") and _has_mask(args[1]):
            self.calls[f"{name} with a mask"] += 1
        return func(*args, **(kwargs or {}))


def _has_mask(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def gpu_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(placement, "NUMPY_ON_CPU", False)
    yield


def _host_reads(steps: int) -> collections.Counter[str]:
    """Host reads of training a group of two for `steps` env steps, evaluated only at the start
    and the end."""
    specs = [
        dataclasses.replace(_spec(seed, steps), eval=EvalSettings(every_steps=steps, episodes=2))
        for seed in (0, 1)
    ]
    reads = _HostReads()
    with reads:
        train_group(specs)
    return reads.calls


def _per_window(extra: collections.Counter[str], windows: int) -> dict[str, float]:
    return {name: count / windows for name, count in extra.items()}


def test_the_gpu_path_reads_nothing_from_the_device_per_step(gpu_path: None) -> None:
    """Four more windows of env steps add only the reads made once per window (the episode log's
    rewards and episode ends), never one per step."""
    extra = _host_reads(6 * WINDOW) - _host_reads(2 * WINDOW)
    per_window = _per_window(extra, 4)
    assert sum(per_window.values()) <= 8, per_window  # one read a step: 256; measured: 4


def test_the_host_read_count_sees_a_read_per_step_where_there_is_one() -> None:
    """The counter above can fail: on the CPU's own path, numpy reads the tensors every step."""
    extra = _host_reads(6 * WINDOW) - _host_reads(2 * WINDOW)
    assert extra["numpy"] >= 4 * WINDOW


def _tables(result: TrialResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    return result.episodes.drop(columns="wall_s"), result.evals.drop(columns="wall_s")


def test_the_gpu_path_trains_as_the_cpu_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seeds, same episodes and evaluations, by torch (as on a GPU) and by numpy, with the
    dueling network and Double DQN so that every branch of acting is taken.

    Torch's sines may differ from numpy's in float64's last bit (tests/test_agent_vector_env.py),
    a difference that long balanced episodes would grow; in these 1,500 steps episodes are short,
    and loss and Q-values are compared to float32's precision."""
    specs = [_spec(seed, 1_500, dueling=True, double=True) for seed in (5, 6)]
    by_numpy = train_group(specs)
    monkeypatch.setattr(placement, "NUMPY_ON_CPU", False)
    by_torch = train_group(specs)
    for numpy_result, torch_result in zip(by_numpy, by_torch, strict=True):
        for ours, theirs in zip(_tables(numpy_result), _tables(torch_result), strict=True):
            pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-5)
    returns = [r.episodes["episode_return"].tolist() for r in by_torch]
    assert returns[0] != returns[1]  # two different agents were compared, not one twice
