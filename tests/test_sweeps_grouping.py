"""Grouping never shows in the files: a trial's tables and weights are the same bits whether its
seeds trained together in one task or one seed per task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from sweeps.cli import main

pytestmark = pytest.mark.slow  # Ray, training

SPEC = Path(__file__).parent / "data" / "legacy" / "spec.yaml"  # 8 small trials, 2 seeds each


def test_every_column_and_weight_of_a_trial_is_independent_of_its_group(tmp_path: Path) -> None:
    folders = {}
    for size in ("1", "2"):
        out = tmp_path / f"group{size}"
        assert main(["run", str(SPEC), "--out", str(out), "--group-size", size, "--quiet"]) == 0
        folders[size] = out / "legacy"
    alone, grouped = folders["1"], folders["2"]
    trials = pd.read_parquet(grouped / "trials.parquet")
    assert set(trials["group_size"]) == {2}
    assert set(pd.read_parquet(alone / "trials.parquet")["group_size"]) == {1}
    for trial_id in trials["trial_id"]:
        for table in ("episodes", "evals"):
            a = pd.read_parquet(alone / table / f"{trial_id}.parquet").drop(columns="wall_s")
            b = pd.read_parquet(grouped / table / f"{trial_id}.parquet").drop(columns="wall_s")
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        a_weights = torch.load(alone / "models" / f"{trial_id}.pt", weights_only=True)
        b_weights = torch.load(grouped / "models" / f"{trial_id}.pt", weights_only=True)
        for name, tensor in a_weights["state_dict"].items():
            assert torch.equal(b_weights["state_dict"][name], tensor), (trial_id, name)
