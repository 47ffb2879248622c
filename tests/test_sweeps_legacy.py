"""A results folder written by the release before the `network` setting still resumes.

tests/data/legacy is the whole folder that `dqn-sweep run` wrote for its spec.yaml with the code
of that release (its manifest.json records the commit, clean): 2 variants x 2 network sizes x
2 seeds, 300 env steps each. New settings must leave existing trial ids unchanged, so that such
a folder resumes without retraining anything.
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


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.parent != root  # the data files, not the index or manifest
    }


def test_the_legacy_spec_names_the_trials_the_folder_holds() -> None:
    stored = pd.read_parquet(LEGACY / "trials.parquet")
    assert "network" not in stored.columns  # written before the setting existed
    ids = {trial.trial_id for trial in expand(load_spec(LEGACY / "spec.yaml"))}
    assert len(ids) == 8
    assert ids == set(stored["trial_id"])


def test_the_legacy_folder_resumes_without_training_and_keeps_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    before = _digests(folder)
    assert len(before) == 24  # episodes, evals and weights of 8 trials

    code = main(["run", str(LEGACY / "spec.yaml"), "--out", str(tmp_path), "--quiet"])

    assert code == 0
    assert "8 already complete, 0 to train" in capsys.readouterr().out
    assert _digests(folder) == before
    rows = ResultsFolder(folder).read_rows()
    assert len(rows) == 8
    assert {row["network"] for row in rows.values()} == {"mlp"}  # what the old trials ran
