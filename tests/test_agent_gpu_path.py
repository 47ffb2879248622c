"""The GPU's code path, run on the CPU: it is the path taken, it trains as the CPU's path does,
and no step of it waits for the device.

On a GPU, acting, stepping CartPole and evaluating run in torch on the device; on a CPU they are
handed to numpy (see `dqn_agent.placement`). Setting `placement.NUMPY_ON_CPU` to False sends CPU
tensors down the GPU's branches, so that machines without a GPU test them too. What the CPU
cannot show (a tensor left on the wrong device, CUDA's own synchronisation, speed) is left to
the last test, which runs only where there is a GPU.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
import torch
from torch.overrides import TorchFunctionMode

from dqn_agent import (
    EvalSettings,
    TrialResult,
    TrialSpec,
    networks,
    placement,
    train_group,
    vector_env,
)
from dqn_agent.training import WINDOW
from tests.test_agent_train import _spec

WAITS = frozenset(
    {"item", "tolist", "numpy", "cpu", "to", "__bool__", "__int__", "__float__", "__index__"}
    | {"__array__", "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}
    | {"equal", "allclose", "is_nonzero", "repeat_interleave", "bincount"}
)
"""Tensor methods and torch functions that, on a GPU, wait for the device to finish its queued
work: they copy data to the host, or must learn a size or an answer from the data first. 'to'
and 'cpu' count even when they move host data to the device: a copy from ordinary host memory
waits too. `_Waits` also counts `torch.tensor` and `torch.as_tensor` given a device, `where`
with one argument, and indexing with a boolean mask. Not counted: `copy_` from host memory into
the device's, which on the CPU cannot be told from a copy within the device; `TorchCartPole`
makes one per 256 steps, its next block of start states."""


class _Waits(TorchFunctionMode):
    """Counts, by name, the calls that would wait for a GPU, made while the mode is active."""

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
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (
            name in WAITS
            or (name in ("tensor", "as_tensor") and "device" in kwargs)
            or (name == "where" and len(args) + len(kwargs) == 1)
        ):
            self.calls[name] += 1
        elif name in ("__getitem__", "__setitem__") and _has_mask(args[1]):
            self.calls[f"{name} with a mask"] += 1
        return func(*args, **kwargs)


def _has_mask(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def gpu_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The GPU's branches on the CPU, with numpy's network and numpy's CartPole made to fail, so
    that a test using this fixture shows those branches were the ones taken."""
    monkeypatch.setattr(placement, "NUMPY_ON_CPU", False)

    def no_host_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the GPU's path evaluated the network with numpy (HostQNetwork)")

    monkeypatch.setattr(networks.HostQNetwork, "__init__", no_host_network)
    dynamics = vector_env.cartpole_dynamics

    def torch_only(state: Any, actions: Any) -> Any:
        assert isinstance(state, torch.Tensor), "the GPU's path stepped CartPole with numpy"
        return dynamics(state, actions)

    monkeypatch.setattr(vector_env, "cartpole_dynamics", torch_only)
    yield


def _specs(steps: int, device: str = "cpu") -> list[TrialSpec]:
    """A group of two, evaluated only at the start and the end."""
    return [
        dataclasses.replace(
            _spec(seed, steps), eval=EvalSettings(every_steps=steps, episodes=2), device=device
        )
        for seed in (0, 1)
    ]


def _waits(steps: int) -> collections.Counter[str]:
    """The calls that would wait for a GPU in training `_specs(steps)`."""
    waits = _Waits()
    with waits:
        train_group(_specs(steps))
    return waits.calls


def _extra_per_window(longer: collections.Counter[str], shorter: collections.Counter[str]) -> float:
    """Calls the longer run made beyond the shorter, per window of its extra 4 * WINDOW steps."""
    return sum(longer[name] - shorter[name] for name in longer) / 4


def test_no_step_of_the_gpu_path_waits_for_the_device(gpu_path: None) -> None:
    """Four more windows of env steps add only the calls made once per window (reading the
    episode log's rewards and episode ends back), never one per step."""
    longer, shorter = _waits(6 * WINDOW), _waits(2 * WINDOW)
    extra = _extra_per_window(longer, shorter)
    assert extra <= 8, longer  # one a step would be 256; measured: 4 ('cpu' and 'numpy', twice)


def test_the_count_of_waits_sees_one_per_step_where_there_is_one() -> None:
    """The count above can fail: on the CPU's own path, numpy reads the tensors every step."""
    assert _extra_per_window(_waits(6 * WINDOW), _waits(2 * WINDOW)) >= WINDOW


def _tables(result: TrialResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    return result.episodes.drop(columns="wall_s"), result.evals.drop(columns="wall_s")


DUELING = [_spec(seed, 1_500, dueling=True) for seed in (5, 6)]
"""Two seeds of a dueling network, whose value and advantage heads both paths evaluate."""


@pytest.fixture(scope="module")
def by_numpy() -> list[TrialResult]:
    return train_group(DUELING)


def test_the_gpu_path_trains_as_the_cpu_path_does(
    by_numpy: list[TrialResult], gpu_path: None
) -> None:
    """Same seeds, same episodes and evaluations, computed by torch (as on a GPU) and by numpy.

    The two may differ in the last bit: torch's sines against numpy's in float64 (see
    tests/test_agent_vector_env.py), and torch's float32 products against numpy's when acting.
    A long balanced episode would grow the first, and a near tie between two actions' values
    would let the second choose another action. In these 1,500 steps episodes are short and
    neither has happened; loss and Q-values are compared to float32's precision."""
    by_torch = train_group(DUELING)
    for numpy_result, torch_result in zip(by_numpy, by_torch, strict=True):
        for ours, theirs in zip(_tables(numpy_result), _tables(torch_result), strict=True):
            pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-5)
    returns = [r.episodes["episode_return"].tolist() for r in by_torch]
    assert returns[0] != returns[1]  # two different agents were compared, not one twice


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_on_a_gpu_no_step_waits_for_the_device() -> None:
    """CUDA's own check, where there is a GPU: with `torch.cuda.set_sync_debug_mode('warn')`
    every operation that waits for the device warns (torch calls the mode experimental and not
    exhaustive). Four more windows of steps add only the waits made once per window: the
    episode log read back, the next block of start states sent. Not yet run on a GPU."""

    def waits(steps: int) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_group(_specs(steps, device="cuda"))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    waits(WINDOW)  # CUDA's start-up, outside the count
    assert (waits(6 * WINDOW) - waits(2 * WINDOW)) / 4 <= 8
