"""Container benchmark: how long the images take to build, how big they are, how fast a sweep runs.

Times each step of docker/e2e.sh on this machine: the registry-free base image (debootstrap),
the CPU project image built from scratch (`--no-cache`) and again from the layer cache, the
compose cluster (head + 2 workers) coming up, and the smoke sweep submitted to it.

    .venv/bin/python -m benchmarks.bench_docker [--online] [--out benchmarks/results]

--online builds the image from PyPI (and the PyTorch index) instead of a wheelhouse made from
this venv. Figures go to a Markdown table on stdout and to docker.json / docker.md under --out.
Needs root (or a running engine): the same conditions as the docker tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "docker" / "e2e.sh"
BY_HAND = "### Measured by hand"


def step(env: dict[str, str], name: str, **extra: str) -> float:
    """Run one e2e.sh step; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([str(E2E), name], env={**env, **extra}, check=True, timeout=3600)
    return time.perf_counter() - start


def image_size(image: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", image, "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--online", action="store_true", help="build from PyPI, not a wheelhouse")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-docker-"))
    env = {
        **os.environ,
        "DQN_E2E_STATE": str(root / "state"),
        "DQN_RESULTS": str(root / "results"),
        "DQN_TOKEN_FILE": str(root / "ray_token"),
        "DQN_COMPOSE_PROJECT": f"dqn-sweeps-bench-{os.getpid()}",
        "DQN_DASHBOARD_PORT": "18265",
        "DQN_WHEELHOUSE": "0" if args.online else "1",
    }
    image = env.get("DQN_IMAGE", "dqn-sweeps:cpu")
    base = "dqn-sweeps-base:bookworm"
    figures: dict[str, Any] = {}
    step(env, "engine")
    try:
        subprocess.run(["docker", "rmi", "-f", base], capture_output=True, check=False)
        figures["base_build_s"] = step(env, "base")
        figures["base_size_bytes"] = image_size(base)
        figures["image_build_cold_s"] = step(env, "image", DQN_BUILD_FLAGS="--no-cache")
        figures["image_size_bytes"] = image_size(image)
        figures["image_build_cached_s"] = step(env, "image")
        figures["cluster_up_s"] = step(env, "up")
        figures["smoke_sweep_s"] = step(env, "sweep")
    finally:
        step(env, "down")
        step(env, "engine-stop")

    figures.update(
        image=image,
        source="PyPI + PyTorch index" if args.online else "wheelhouse from the venv (offline)",
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        command=" ".join([".venv/bin/python -m benchmarks.bench_docker", *sys.argv[1:]]),
    )
    rows = [
        ("base image (debootstrap bookworm + python3), build", f"{figures['base_build_s']:.0f} s"),
        ("base image, size", f"{figures['base_size_bytes'] / 1e6:.0f} MB"),
        ("CPU project image, build from scratch", f"{figures['image_build_cold_s']:.0f} s"),
        ("CPU project image, rebuild from cache", f"{figures['image_build_cached_s']:.0f} s"),
        ("CPU project image, size", f"{figures['image_size_bytes'] / 1e9:.2f} GB"),
        ("compose up: head + 2 workers joined", f"{figures['cluster_up_s']:.0f} s"),
        ("smoke sweep as a Ray job (4 trials) + plots", f"{figures['smoke_sweep_s']:.0f} s"),
    ]
    table = "\n".join(
        [
            f"## Docker: CPU image ({figures['source']})",
            "",
            "| step | figure |",
            "|---|---:|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
            f"Machine: {figures['machine']}. Command: `{figures['command']}`.",
        ]
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "docker.json").write_text(json.dumps(figures, indent=2) + "\n")
    # Figures measured by hand, recorded below the table, stay.
    md = args.out / "docker.md"
    kept = md.read_text().partition(BY_HAND)[1:] if md.exists() else ("", "")
    md.write_text(table + "\n\n" + "".join(kept) if kept[0] else table + "\n")


if __name__ == "__main__":
    main()
