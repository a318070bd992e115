"""inrlab.geometry against analytic shapes: a box mesh is exact (inside test, SDF), a sphere
checks marching cubes, Chamfer and normal consistency."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")

from inrlab import geometry as g  # noqa: E402
from inrlab.errors import InrlabError  # noqa: E402


def box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Analytic signed distance (P,) of points (P, 3) to the axis-aligned box [−half, half]."""
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


@pytest.fixture(scope="module")
def box():
    half = np.array([0.5, 0.3, 0.7])
    return trimesh.creation.box(extents=2 * half), half


def test_box_inside_and_sdf_are_exact(box):
    mesh, half = box
    p = np.random.default_rng(0).uniform(-1, 1, (4000, 3))
    truth = box_sdf(p, half)
    p, truth = p[np.abs(truth) > 1e-6], truth[np.abs(truth) > 1e-6]
    assert np.array_equal(g.inside(mesh, p), truth < 0)
    assert np.array_equal(g.inside(mesh, p[:300], "winding"), truth[:300] < 0)
    np.testing.assert_allclose(g.signed_distance(mesh, p), truth, atol=1e-9)


def test_box_occupancy_grid_iou_is_exact(box):
    mesh, half = box
    occ = g.occupancy_grid(mesh, 21)
    truth = (box_sdf(g.grid_points((21, 21, 21)), half) < 0).reshape(21, 21, 21)
    assert g.iou(occ, truth) == 1.0


def test_sphere_marching_cubes_chamfer_and_normals():
    n = 64
    p = g.grid_points((n, n, n))
    r = 0.6
    vol = (r - np.linalg.norm(p, axis=1)).reshape(n, n, n)  # SDF, positive inside
    mc = g.marching_cubes(vol, level=0.0)
    radii = np.linalg.norm(mc.vertices, axis=1)
    assert np.abs(radii - r).max() < 2e-3  # linear interpolation of an exact SDF
    assert mc.is_watertight and mc.volume > 0  # normals point outwards
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=r)
    m = g.chamfer_normal_consistency(mc, sphere, n=20_000)
    floor = g.chamfer_normal_consistency(sphere, sphere, n=20_000)  # sampling noise alone
    assert m["chamfer"] < floor["chamfer"] + 1e-3 and m["normal_consistency"] > 0.99
    shifted = sphere.copy()
    shifted.apply_translation([0.1, 0, 0])
    far = g.chamfer_normal_consistency(shifted, sphere, n=20_000)
    assert far["chamfer"] > 0.04  # a 0.1 shift is seen


def test_marching_cubes_without_crossing_is_empty():
    assert len(g.marching_cubes(np.zeros((8, 8, 8))).faces) == 0
    assert g.chamfer_normal_consistency(g.marching_cubes(np.zeros((8, 8, 8))),
                                        trimesh.creation.box())["chamfer"] == float("inf")


def test_load_gz_normalize_export_and_render(tmp_path, box):
    mesh, _ = box
    (tmp_path / "b.obj.gz").write_bytes(gzip.compress(mesh.export(file_type="obj").encode()))
    m = g.normalize_mesh(g.load_mesh(tmp_path / "b.obj.gz"))
    assert m.is_watertight
    np.testing.assert_allclose(m.bounds[1, 2], 0.9)
    ply = g.export_ply(m, tmp_path / "m.ply")
    assert len(g.load_mesh(ply).faces) == len(m.faces)
    img = g.render_views(m, tmp_path / "views.png", size=32)
    assert img.shape == (32, 96, 3) and (tmp_path / "views.png").stat().st_size > 0
    assert img.min() < 0.9  # the box is drawn in every view
    for k in range(3):
        assert (img[:, 32 * k:32 * (k + 1)] < 0.99).any()


def test_bad_meshes(tmp_path):
    with pytest.raises(InrlabError, match="not found"):
        g.load_mesh(tmp_path / "nope.obj")
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(InrlabError, match="no triangles|cannot read"):
        g.load_mesh(tmp_path / "bad.obj")
    (tmp_path / "x.xyz").write_text("")
    with pytest.raises(InrlabError, match="unknown type"):
        g.load_mesh(tmp_path / "x.xyz")
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces)) > 0)
    with pytest.raises(InrlabError, match="not watertight.*winding"):
        g.inside(open_box, np.zeros((1, 3)))
    assert g.inside(open_box, np.zeros((1, 3)), "winding")[0]  # one missing triangle: still inside
