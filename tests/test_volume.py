"""Occupancy and SDF problems against analytic shapes; chunked evaluation; bad inputs."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")

import inrlab  # noqa: E402
from inrlab import geometry as geo  # noqa: E402
from inrlab.config import SignalConfig, VolumeConfig  # noqa: E402
from inrlab.errors import InrlabError  # noqa: E402
from inrlab.problems import load_problem  # noqa: E402
from inrlab.problems.volume import (  # noqa: E402
    FULL_BATCH_LIMIT,
    SPHERE_RADIUS,
    Occupancy,
    heldout_mask,
    resample,
)
from inrlab.techniques.iga import grid_groups  # noqa: E402


def box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def sig(name: str, **volume) -> SignalConfig:
    c = SignalConfig(name)
    for k, v in volume.items():
        setattr(c.volume, k, v)
    return c


@pytest.fixture(scope="module")
def box_path(tmp_path_factory):
    """A 0.9 × 0.6 × 1.8 box (after normalization: half extents 0.45, 0.3, 0.9) as an OBJ."""
    p = tmp_path_factory.mktemp("mesh") / "box.obj"
    p.write_text(trimesh.creation.box(extents=[0.9, 0.6, 1.8]).export(file_type="obj"))
    return p


def test_occupancy_from_mesh_matches_the_analytic_box(box_path):
    prob = load_problem(sig(f"occ:{box_path}", size=20))
    truth = box_sdf(geo.grid_points((20, 20, 20)), np.array([0.45, 0.3, 0.9])) < 0
    assert geo.iou(prob.volume.numpy().ravel(), truth) == 1.0
    assert prob.measurement_shape == (20, 20, 20) and prob.gt_mesh is not None


def test_analytic_sphere_volume_and_coordinates():
    prob = load_problem(sig("occ:sphere", size=16))
    idx = torch.arange(prob.n_measurements)
    x = prob.points(idx)
    np.testing.assert_allclose(x.numpy(), geo.grid_points((16, 16, 16)), atol=1e-6)
    assert torch.equal(prob.flat, x.norm(dim=1) < SPHERE_RADIUS)


def test_heldout_split_and_sampling():
    prob = load_problem(sig("occ:sphere", size=24))
    ho = heldout_mask(torch.arange(prob.n_measurements), 0.1, 0)
    assert abs(float(ho.float().mean()) - 0.1) < 0.01
    assert prob.n_train == int((~ho).sum()) == len(prob.train_idx)
    s = prob.sample(5000, torch.Generator().manual_seed(0))
    assert len(s) == 5000 and not prob.is_heldout(s).any()
    b = prob.batch(s[:10])
    assert b.x.shape == (10, 3) and b.y.shape == (10, 1)


def test_loss_is_bce_and_residual_its_gradient():
    prob = load_problem(sig("occ:sphere", size=8))
    pred = torch.randn(50, 1, requires_grad=True)
    y = (torch.rand(50, 1) > 0.5).float()
    prob.loss(pred, y).backward()
    torch.testing.assert_close(pred.grad * 50, prob.residual(pred.detach(), y))


def tiny_model() -> torch.nn.Module:
    from inrlab.config import ModelConfig
    from inrlab.models import build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(width=16, depth=2), 3, 1)


def test_chunked_evaluation_equals_unchunked():
    model = tiny_model()
    a = load_problem(sig("occ:sphere", size=12, chunk=7, mesh_size=0))
    b = load_problem(sig("occ:sphere", size=12, chunk=10 ** 6, mesh_size=0))
    ma, mb = a.evaluate(model), b.evaluate(model)
    assert ma == mb
    x = a.points(torch.arange(a.n_measurements))
    occ = (model(x)[:, 0] > 0).detach()
    ho = a.is_heldout(torch.arange(a.n_measurements))
    gt = a.flat
    tr = ~ho
    assert ma["iou_train"] == pytest.approx(float((occ & gt & tr).sum() / ((occ | gt) & tr).sum()))
    assert ma["iou_heldout"] == pytest.approx(float((occ & gt & ho).sum() / ((occ | gt) & ho).sum()))
    # a subset of voxels (periodic evaluations), repeats included, against the direct count
    sub = torch.randint(a.n_measurements, (500,), generator=torch.Generator().manual_seed(1))
    ms = a.iou_counts(model, sub)
    o, g, h = occ[sub], gt[sub], ho[sub]
    assert ms["eval_voxels"] == 500
    assert ms["iou_train"] == pytest.approx(float((o & g & ~h).sum() / ((o | g) & ~h).sum()))
    assert ms["iou_heldout"] == pytest.approx(float((o & g & h).sum() / ((o | g) & h).sum()))


def test_evaluation_chunk_defaults_by_device():
    """signal.volume.chunk None: cache-sized chunks on a CPU, large ones on a GPU; the same IoU."""
    from inrlab.problems.volume import CPU_CHUNK, GPU_CHUNK, eval_chunk

    assert VolumeConfig().chunk is None
    assert eval_chunk(None, torch.device("cpu")) == CPU_CHUNK == 4096
    assert eval_chunk(None, torch.device("cuda")) == GPU_CHUNK
    assert eval_chunk(100, torch.device("cuda")) == 100
    with pytest.raises(InrlabError, match="chunk"):
        eval_chunk(0, torch.device("cpu"))
    model = tiny_model()
    a = load_problem(sig("occ:sphere", size=20, mesh_size=0))  # 8 000 voxels: two CPU chunks
    b = load_problem(sig("occ:sphere", size=20, chunk=10 ** 6, mesh_size=0))
    assert a.evaluate(model) == b.evaluate(model)


def test_mat_zip_npy_crop_and_resample(tmp_path):
    from scipy.io import savemat

    i, j, k = np.mgrid[:40, :40, :40]
    vol = ((i - 20) ** 2 + (j - 18) ** 2 / 0.5 + (k - 21) ** 2 <= 100).astype(np.uint8) * 255
    savemat(tmp_path / "v.mat", {"hypercube": vol})
    with zipfile.ZipFile(tmp_path / "v.mat.zip", "w") as z:
        z.write(tmp_path / "v.mat", "v.mat")
    np.save(tmp_path / "v.npy", vol > 0)
    for name in ("v.mat", "v.mat.zip", "v.npy"):
        prob = load_problem(sig(f"occ:{tmp_path / name}"))
        assert prob.measurement_shape == (21, 15, 21) == tuple(prob.meta["cropped_shape"])
        assert int(prob.volume.sum()) == int((vol > 0).sum())
    full = load_problem(sig(f"occ:{tmp_path / 'v.npy'}", crop=False, size=20))
    assert full.measurement_shape == (20, 20, 20)
    blocks = (vol > 0).reshape(20, 2, 20, 2, 20, 2).mean((1, 3, 5)) >= 0.5
    assert torch.equal(full.volume, torch.from_numpy(blocks))
    odd = resample(vol > 0, 15)  # non-integer factor: trilinear
    assert odd.shape == (15, 15, 15) and abs(odd.mean() - (vol > 0).mean()) < 0.01


def test_full_batch_refused_for_huge_volumes_and_default_batch():
    n = int(round((FULL_BATCH_LIMIT * 1.2) ** (1 / 3)))
    vol = np.zeros((n, n, n), bool)
    vol[: n // 2] = True
    prob = Occupancy(vol, "big")
    with pytest.raises(InrlabError, match="train.batch_size"):
        prob.full_batch()
    assert prob.default_batch_size is not None


def test_sdf_points_match_the_analytic_box(box_path):
    prob = load_problem(sig(f"sdf:{box_path}", points=3000))
    truth = box_sdf(prob.x.numpy().astype(np.float64), np.array([0.45, 0.3, 0.9]))
    np.testing.assert_allclose(prob.y[:, 0].numpy(), truth, atol=1e-6)
    n_s = round(3000 * 0.4)
    assert np.abs(truth[:n_s]).max() < 1e-6  # surface samples


def test_sdf_eikonal_operator_returns_the_gradient_norm():
    prob = load_problem(sig("sdf:sphere", points=500, eikonal=0.1))
    lin = torch.nn.Linear(3, 1)
    b = prob.batch(torch.arange(20))
    m = prob.forward(lin(b.x), b)
    assert m.shape == (20, 2)
    torch.testing.assert_close(m[:, 1], lin.weight.norm().expand(20))
    assert prob.loss(m, b.y).requires_grad


def test_iga_3d_groups_are_neighbour_blocks_and_runs():
    g = grid_groups((4, 4, 4), 2)
    assert g.shape == (8, 8)
    x = load_problem(sig("occ:sphere", size=4)).points(g[3])
    assert (x.max(0).values - x.min(0).values).allclose(torch.full((3,), 2 / 3))
    runs = grid_groups((8, 8, 8), 256, "run")
    assert runs.shape == (2, 256) and torch.equal(runs[1], torch.arange(256, 512))
    with pytest.raises(InrlabError, match="does not divide"):
        grid_groups((10, 10, 10), 256, "run")
    assert grid_groups((10, 10, 10), 256, "run", tail=True).shape == (3, 256)  # 232 left out


def test_occupancy_fit_end_to_end(tmp_path):
    res = inrlab.fit("occ:sphere", "mpe", steps=40, progress=False, out=tmp_path / "run",
                     overrides={"signal.volume.size": 20, "signal.volume.mesh_size": 20,
                                "model.encoding.finest_resolution": 32, "train.eval_every": 20})
    # a grid finer than the volume memorises: held-out voxels score lower than training ones
    assert res.metrics["iou_train"] > 0.95 and res.metrics["iou_heldout"] > 0.7
    assert res.metrics["chamfer"] < 0.1
    for f in ("reconstruction.ply", "surface.png", "slices.png", "summary.png"):
        assert (tmp_path / "run" / f).stat().st_size > 0


def test_iga_trains_on_occupancy(tmp_path):
    res = inrlab.fit("occ:sphere", "relu", steps=8, progress=False,
                     overrides={"signal.volume.size": 16, "signal.volume.mesh_size": 0,
                                "model.width": 32, "model.depth": 2, "train.technique": "iga",
                                "train.iga.group": 64, "train.iga.layout": "run",
                                "train.iga.end": 7, "train.batch_size": 1024,
                                "train.eval_every": 4})
    assert res.metrics["iou_train"] is not None


def test_bad_volume_inputs(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "k.mat", {"vol": np.ones((3, 3, 3))})
    with pytest.raises(InrlabError, match="keys found: vol"):
        load_problem(sig(f"occ:{tmp_path / 'k.mat'}"))
    np.save(tmp_path / "flat.npy", np.ones((4, 4)))
    with pytest.raises(InrlabError, match="3-D array"):
        load_problem(sig(f"occ:{tmp_path / 'flat.npy'}"))
    np.save(tmp_path / "empty.npy", np.zeros((4, 4, 4)))
    with pytest.raises(InrlabError, match="empty"):
        load_problem(sig(f"occ:{tmp_path / 'empty.npy'}"))
    np.save(tmp_path / "full.npy", np.ones((4, 4, 4)))
    with pytest.raises(InrlabError, match="occupied everywhere"):
        load_problem(sig(f"occ:{tmp_path / 'full.npy'}"))
    with pytest.raises(InrlabError, match="chunk"):
        VolumeConfig(chunk=0).validate()
    with pytest.raises(InrlabError, match="not found"):
        load_problem(sig("occ:/nope/x.npy"))
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces)) > 0)
    (tmp_path / "open.obj").write_text(open_box.export(file_type="obj"))
    with pytest.raises(InrlabError, match="not watertight.*winding"):
        load_problem(sig(f"occ:{tmp_path / 'open.obj'}", size=8))
    prob = load_problem(sig(f"occ:{tmp_path / 'open.obj'}", size=6, inside="winding"))
    assert prob.volume.any()


@pytest.mark.skipif(inrlab.data.data_dir() is None, reason="benchmark data ($INRLAB_DATA) absent")
def test_thai_statue_loads_cropped():
    prob = load_problem(sig("occ:thai", size=64))
    assert prob.meta["cropped_shape"] == [304, 512, 262]
    assert max(prob.measurement_shape) == 64


@pytest.mark.slow
def test_sdf_fit_end_to_end(tmp_path):
    res = inrlab.fit("sdf:sphere", "relu", steps=30, progress=False, out=tmp_path / "run",
                     overrides={"signal.volume.points": 2000, "signal.volume.mesh_size": 16,
                                "signal.volume.eikonal": 0.1, "model.width": 32,
                                "model.depth": 2, "train.lr": 5e-3, "train.eval_every": 15})
    first = res.history[0]["sdf_l1_train"]
    assert res.metrics["sdf_l1_train"] < first and res.metrics["sdf_l1_heldout"] is not None
    assert 0 <= res.metrics["iou"] <= 1 and "chamfer" in res.metrics
    for f in ("reconstruction.ply", "surface.png", "slices.png", "summary.png"):
        assert (tmp_path / "run" / f).exists()
