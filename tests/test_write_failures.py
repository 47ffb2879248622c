"""A run that cannot write: its disk filled up mid-run, or full from the start. Both on a real
tmpfs in a mount namespace of the run's own, which ends with it; skipped where this machine
cannot make one."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.runner import EXIT_WRITE_FAILED
from sweeps.store import ResultsFolder
from tests.conftest import TINY_SPEC, in_mount_namespace, write_spec

pytestmark = pytest.mark.slow  # Ray, training

SPEC = TINY_SPEC.replace("name: tiny", "name: writes")

FULL_AFTER_FIRST_TRIAL = """\
import sys
from pathlib import Path
from sweeps.runner import RunOptions, run_sweep
from sweeps.spec import load_spec

spec, out = Path(sys.argv[1]), Path(sys.argv[2])
written = []

def fill_the_disk_after_the_first(outcome):
    # Runs in the driver once the trial is on disk: another file takes all the space left.
    written.append(outcome)
    if len(written) == 1:
        with open(out / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(bytes(1 << 16))
                    filler.flush()
            except OSError:
                pass

options = RunOptions(out=out, quiet=True, group_size=1, max_in_flight=1,
                     on_outcome=fill_the_disk_after_the_first, command=["dqn-sweep", "run", "x"])
sys.exit(run_sweep(load_spec(spec), options).exit_code)
"""
"""A sweep's driver (`python -c`) that fills its disk once it has written its first trial."""


def test_a_disk_full_mid_run_stops_the_run_and_keeps_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out, kept = write_spec(tmp_path, SPEC), tmp_path / "out", tmp_path / "kept"
    out.mkdir()
    kept.mkdir()
    where = shlex.quote(str(out))
    driver = shlex.join([sys.executable, "-c", FULL_AFTER_FIRST_TRIAL, str(spec), str(out)])
    # The folder is copied out of the tmpfs, the filler left behind, before both are gone.
    copy = f"rm -f {where}/filler; cp -a {where}/writes {shlex.quote(str(kept))}/"
    tmpfs = f"mount -t tmpfs -o size=64m tmpfs {where}"
    done = in_mount_namespace(f"{tmpfs} && {{ {driver}; code=$?; {copy}; exit $code; }}")

    assert done.returncode == EXIT_WRITE_FAILED, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "No space left on device" in done.stdout
    assert str(out / "writes") in done.stdout
    assert "run again: dqn-sweep run x" in done.stdout
    folder = ResultsFolder(kept / "writes")
    assert len(folder.complete_ids()) == 1  # the trial written before the disk filled up
    assert not [p for p in folder.root.rglob("*") if p.name.startswith(".")]  # no temp file
    # A rerun with room to write trains only the rest.
    assert main(["run", str(spec), "--out", str(kept), "--quiet"]) == 0
    assert "1 already complete, 3 to train" in capsys.readouterr().out
    assert len(folder.complete_ids()) == 4


def test_a_disk_full_from_the_start_leaves_nothing_behind(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, SPEC), tmp_path / "out"
    out.mkdir()
    where = shlex.quote(str(out))
    run = shlex.join(
        [
            sys.executable,
            "-c",
            "import sys; from sweeps.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            str(spec),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    # A tmpfs of one page: spec.yaml fits, the manifest does not. What the run left in the
    # tmpfs is listed before the namespace, and the mount with it, are gone.
    tiny = f"mount -t tmpfs -o size=4k tmpfs {where}"
    done = in_mount_namespace(
        f"{tiny} && {{ {run}; code=$?; echo LEFT:$(ls -A {where}); exit $code; }}"
    )

    assert done.returncode == EXIT_WRITE_FAILED, done.stderr[-2000:]
    assert "No space left on device" in done.stderr
    assert "error: cannot write the results" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "LEFT:\n" in done.stdout or done.stdout.rstrip().endswith("LEFT:")
