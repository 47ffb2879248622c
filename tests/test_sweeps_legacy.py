"""Results folders written by earlier releases still resume, without retraining anything.

tests/data/legacy is the whole folder that `dqn-sweep run` wrote for its spec.yaml with the code
of the release before the `network` setting; tests/data/before_pixels, with the code of the
release before image observations and their settings (`channels`, `optimizer`, ...). Each
manifest.json records its commit, clean. Both: 2 variants x 2 network sizes x 2 seeds, 300 env
steps each. New settings must leave existing trial ids unchanged, so that such a folder resumes
without retraining anything.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sweeps.cli import main
from sweeps.plan import expand
from sweeps.spec import load_spec
from sweeps.store import ResultsFolder

LEGACY = Path(__file__).parent / "data" / "legacy"
BEFORE_PIXELS = Path(__file__).parent / "data" / "before_pixels"
FOLDERS = [(LEGACY, "network"), (BEFORE_PIXELS, "channels")]
"""Each folder, and a setting added after it was written."""


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.parent != root  # the data files, not the index or manifest
    }


@pytest.mark.parametrize(("root", "added"), FOLDERS, ids=["legacy", "before_pixels"])
def test_the_old_spec_names_the_trials_the_folder_holds(root: Path, added: str) -> None:
    stored = pd.read_parquet(root / "trials.parquet")
    assert added not in stored.columns  # written before the setting existed
    ids = {trial.trial_id for trial in expand(load_spec(root / "spec.yaml"))}
    assert len(ids) == 8
    assert ids == set(stored["trial_id"])


@pytest.mark.parametrize(("root", "added"), FOLDERS, ids=["legacy", "before_pixels"])
def test_the_old_folder_resumes_without_training_and_keeps_every_file(
    root: Path, added: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / root.name
    shutil.copytree(root, folder)
    before = _digests(folder)
    assert len(before) == 24  # episodes, evals and weights of 8 trials

    code = main(["run", str(root / "spec.yaml"), "--out", str(tmp_path), "--quiet"])

    assert code == 0
    assert "8 already complete, 0 to train" in capsys.readouterr().out
    assert _digests(folder) == before
    rows = ResultsFolder(folder).read_rows()
    assert len(rows) == 8
    assert {row["network"] for row in rows.values()} == {"mlp"}  # what the old trials ran
    # What the old trials ran, read back as the current settings' values.
    assert {row["channels"] for row in rows.values()} == {""}
    assert {row["optimizer"] for row in rows.values()} == {"adam"}
    assert {row["eps"] for row in rows.values()} == {1e-8}
