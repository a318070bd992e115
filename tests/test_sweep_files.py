"""Every sweep file shipped in configs/sweeps plans (all configs validate) in every tier."""

from pathlib import Path

import pytest

from inrlab.sweep import load_sweep

FILES = sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_shipped_sweep_files_plan(path):
    sweep = load_sweep(path)
    for tier in ("quick", "full"):
        runs = sweep.plan(tier)
        assert runs and len({r.key for r in runs}) == len(runs)
