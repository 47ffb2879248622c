"""Run a sweep on the head of a cluster that Ray's launcher started: the script for `ray submit`.

    ray submit CLUSTER.yaml docker/submit_sweep.py [--] SPEC [dqn-sweep run options]

`ray submit` copies this file into the head node's container (the dqn-sweeps image) and runs it
there with the container's Python, standard library only. It finds SPEC, runs it on the cluster
with `dqn-sweep-job` (`dqn-sweep run`, then `plot` and `summary`) and exits with the run's exit
code. Results go to /work/results/<name> in the container, which is ~/dqn-results/<name> on the
head machine; `mkdir -p results && ray rsync-down CLUSTER.yaml /work/results/<name>/
results/<name>/` brings them home (the command is printed at the end).

SPEC is looked for, in order:
  1. as a path on the head (`ray rsync-up CLUSTER.yaml my.yaml /home/ray/my.yaml` puts one there);
  2. by name in ~/specs: the launching machine's sweeps/specs/, which the cluster configs copy to
     every node (file_mounts) at `ray up`, `ray submit --start` and `ray rsync-up CLUSTER.yaml`;
  3. by name in /app/specs: the specs shipped in the image.
A name may leave out `.yaml`. Options after SPEC go to `dqn-sweep run` (`--fresh`, `--quiet`,
`--group-size N`); with `--` before SPEC, `ray submit` keeps none of them for itself.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

SPEC_DIRS = (Path.home() / "specs", Path("/app/specs"))
"""Where a spec given by name is looked for: the synced specs folder, then the image's."""
RESULTS_DIR = Path(os.environ.get("DQN_RESULTS_DIR", "/work/results"))
USAGE = "usage: submit_sweep.py SPEC [dqn-sweep run options...]"
BAD_INPUT = 2  # dqn-sweep's exit code for bad input, nothing written


def find_spec(given: str) -> Path | None:
    """The spec file `given` names: a path on this node, or a name in one of SPEC_DIRS."""
    path = Path(given).expanduser()
    if path.is_file():
        return path.resolve()
    if "/" in given:
        return None
    names = [given] if given.endswith((".yaml", ".yml")) else [f"{given}.yaml", given]
    for folder in SPEC_DIRS:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def sweep_name(spec: Path) -> str | None:
    """The spec's top-level `name:`, read without a YAML parser (stdlib only); None if unsure."""
    for line in spec.read_text().splitlines():
        if line.startswith("name:"):
            value = line.partition(":")[2].split("#", 1)[0].strip().strip("\"'")
            return value or None
    return None


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--"]  # `--` only keeps `ray submit` off the run options
    if not args or args[0] in ("-h", "--help"):
        print(__doc__ if args else USAGE, file=sys.stderr)
        return 0 if args else BAD_INPUT
    given, run_options = args[0], args[1:]
    spec = find_spec(given)
    if spec is None:
        places = ", ".join(str(folder) for folder in SPEC_DIRS)
        print(
            f"submit_sweep.py: no spec '{given}' on the head: not a file here, nor in {places}.\n"
            "Put yours in sweeps/specs/ on the machine you launch from and run `ray up` (or\n"
            "`ray rsync-up CLUSTER.yaml`, or `ray submit --start`), or copy it over with\n"
            "`ray rsync-up CLUSTER.yaml my.yaml /home/ray/my.yaml` and give that path.",
            file=sys.stderr,
        )
        return BAD_INPUT
    print(f"submit_sweep.py: running {spec} on this cluster", flush=True)
    command = ["dqn-sweep-job", str(spec), *run_options]
    try:
        status = subprocess.run(command, check=False).returncode
    except FileNotFoundError:
        # A head that is not the project's image (or a login shell without its PATH).
        print(
            "submit_sweep.py: no dqn-sweep-job here: the head must run the dqn-sweeps image",
            file=sys.stderr,
        )
        return BAD_INPUT
    name = sweep_name(spec)
    if name is not None and (RESULTS_DIR / name).is_dir():
        folder = RESULTS_DIR / name
        # rsync makes only the last folder of the target: hence the mkdir.
        print(
            f"submit_sweep.py: exit {status}; results in {folder} on the head "
            f"(~/dqn-results/{name} on its machine, with the project's cluster configs); "
            "to fetch them, from where you launched:\n"
            f"  mkdir -p results && ray rsync-down CLUSTER.yaml "
            f"{shlex.quote(str(folder))}/ results/{name}/",
            flush=True,
        )
    else:
        print(f"submit_sweep.py: exit {status}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
