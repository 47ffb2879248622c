"""The Ray session a sweep runs in, and the checks of the cluster it finds.

`ray_session` uses the caller's Ray, joins a cluster, or starts a local instance for the run,
and refuses early what could never run there: an address where nobody answers, tasks larger
than any node, GPU tasks that this machine's torch cannot run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray
import torch

from sweeps.plan import machine_cpus, tasks_that_fit
from sweeps.spec import InputError, Resources


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster of a run, as found when the session opened."""

    address: str
    """Where it was found: 'local' for an instance started for the run, else the address given."""
    gcs_address: str
    nodes: tuple[dict[str, float], ...]
    """Resources of each live node ('CPU', 'GPU', ...)."""
    resources: dict[str, float]
    """The whole cluster's resources."""

    @property
    def cpus(self) -> float:
        return sum(node.get("CPU", 0.0) for node in self.nodes)

    def task_slots(self, resources: Resources) -> int:
        """Tasks asking for `resources` that the cluster runs at once, node by node (at least 1:
        a cluster that may still grow)."""
        fit = (
            tasks_that_fit(resources, cpus=node.get("CPU", 0.0), gpus=node.get("GPU", 0.0))
            for node in self.nodes
        )
        return max(1, sum(fit))

    def memory_per_task(self, resources: Resources) -> float | None:
        """Bytes of memory a task can fill on the node that offers the most to one task: its
        memory for tasks over the tasks it runs at once; None if no node says its memory."""
        offers = [
            node["memory"]
            / max(
                1, tasks_that_fit(resources, cpus=node.get("CPU", 0.0), gpus=node.get("GPU", 0.0))
            )
            for node in self.nodes
            if node.get("memory")
        ]
        return max(offers) if offers else None

    def facts(self) -> dict[str, Any]:
        """What the manifest records of the cluster."""
        return {
            "address": self.address,
            "gcs_address": self.gcs_address,
            "nodes": len(self.nodes),
            "cluster_resources": self.resources,
        }


@contextlib.contextmanager
def ray_session(address: str | None, resources: Resources) -> Iterator[Cluster]:
    """Use the caller's Ray, or connect to `address` / $RAY_ADDRESS, or start a local one.

    A local instance is sized to this machine and shut down at the end; its tasks must fit on
    it, while a cluster may still grow (tasks too large for its nodes get a warning).
    """
    started = False
    target = address or os.environ.get("RAY_ADDRESS") or None
    source = "--address" if address else "$RAY_ADDRESS"  # named in errors: where it came from
    if not ray.is_initialized():
        try:
            if target is not None:
                _check_reachable(target, source)
                ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
            else:
                # 'local' so that a cluster started with `ray start` is not joined by surprise.
                ray.init(
                    address="local",
                    num_cpus=machine_cpus(),
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            if target is None:
                raise InputError(f"could not start a local Ray instance: {exc}") from exc
            raise InputError(f"{source} {target}: cannot connect to a Ray cluster: {exc}") from exc
        started = True
    # A local Ray dies with its driver even when the driver is killed (sweeps.reaper).
    reaper = _start_reaper() if started and target is None else None
    try:
        local = started and target is None
        cluster = Cluster(
            address=target or "local",
            gcs_address=ray.get_runtime_context().gcs_address,
            nodes=tuple(_alive_nodes()),
            resources=ray.cluster_resources(),  # type: ignore[no-untyped-call]
        )
        _check_fits(resources, cluster, strict=local)
        if local:
            _check_cuda(resources)
        yield cluster
    finally:
        if started:
            ray.shutdown()
        if reaper is not None:
            reaper.terminate()
            reaper.wait()


def _start_reaper() -> subprocess.Popen[bytes] | None:
    """The watcher that ends this local Ray's processes if this driver dies without shutting
    them down; in a session of its own, so that what kills the driver does not kill it."""
    if not os.path.exists("/proc/self/stat"):
        return None  # it reads /proc: Linux only
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _alive_nodes() -> list[dict[str, float]]:
    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return [dict(node["Resources"]) for node in nodes if node.get("Alive")]


def _check_reachable(address: str, source: str = "--address") -> None:
    """Fail fast where nothing listens at HOST:PORT: `ray.init` would retry for many minutes.
    `source` says where the address came from (``--address`` or ``$RAY_ADDRESS``)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or "auto"  # what Ray itself would use
    host, colon, port = address.rpartition(":")
    if address in ("auto", "local") or "://" in address or not colon or not port.isdigit():
        return  # Ray finds or explains these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        instead = "leave --address out" if source == "--address" else "unset RAY_ADDRESS"
        raise InputError(
            f"{source} {address}: no Ray cluster answers there ({exc}); check the address "
            f"that `ray start --head` printed, or {instead} to run on this machine"
        ) from None


def _check_cuda(resources: Resources) -> None:
    """On a local instance, refuse GPU tasks that this machine's torch cannot run.

    Ray counts the GPUs it sees, not whether torch can use them (a CPU build of torch, a missing
    driver); every trial would then fail on its first CUDA call. On a cluster the workers'
    torch may differ from the driver's, so there the tasks themselves find out."""
    if resources.gpus_per_trial > 0 and not torch.cuda.is_available():
        raise InputError(
            f"resources.gpus_per_trial: {resources.gpus_per_trial:g}, but torch "
            f"{torch.__version__} on this machine cannot use a GPU (a CPU-only build, or no "
            "CUDA driver); set gpus_per_trial: 0, or install a CUDA build of torch"
        )


def _check_fits(resources: Resources, cluster: Cluster, *, strict: bool) -> None:
    """Refuse (`strict`, a local instance) or warn of tasks larger than every node."""
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    nodes = cluster.nodes
    if any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes):
        return
    sizes = ", ".join(f"{n.get('CPU', 0):g} CPU and {n.get('GPU', 0):g} GPU" for n in nodes)
    message = (
        f"resources: a task asks for {cpus:g} CPU and {gpus:g} GPU, more than any node of the "
        f"Ray cluster has (nodes: {sizes or 'none'})"
    )
    if strict:
        raise InputError(f"{message}; lower resources.cpus_per_trial or gpus_per_trial")
    print(f"warning: {message}; tasks wait until such a node joins", file=sys.stderr)
