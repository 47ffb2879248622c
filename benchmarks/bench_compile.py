"""Does `torch.compile` pay for the training step? Measured against the hand-written step.

Issue 5 asks for CUDA graphs or `torch.compile` "where they pay". The trainer's gradient step is
written by hand: a forward pass into buffers allocated once, the TD loss's gradient worked out
on paper, the backward pass (`dqn_agent.backprop`), one call of the fused Adam kernel
(`dqn_agent.optimizer`). For a group of seeds of each network, this benchmark times one gradient
step four ways:

1. project: the step as the fused learner takes it (`fused.td_gradients`, then Adam);
2. project, compiled: sampling and `td_gradients` given to `torch.compile`, Adam as before
   (torch 2.13's compiler fails on the fused Adam kernel, which is one call anyway);
3. autograd: the textbook step, the network's forward, `targets.td_loss`, `loss.backward()`;
4. autograd, compiled: that forward and loss compiled (the backward with them, by AOTAutograd).

The four run in turn, round after round, in an order that rotates, so that the machine's drift
falls on all alike; each variant's figure is the median of its rounds. Also recorded: how far
each variant's gradients are from the project's and from its own uncompiled version's, from the
same weights and batch; and what compiling costs a task, in fresh processes (`compile_costs`),
both cold and with the compiler's on-disk cache already holding the step, with the env steps
after which each is paid back (one gradient step per env step, as in the reference sweep).

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
import torch._dynamo.utils

from benchmarks import records
from benchmarks.bench_speed import REFERENCE, size_text
from dqn_agent.backprop import Backprop
from dqn_agent.buffer import ReplayBuffer
from dqn_agent.config import AgentConfig
from dqn_agent.fused import td_gradients
from dqn_agent.networks import QNetwork, flatten_parameters
from dqn_agent.optimizer import FlatAdam
from dqn_agent.targets import td_loss, td_target

COMPILED = ", compiled"


def sampled_gradients(
    backprop: Backprop, target: QNetwork, buffer: ReplayBuffer, u: torch.Tensor, config: AgentConfig
) -> Any:
    """The fused learner's step up to Adam, from the replay uniforms `u` (K, batch) on."""
    return td_gradients(backprop, target, buffer.sample(u), config)


VARIANTS = ("project", "project" + COMPILED, "autograd", "autograd" + COMPILED)
OBS_DIM, N_ACTIONS = 4, 2  # CartPole's


def uncompiled(variant: str) -> str:
    """The variant that `variant` compiles (itself, if it is not a compiled one)."""
    return variant.removesuffix(COMPILED)


@dataclass
class Group:
    """The training state of a group of agents, as the trainer builds it."""

    config: AgentConfig
    online: QNetwork
    target: QNetwork
    backprop: Backprop
    optimizer: FlatAdam
    buffer: ReplayBuffer
    uniforms: torch.Tensor
    """One batch's replay uniforms (K, batch), reused every step: timing needs no fresh draws."""
    transitions: torch.Generator
    """Draws the random transitions stored (the arithmetic does not depend on them)."""

    def store(self, count: int) -> None:
        """Add `count` random transitions per agent to the replay buffer."""
        k, device, gen = self.uniforms.shape[0], self.uniforms.device, self.transitions
        for _ in range(count):
            self.buffer.add(
                torch.randn(k, OBS_DIM, generator=gen).to(device),
                torch.randint(N_ACTIONS, (k,), generator=gen).to(device),
                torch.ones(k, device=device),
                torch.randn(k, OBS_DIM, generator=gen).to(device),
                (torch.rand(k, generator=gen) < 0.05).float().to(device),
            )


def make_group(
    sizes: tuple[int, ...], n_agents: int, device: str, *, stored: int | None = None
) -> Group:
    """A group of `n_agents` seeds of the reference configuration with hidden layers `sizes`,
    with `stored` transitions per agent in its replay buffer (default: a full buffer)."""
    config = dataclasses.replace(REFERENCE, hidden_sizes=sizes)
    online = QNetwork(n_agents, OBS_DIM, N_ACTIONS, sizes)
    online.reset_parameters([torch.Generator().manual_seed(seed) for seed in range(n_agents)])
    online.to(device)
    target = copy.deepcopy(online)
    weights = flatten_parameters(online)
    gen = torch.Generator().manual_seed(0)
    group = Group(
        config=config,
        online=online,
        target=target,
        backprop=Backprop(online, config.batch_size),
        optimizer=FlatAdam(weights, lr=config.lr),
        buffer=ReplayBuffer(n_agents, config.buffer_size, OBS_DIM, device=device),
        uniforms=torch.rand(n_agents, config.batch_size, generator=gen).to(device),
        transitions=gen,
    )
    group.store(config.buffer_size if stored is None else stored)
    return group


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
    compiled = variant.endswith(COMPILED)
    if uncompiled(variant) == "project":
        gradients = torch.compile(sampled_gradients, mode=mode) if compiled else sampled_gradients

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
    """Every variant on one network: ms per step by round, gradients compared, compile costs."""
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
    for r in range(rounds):
        for variant in VARIANTS[r % 4 :] + VARIANTS[: r % 4]:
            step, n, start = steps[variant], 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(10):
                    step()
                _sync(groups[variant])
                n += 10
            ms[variant].append((time.perf_counter() - start) / n * 1e3)

    def distance(variant: str, other: str) -> float:
        return (grads[variant] - grads[other]).abs().max().item()

    rows = {}
    for variant in VARIANTS:
        rows[variant] = {
            "ms_per_step": ms[variant],
            "median_ms": statistics.median(ms[variant]),
            "ratio_to_project": _median_ratio(ms[variant], ms["project"]),
            "ratio_to_uncompiled": _median_ratio(ms[variant], ms[uncompiled(variant)]),
            "gradients_equal_project": bool(torch.equal(grads[variant], grads["project"])),
            "max_abs_gradient_difference": distance(variant, "project"),
            "max_abs_difference_from_uncompiled": distance(variant, uncompiled(variant)),
        }
        if variant.endswith(COMPILED):  # in fresh processes, after the timed rounds
            rows[variant].update(compile_costs(variant, sizes, n_agents, device, mode))
    largest = grads["project"].abs().max().item()
    return {
        "network": size_text(sizes),
        "n_agents": n_agents,
        "max_abs_gradient": largest,
        "variants": rows,
    }


def compile_costs(
    variant: str, sizes: tuple[int, ...], n_agents: int, device: str, mode: str
) -> dict[str, float]:
    """What compiling `variant` costs a task, measured in fresh processes (`compile_cost_here`):
    with the compiler's caches off ("cold"), and with its on-disk cache already holding the
    step ("warm": one process fills a new cache, a second is timed)."""
    command = [
        *(sys.executable, "-m", "benchmarks.bench_compile", "--compile-cost", variant),
        *("--networks", size_text(sizes), "--seeds", str(n_agents)),
        *("--device", device, "--mode", mode),
    ]

    def run(env: dict[str, str]) -> dict[str, float]:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
        cost: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
        return cost

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cold = run({**env, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"})
        run(env)  # fills the cache
        warm = run(env)
    return {
        "compile_cold_s": cold["seconds"],
        "compile_warm_s": warm["seconds"],
        "graphs": cold["graphs"],
        "graph_breaks": cold["graph_breaks"],
    }


def compile_cost_here(
    variant: str, sizes: tuple[int, ...], n_agents: int, device: str, mode: str
) -> dict[str, float]:
    """In this process, fresh as a task's: the seconds compiled `variant` spends compiling,
    and the graphs and graph breaks it compiled.

    A task starts learning with `learning_starts` transitions stored, and the replay sampling
    reads how many there are, so the compiler sees the step with 64 stored, again with a
    number that changes (it recompiles for that), and once more when the buffer is full. Timed:
    from asking for the compiled function (which loads the compiler) through the first three
    gradients as the buffer grows by one each time, and the first with the buffer full. Each
    call's own arithmetic, a millisecond or so, is counted too."""
    group = make_group(sizes, n_agents, device, stored=REFERENCE.learning_starts)
    start = time.perf_counter()
    gradient = gradient_function(variant, group, mode)
    seconds = time.perf_counter() - start

    def timed_gradient() -> float:
        start = time.perf_counter()
        gradient()
        _sync(group)
        return time.perf_counter() - start

    seconds += timed_gradient()  # 64 transitions stored
    group.store(1)
    seconds += timed_gradient()  # 65: a new number, compiled for any
    group.store(1)
    seconds += timed_gradient()  # 66
    group.store(group.config.buffer_size - len(group.buffer))
    seconds += timed_gradient()  # full
    counters = torch._dynamo.utils.counters
    return {
        "seconds": seconds,
        "graphs": counters["stats"]["unique_graphs"],
        "graph_breaks": sum(counters["graph_break"].values()),
    }


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
    """The record as a Markdown table, one row per network and variant, with its legend."""
    lines = [
        "# torch.compile against the hand-written gradient step",
        "",
        f"Command: `{record['command']}`; torch {record['torch']}, device {record['device']}, "
        f"compile mode {record['mode']!r}; groups of {record['n_agents']} seeds, "
        f"{record['rounds']} interleaved rounds of about {record['seconds']} s per variant.",
        "",
        "| network | variant | ms per gradient step (median) | time vs project (median of "
        "per-round ratios; range) | compile s, cold / warm cache (graphs, breaks) | pays back "
        "after, env steps, cold / warm | largest gradient difference from the project's; from "
        "uncompiled |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for result in record["results"]:
        rows = result["variants"]
        for variant in VARIANTS:
            row = rows[variant]
            project_ms = rows["project"]["ms_per_step"]
            ratios = [m / p for m, p in zip(row["ms_per_step"], project_ms, strict=True)]
            cost, pays, difference = "-", "-", f"{row['max_abs_gradient_difference']:.1e}"
            if variant.endswith(COMPILED):
                cold, warm = row["compile_cold_s"], row["compile_warm_s"]
                cost = f"{cold:.1f} / {warm:.1f} ({row['graphs']}, {row['graph_breaks']})"
                base = rows[uncompiled(variant)]["median_ms"]
                pays = " / ".join(
                    _steps_text(break_even_steps(base, row["ratio_to_uncompiled"], seconds))
                    for seconds in (cold, warm)
                )
                difference += f"; {row['max_abs_difference_from_uncompiled']:.1e}"
            lines.append(
                f"| {result['network']} | {variant} | {row['median_ms']:.3f} "
                f"| {row['ratio_to_project']:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
                f"| {cost} | {pays} | {difference} |"
            )
    largest = ", ".join(f"{r['network']} {r['max_abs_gradient']:.2f}" for r in record["results"])
    lines += [
        "",
        "'compile s': what compiling costs a task, in a fresh process: loading the compiler and "
        "compiling the step for a replay buffer with 64 transitions, for one whose size varies, "
        "and for a full one, with the compiler's caches off (cold) or with its on-disk cache "
        "already holding the step (warm: the same step compiled earlier on the machine); "
        "graphs compiled and graph breaks, cold. 'pays back after': that time over the time "
        "the compiled step saves per step against the same step uncompiled (the median "
        "per-round ratio of their times), one gradient step per env step. A trial of the "
        f"reference sweep takes 50,000 env steps. Largest gradient element: {largest}.",
        "",
    ]
    return "\n".join(lines)


def _steps_text(steps: float | None) -> str:
    return "never" if steps is None else f"{round(steps, -3):,.0f}"


def parse_sizes(network: str) -> tuple[int, ...]:
    """Hidden sizes from their text, as `size_text` writes them: '64x64' -> (64, 64)."""
    return tuple(int(width) for width in network.split("x"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="64x64,256x256", help="hidden sizes, e.g. 64x64")
    parser.add_argument("--seeds", type=int, default=10, help="agents in the group")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="default", help="torch.compile's mode")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--compile-cost", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a trial: one core
    torch.set_flush_denormal(True)  # as the trainer does (`training.flush_denormals`)
    if args.compile_cost:  # the fresh process of `compile_costs`
        sizes = parse_sizes(args.networks)
        cost = compile_cost_here(args.compile_cost, sizes, args.seeds, args.device, args.mode)
        print(json.dumps(cost))
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
        sizes = parse_sizes(network)
        result = measure(sizes, args.seeds, args.rounds, args.seconds, args.device, args.mode)
        print(json.dumps(result), flush=True)
        record["results"].append(result)
    records.save(args.out, "compile", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
