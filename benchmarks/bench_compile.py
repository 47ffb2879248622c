"""Does `torch.compile` pay for the training step? Measured against the hand-written step.

Issue 5 asks for CUDA graphs or `torch.compile` "where they pay". The trainer's gradient step is
written by hand: a forward pass into buffers allocated once, the TD loss's gradient worked out
on paper, the backward pass (`dqn_agent.backprop`), one call of the fused Adam kernel
(`dqn_agent.optimizer`). For a group of seeds of each network, this benchmark times one gradient
step four ways:

1. project: the step as the trainer takes it (`training.td_gradients`, then Adam);
2. project, compiled: `td_gradients` given to `torch.compile`, Adam as before (the compiler
   cannot trace the fused Adam kernel, which is one call anyway);
3. autograd: the textbook step, the network's forward, `targets.td_loss`, `loss.backward()`;
4. autograd, compiled: that forward and loss compiled (the backward with them, by AOTAutograd).

The four run in turn, round after round, so that the machine's drift falls on all alike; each
variant's figure is the median of its rounds. Also recorded: whether each variant's gradients
equal the project's bit for bit from the same weights and batch; and the first call of each
compiled step in a fresh process, as a task starts (loading the compiler, compiling), both cold
and with the compiler's on-disk cache already holding the step (an earlier task on the machine
compiled it), with the env steps after which each is paid back (one gradient step per env step,
as in the reference sweep).

    .venv/bin/python -m benchmarks.bench_compile
    .venv/bin/python -m benchmarks.bench_compile --device cuda --mode reduce-overhead
                                            # on a GPU: compiled with CUDA graphs (never run)

Writes JSON and a Markdown table to benchmarks/results/compile.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_speed import REFERENCE, size_text
from dqn_agent.backprop import Backprop
from dqn_agent.buffer import ReplayBuffer
from dqn_agent.config import AgentConfig
from dqn_agent.networks import QNetwork, flatten_parameters
from dqn_agent.optimizer import FlatAdam
from dqn_agent.targets import td_loss, td_target
from dqn_agent.training import td_gradients

VARIANTS = ("project", "project, compiled", "autograd", "autograd, compiled")
OBS_DIM, N_ACTIONS = 4, 2  # CartPole's


@dataclass
class Group:
    """The training state of a group of agents, as the trainer builds it, with a full buffer."""

    config: AgentConfig
    online: QNetwork
    target: QNetwork
    backprop: Backprop
    optimizer: FlatAdam
    buffer: ReplayBuffer
    uniforms: torch.Tensor
    """One batch's replay uniforms (K, batch), reused every step: timing needs no fresh draws."""


def make_group(sizes: tuple[int, ...], n_agents: int, device: str) -> Group:
    """A group of `n_agents` seeds of the reference configuration with hidden layers `sizes`,
    its replay buffer filled with random transitions (the arithmetic does not depend on them)."""
    config = dataclasses.replace(REFERENCE, hidden_sizes=sizes)
    online = QNetwork(n_agents, OBS_DIM, N_ACTIONS, sizes)
    online.reset_parameters([torch.Generator().manual_seed(seed) for seed in range(n_agents)])
    online.to(device)
    target = copy.deepcopy(online)
    weights = flatten_parameters(online)
    backprop = Backprop(online, config.batch_size)
    optimizer = FlatAdam(weights, lr=config.lr)
    buffer = ReplayBuffer(n_agents, config.buffer_size, OBS_DIM, device=device)
    gen = torch.Generator().manual_seed(0)
    for _ in range(config.buffer_size):
        buffer.add(
            torch.randn(n_agents, OBS_DIM, generator=gen).to(device),
            torch.randint(N_ACTIONS, (n_agents,), generator=gen).to(device),
            torch.ones(n_agents, device=device),
            torch.randn(n_agents, OBS_DIM, generator=gen).to(device),
            (torch.rand(n_agents, generator=gen) < 0.05).float().to(device),
        )
    uniforms = torch.rand(n_agents, config.batch_size, generator=gen).to(device)
    return Group(config, online, target, backprop, optimizer, buffer, uniforms)


def autograd_loss(group: Group) -> torch.Tensor:
    """The textbook TD loss of one batch, for `loss.backward()` to differentiate."""
    batch = group.buffer.sample(group.uniforms)
    config = group.config
    y = td_target(batch, group.online, group.target, gamma=config.gamma, double=config.double)
    q = group.online(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    loss, _ = td_loss(q, y, config.loss)
    return loss


def gradient_function(variant: str, group: Group, mode: str) -> Callable[[], None]:
    """A function that writes the group's loss gradient into `.grad`, the way `variant`
    computes it (compiled on its first call, for the compiled variants)."""
    compiled = variant.endswith("compiled")
    if variant.startswith("project"):
        gradients = torch.compile(td_gradients, mode=mode) if compiled else td_gradients

        def by_hand() -> None:
            gradients(group.backprop, group.target, group.buffer, group.uniforms, group.config)

        return by_hand

    loss_of = torch.compile(autograd_loss, mode=mode) if compiled else autograd_loss

    def by_autograd() -> None:
        group.optimizer.grad.zero_()  # backward() adds into .grad
        loss_of(group).backward()  # type: ignore[no-untyped-call]

    return by_autograd


def _then_update(gradient: Callable[[], None], optimizer: FlatAdam) -> Callable[[], None]:
    """A whole gradient step: the gradient, then Adam's update from it."""

    def step() -> None:
        gradient()
        optimizer.step()

    return step


def _sync(group: Group) -> None:
    """Wait for the GPU, if the group is on one, so that the clock sees the work done."""
    if group.optimizer.weights.is_cuda:
        torch.cuda.synchronize()


def measure(
    sizes: tuple[int, ...], n_agents: int, rounds: int, seconds: float, device: str, mode: str
) -> dict[str, Any]:
    """Every variant on one network: gradients compared, compile time, ms per step by round."""
    groups = {variant: make_group(sizes, n_agents, device) for variant in VARIANTS}
    steps, grads = {}, {}
    for variant, group in groups.items():
        gradient, optimizer = gradient_function(variant, group, mode), group.optimizer
        gradient()  # from the same weights and batch in every variant; compiles if compiled
        grads[variant] = optimizer.grad.detach().clone()
        steps[variant] = _then_update(gradient, optimizer)
        for _ in range(20):  # warm-up
            steps[variant]()
        _sync(group)

    ms: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant, step in steps.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(10):
                    step()
                _sync(groups[variant])
                n += 10
            ms[variant].append((time.perf_counter() - start) / n * 1e3)

    reference = grads["project"]
    rows = {}
    for variant in VARIANTS:
        difference = (grads[variant] - reference).abs().max().item()
        uncompiled = variant.removesuffix(", compiled")
        rows[variant] = {
            "ms_per_step": ms[variant],
            "median_ms": statistics.median(ms[variant]),
            "ratio_to_project": _median_ratio(ms[variant], ms["project"]),
            "ratio_to_uncompiled": _median_ratio(ms[variant], ms[uncompiled]),
            "gradients_equal_project": bool(torch.equal(grads[variant], reference)),
            "max_abs_gradient_difference": difference,
        }
        if variant.endswith("compiled"):  # in fresh processes, after the timed rounds
            rows[variant].update(first_calls(variant, sizes, n_agents, device, mode))
    return {"network": size_text(sizes), "n_agents": n_agents, "variants": rows}


def first_calls(
    variant: str, sizes: tuple[int, ...], n_agents: int, device: str, mode: str
) -> dict[str, float]:
    """Seconds the first call of compiled `variant` takes in a fresh process, as in a new task:
    with the compiler's caches off ("cold"), and with its on-disk cache holding the step
    ("warm": one process fills a new cache, a second is timed)."""
    command = [
        *(sys.executable, "-m", "benchmarks.bench_compile", "--first-call", variant),
        *("--networks", "x".join(map(str, sizes)), "--seeds", str(n_agents)),
        *("--device", device, "--mode", mode),
    ]

    def timed(env: dict[str, str]) -> float:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        seconds: float = json.loads(done.stdout.splitlines()[-1])["first_call_s"]
        return seconds

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cold = timed({**env, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"})
        timed(env)  # fills the cache
        return {"first_call_cold_s": cold, "first_call_warm_s": timed(env)}


def first_call(
    variant: str, sizes: tuple[int, ...], n_agents: int, device: str, mode: str
) -> float:
    """Seconds of this process's first gradient by compiled `variant` (see `first_calls`)."""
    group = make_group(sizes, n_agents, device)
    gradient = gradient_function(variant, group, mode)
    start = time.perf_counter()
    gradient()
    _sync(group)
    return time.perf_counter() - start


def _median_ratio(times: list[float], reference: list[float]) -> float:
    """The median over rounds of times[r] / reference[r]: measured seconds apart, the two see
    the same machine, which drifts between rounds."""
    return statistics.median(mine / theirs for mine, theirs in zip(times, reference, strict=True))


def break_even_steps(uncompiled_ms: float, ratio: float, compile_s: float) -> float | None:
    """Env steps (one gradient step each) after which compiling has paid for itself, when the
    compiled step takes `ratio` times the uncompiled step's `uncompiled_ms`; None if it is no
    faster."""
    saved_s = uncompiled_ms * (1.0 - ratio) / 1e3
    return compile_s / saved_s if saved_s > 0 else None


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# torch.compile against the hand-written gradient step",
        "",
        f"Command: `{record['command']}`; torch {record['torch']}, device {record['device']}, "
        f"compile mode {record['mode']!r}; groups of {record['n_agents']} seeds, "
        f"{record['rounds']} interleaved rounds of about {record['seconds']} s per variant.",
        "",
        "| network | variant | ms per gradient step (median) | time vs project (median of "
        "per-round ratios) | first call s, cold / warm cache | pays back after, cold / warm "
        "| gradients equal the project's |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for result in record["results"]:
        rows = result["variants"]
        for variant in VARIANTS:
            row = rows[variant]
            first, pays = "-", "-"
            if variant.endswith("compiled"):
                cold, warm = row["first_call_cold_s"], row["first_call_warm_s"]
                uncompiled = rows[variant.removesuffix(", compiled")]["median_ms"]
                first = f"{cold:.1f} / {warm:.1f}"
                pays = " / ".join(
                    _steps_text(break_even_steps(uncompiled, row["ratio_to_uncompiled"], s))
                    for s in (cold, warm)
                )
            difference = row["max_abs_gradient_difference"]
            equal = "yes" if row["gradients_equal_project"] else f"no (by {difference:.1e})"
            lines.append(
                f"| {result['network']} | {variant} | {row['median_ms']:.3f} "
                f"| {row['ratio_to_project']:.2f}x | {first} | {pays} | {equal} |"
            )
    lines += [
        "",
        "'first call s': a fresh process's first gradient step, as in a new task: loading the "
        "compiler and compiling, with its caches off (cold) or with its on-disk cache already "
        "holding this step (warm: an earlier task on the machine compiled it). 'pays back "
        "after': that time over the time the compiled step saves per step against the same "
        "step uncompiled (the median per-round ratio of their times), one gradient step per env "
        "step. A trial of the reference sweep takes 50,000 env steps.",
        "",
    ]
    return "\n".join(lines)


def _steps_text(steps: float | None) -> str:
    return "never" if steps is None else f"{steps:,.0f} env steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="64x64,256x256", help="hidden sizes, e.g. 64x64")
    parser.add_argument("--seeds", type=int, default=10, help="agents in the group")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="default", help="torch.compile's mode")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--first-call", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a trial: one core
    torch.set_flush_denormal(True)  # as the trainer does (`training.flush_denormals`)
    if args.first_call:  # the fresh process of `first_calls`
        sizes = tuple(int(width) for width in args.networks.split("x"))
        seconds = first_call(args.first_call, sizes, args.seeds, args.device, args.mode)
        print(json.dumps({"first_call_s": seconds}))
        return
    record: dict[str, Any] = {
        "host": platform.node(),
        "torch": torch.__version__,
        "device": args.device,
        "mode": args.mode,
        "command": " ".join(["python -m benchmarks.bench_compile", *sys.argv[1:]]),
        "n_agents": args.seeds,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "results": [],
    }
    for network in args.networks.split(","):
        sizes = tuple(int(width) for width in network.split("x"))
        result = measure(sizes, args.seeds, args.rounds, args.seconds, args.device, args.mode)
        print(json.dumps(result), flush=True)
        record["results"].append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "compile.md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
