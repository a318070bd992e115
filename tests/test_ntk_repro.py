"""The reproduction driver on a tiny config; the grid term dominates eigenvalue by eigenvalue."""

import json

import numpy as np
import pytest

from inrlab.errors import InrlabError
from inrlab.ntk.repro import run_config

TOML = """
title = "tiny"
images = ["camera"]
size = 16
points = 16
steps = 4
spectra_at = [0, 4]
references = ["identity"]

[models.identity]
preset = "relu"
set = { "model.width" = 8, "model.depth" = 1 }

[models.mpe]
preset = "mpe"
no_grid = true

[models.mpe.set]
"model.width" = 8
"model.depth" = 1
"model.encoding.levels" = 2
"model.encoding.base_resolution" = 2
"model.encoding.finest_resolution" = 8
"""


def test_repro_driver(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TOML)
    run_config(cfg, tmp_path / "out")
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    spectra = res["images"]["camera"]["mpe"]["spectra"]
    assert set(spectra) == {"step 0", "step 0 no grid", "step 4", "step 4 no grid"}
    for step in (0, 4):
        full = np.array(spectra[f"step {step}"]["eigenvalues"])
        nogrid = np.array(spectra[f"step {step} no grid"]["eigenvalues"])
        # K = K_mlp + K_grid with K_grid PSD: λ_i(K) ≥ λ_i(K_mlp) for every i (Weyl)
        assert np.all(full >= nogrid - 1e-9 * full[0])
        assert full[-1] > nogrid[-1]
    assert "orders_lambda_min_vs_identity" in res["summary"]["mpe"]["spectra"]["step 0"]
    assert "| mpe |" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "camera" / "sorted_step0.png").exists()


def test_repro_bad_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('images = ["camera"]\nbogus = 1\n[models.a]\npreset = "relu"\n')
    with pytest.raises(InrlabError, match="bogus"):
        run_config(cfg, tmp_path / "o")
