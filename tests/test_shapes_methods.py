"""Every method on 3-D problems (smoke): grid encodings, activations, norms, FR, IGA, FreSh and
the eNTK on occupancy volumes and video."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trimesh")

import inrlab  # noqa: E402
from inrlab.config import ACTIVATIONS, NORMS, SignalConfig  # noqa: E402
from inrlab.problems import load_problem  # noqa: E402

SMALL = {"signal.volume.size": 10, "signal.volume.mesh_size": 0, "model.width": 16,
         "model.depth": 2, "train.eval_every": 2}


def fit(preset: str, steps: int = 2, signal: str = "occ:sphere", **over):
    return inrlab.fit(signal, preset, steps=steps, progress=False, overrides={**SMALL, **over})


@pytest.mark.parametrize("preset", ["mpe", "hash", "pe", "ffe", "siren"])
def test_encodings_in_3d(preset):
    over = {"model.encoding.finest_resolution": 16, "model.encoding.base_resolution": 4,
            **({"model.encoding.log2_table_size": 8} if preset == "hash" else {})} \
        if preset in ("mpe", "hash") else {}
    res = fit(preset, **over)
    assert res.model.encoding.__class__.__name__ != "" and res.metrics["iou_train"] is not None


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations_in_3d(act):
    assert fit("relu", **{"model.activation.kind": act}).metrics["eval_voxels"] == 1000


@pytest.mark.parametrize("norm", NORMS)
def test_norms_in_3d(norm):
    res = fit("pe", **{"model.norm": norm, "train.batch_size": 256})
    assert res.metrics["iou_heldout"] is not None


def test_fr_in_3d():
    assert fit("relu", **{"train.technique": "fr"}).metrics["iou_train"] is not None


def test_iga_paper_grouping_in_3d():
    """Runs of 256 voxels, one centre representative each (the paper's 3-D setting)."""
    res = fit("relu", signal="occ:sphere", **{"signal.volume.size": 16, "train.technique": "iga",
                                               "train.iga.group": 256, "train.iga.layout": "run",
                                               "train.iga.representative": "centre",
                                               "train.iga.end": 7, "train.batch_size": 256 * 12})
    assert res.metrics["iou_train"] is not None


def test_iga_on_video():
    res = fit("relu", signal="video:gif", **{"train.technique": "iga", "train.iga.group": 14,
                                             "train.iga.layout": "run",
                                             "signal.video.frames": 8, "train.iga.end": 5,
                                             "train.batch_size": 512})
    assert res.metrics["psnr_train"] > 0


def test_entk_on_volume_points():
    from inrlab.config import preset
    from inrlab.models import build_model
    from inrlab.ntk import kernel
    from inrlab.ntk.points import sample_points

    c = SignalConfig("occ:sphere")
    c.volume.size = 12
    prob = load_problem(c)
    idx, _ = sample_points(prob, 40, "random", 0)
    model = build_model(preset("relu").model, 3, 1)
    k = prob.kernel(model, idx)
    assert k.shape == (40, 40)
    torch.testing.assert_close(k, kernel(model, prob.points(idx), method="jacobian",
                                         dtype=torch.float64), rtol=1e-6, atol=1e-8)


def test_regular_entk_points_on_a_volume():
    """``sample_points(…, "regular")`` on a volume: a 3-D sub-grid (aspect kept, ≤ n points, evenly
    spaced along every axis, corners included) whose eigenvector frequencies can be read."""
    from inrlab.config import preset
    from inrlab.ntk.compare import model_spectrum
    from inrlab.ntk.points import regular_subgrid, sample_points

    vol = torch.zeros(20, 40, 30, dtype=torch.bool)
    vol[5:15, 10:30, 8:22] = True
    from inrlab.problems.volume import Occupancy

    prob = Occupancy(vol.numpy(), "box", heldout=0.1)
    idx, shape = sample_points(prob, 200, "regular")
    assert shape == (4, 8, 6) and len(idx) == 192 == len(torch.unique(idx))
    ijk = torch.stack([idx // 1200, idx // 30 % 40, idx % 30], 1)
    for ax, (n, m) in enumerate(zip((20, 40, 30), shape, strict=True)):
        vals = torch.unique(ijk[:, ax])
        assert len(vals) == m and vals[0] == 0 and vals[-1] == n - 1
    assert torch.equal(idx, sample_points(prob, 200, "regular", seed=5)[0])  # seed-free
    assert regular_subgrid((64, 64, 64), 256) == (6, 6, 7)
    assert regular_subgrid((64, 48), 100) == (12, 8)  # 2-D: h = round(√(n·H/W)), w = n // h
    for grid in [(3, 100, 100), (4, 2, 100), (10, 10, 10), (2, 5, 300)]:
        for n in (1, 7, 64, 299, 600):
            sub = regular_subgrid(grid, n)
            assert all(1 <= m <= g for m, g in zip(sub, grid, strict=True))
            assert sub[0] * sub[1] * sub[2] <= n
    model = prob.build_model(preset("relu").model)
    r = model_spectrum(model, (prob, idx), shape, n_vectors=4)
    assert len(r["mean_frequency"]) == 4 and r["band_energy"].shape == (4, 8)


def test_fresh_on_volume_and_video():
    from inrlab.fresh.select import select

    c = SignalConfig("occ:sphere")
    c.volume.size, c.volume.reference_size = 16, 16
    r = select(load_problem(c), "siren", "model.activation.omega0_first", [10.0, 30.0],
               inits=2, bins=4)
    assert len(r.ranking()) == 2
    v = SignalConfig("video:gif")
    r = select(load_problem(v), "siren", "model.activation.omega0_first", [10.0, 30.0],
               inits=2, bins=4)
    assert len(r.ranking()) == 2


def test_bench_shapes_times_steps_and_a_fraction_of_the_evaluation(tmp_path):
    """``inrlab bench shapes``: one preset's step, and the evaluation of the central 4 of 16 slabs
    with a chosen MLP, in the device's default chunk; wall and CPU rates and peak memory."""
    import json

    from inrlab.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", "shapes", "--presets", "relu", "--batch", "64", "--repeats", "1",
                 "--eval-signal", "occ:sphere", "--eval-size", "16", "--eval-slabs", "4",
                 "--eval-preset", "relu", "--eval-width", "16", "--eval-depth", "1",
                 "--device", "cpu", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["rows"][0]["preset"] == "relu" and data["rows"][0]["points_per_s"] > 0
    ev = data["evaluation"]
    assert ev["voxels"] == 4 * 16 * 16 and ev["shape"] == "4×16×16" and ev["of_shape"] == "16×16×16"
    assert (ev["width"], ev["depth"], ev["chunk"]) == (16, 1, 4096)
    assert ev["voxels_per_s"] > 0 and ev["voxels_per_cpu_s"] > 0
    assert ev["peak_rss_end_mb"] >= ev["peak_rss_loaded_mb"] > 0


def test_entk_spectra_callback_on_a_volume():
    """The sweep callback ``entk_spectra`` on an occupancy volume (regular 3-D sub-grid)."""
    from types import SimpleNamespace

    from inrlab.config import preset
    from inrlab.sweep.jobs import EntkSpectra

    c = SignalConfig("occ:sphere")
    c.volume.size = 12
    prob = load_problem(c)
    cfg = preset("relu")
    cfg.model.width = 16
    trainer = SimpleNamespace(problem=prob, model=prob.build_model(cfg.model), cfg=cfg, out=None)
    cb = EntkSpectra(27, "regular", [0], False)
    cb.on_step(trainer, 0)
    metrics: dict = {}
    cb.on_end(trainer, metrics)
    rec = metrics["spectra"]["step 0"]
    assert len(rec["eigenvalues"]) == 27 and len(rec["mean_frequency"]) == 8
