"""Offline scene generator: a Blender-format multi-view dataset ray-cast from any mesh.

``render_scene(mesh, out, views=…, size=…, seed=…)`` (the CLI's ``inrlab scene render``):

* the mesh (OBJ, PLY, STL, OFF, GLB …, optionally gzipped) is loaded by
  :func:`inrlab.geometry.load_mesh`, rotated from
  OBJ's Y-up to Blender's Z-up (``up="y"``), centred on its bounding box and scaled so its largest
  half-extent is ``extent`` (default 1: the object fills [-1, 1]³, well inside the NeRF
  ``signal.nerf.bound`` of 1.5);
* it is coloured by a seeded procedural **solid texture** (no UVs needed): a smooth random colour
  field times a 3-D checkerboard of ``texture_frequency`` cells per unit times fine stripes, so the
  images hold high frequencies (what spectral bias is about);
* shading: smooth (barycentric) vertex normals, one directional light with hard shadows (shadow
  rays), ambient term and a Blinn–Phong highlight (view dependent, which the radiance field's view
  branch must model);
* cameras look at the origin from random points of a sphere of radius ``radius`` (azimuth
  uniform, elevation −30° … 80°), horizontal field of view ``camera_angle_x`` (Blender's default
  0.6911 rad); train, val and test cameras are independent draws;
* each pixel averages ``spp``×``spp`` stratified sub-pixel rays (antialiasing): RGBA PNG with
  α = coverage; the pixel-centre ray gives the depth map (distance along the unit ray, ``inf`` on
  the background; ``.npy``) and the world-normal map (PNG, n·0.5 + 0.5, α = hit);
* written: ``transforms_{train,val,test}.json`` (frames also name ``depth_path`` and
  ``normal_path``), ``train/ val/ test/`` images, ``mesh.obj`` (the normalised mesh, in the
  cameras' world frame: exact ground truth for Chamfer distances) and ``scene.json`` (every
  generator setting, the normalisation and the ray-casting backend).

Ray casting uses trimesh's intersector: Embree (``embreex``) when installed, else trimesh's
rtree-based triangle intersector. Measured here on the bunny (56k faces, 16 384 rays, 2 CPU
cores): Embree 0.10 s, rtree 2.06 s; the same hits.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InrlabError
from ...geometry import load_mesh
from .cameras import focal_from_fov, pixel_directions, sphere_poses

BLENDER_FOV = 0.6911112070083618  # 2·atan(18/50): Blender's default 50 mm lens, 36 mm sensor


@dataclass
class SceneSettings:
    """Every setting of a generated scene (written to ``scene.json``)."""

    views: int = 50  # training views
    val_views: int = 5
    test_views: int = 10
    size: int = 64  # image side in pixels (square images)
    seed: int = 0
    spp: int = 2  # spp × spp sub-pixel rays per pixel
    radius: float = 4.0  # camera distance from the origin
    camera_angle_x: float = BLENDER_FOV
    extent: float = 1.0  # largest half-extent of the normalised mesh
    up: str = "y"  # the mesh file's up axis (y: OBJ convention, rotated to Blender's z-up; z: kept)
    texture_frequency: float = 8.0  # checker cells per unit length
    ambient: float = 0.3
    specular: float = 0.25

    def validate(self) -> None:
        for name in ("views", "val_views", "test_views", "size", "spp", "radius", "extent",
                     "texture_frequency"):
            if getattr(self, name) <= 0:
                raise InrlabError(f"scene setting {name}={getattr(self, name)} must be > 0")
        if not 0 < self.camera_angle_x < math.pi:
            raise InrlabError("camera_angle_x must lie in (0, π) radians")
        if self.up not in ("y", "z"):
            raise InrlabError(f"unknown up axis {self.up!r}: choose y (OBJ convention) or z")
        if self.radius <= self.extent * math.sqrt(3):
            raise InrlabError(f"camera radius {self.radius} is inside the object's bounding box "
                              f"(half-extent {self.extent}): raise --radius")
        if not (0 <= self.ambient <= 1 and 0 <= self.specular <= 1):
            raise InrlabError("ambient and specular must lie in [0, 1]")


# --------------------------------------------------------------------------- the mesh


def normalise(mesh: Any, extent: float, up: str) -> tuple[Any, dict[str, Any]]:
    """A copy of ``mesh`` with z up, bounding box centred at 0, largest half-extent ``extent``;
    and the transform applied (``world = scale · (R · v) + shift``)."""
    m = mesh.copy()
    rot = np.eye(3)
    if up == "y":  # (x, y, z) → (x, −z, y): OBJ's +Y becomes +Z
        rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    v = m.vertices @ rot.T
    lo, hi = v.min(0), v.max(0)
    scale = extent / max((hi - lo).max() / 2, 1e-12)
    shift = -(lo + hi) / 2 * scale
    m.vertices = v * scale + shift
    return m, {"rotation": rot.tolist(), "scale": float(scale), "shift": shift.tolist()}


# --------------------------------------------------------------------------- appearance


@dataclass
class Texture:
    """Seeded solid texture: albedo(p) for world points p (N, 3) → (N, 3) in [0, 1]."""

    frequency: float
    low_dirs: np.ndarray  # (3, 3) directions of the smooth colour field, one per channel
    low_phase: np.ndarray  # (3,)
    palette: np.ndarray  # (2, 3) the two checker colours' tints
    stripe_dir: np.ndarray  # (3,) unit direction of the fine stripes
    offset: np.ndarray  # (3,) checker lattice offset

    @classmethod
    def random(cls, frequency: float, rng: np.random.Generator) -> Texture:
        d = rng.normal(size=(3, 3))
        s = rng.normal(size=3)
        return cls(frequency, d / np.linalg.norm(d, axis=1, keepdims=True),
                   rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.35, 1.0, (2, 3)),
                   s / np.linalg.norm(s), rng.uniform(0, 1, 3))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        smooth = 0.65 + 0.35 * np.sin(1.5 * np.pi * p @ self.low_dirs.T + self.low_phase)
        cell = np.floor(self.frequency * p + self.offset).astype(np.int64).sum(1) % 2
        tint = self.palette[cell]
        stripes = 0.8 + 0.2 * np.sin(2 * np.pi * 2.5 * self.frequency * (p @ self.stripe_dir))
        return np.clip(smooth * tint * stripes[:, None], 0, 1)


LIGHT = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])  # towards the sun


class Caster:
    """First hits of rays on a mesh (trimesh's Embree intersector when available, else rtree)."""

    def __init__(self, mesh: Any):
        self.mesh = mesh
        try:
            from trimesh.ray.ray_pyembree import RayMeshIntersector

            self.backend = "embree"
        except ImportError:
            from trimesh.ray.ray_triangle import RayMeshIntersector

            self.backend = "rtree"
        self.intersector = RayMeshIntersector(mesh)

    def first_hits(self, origins: np.ndarray, dirs: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distances t (N,) along unit ``dirs`` (inf: miss), face ids (N,) (−1: miss) and hit
        points (N, 3) (NaN: miss) of rays (N, 3) + (N, 3)."""
        n = len(origins)
        t, face, pts = np.full(n, np.inf), np.full(n, -1), np.full((n, 3), np.nan)
        if n == 0:
            return t, face, pts
        loc, ray, tri = self.intersector.intersects_location(origins, dirs, multiple_hits=False)
        if len(ray):
            pts[ray], face[ray] = loc, tri
            t[ray] = np.einsum("ij,ij->i", loc - origins[ray], dirs[ray])
        return t, face, pts

    def blocked(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """(N,) bool: does each ray hit the mesh at all."""
        if len(origins) == 0:
            return np.zeros(0, dtype=bool)
        return self.intersector.intersects_any(origins, dirs)

    def normals(self, face: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Smooth unit normals (N, 3) at hit points ``pts`` on faces ``face`` (barycentric
        interpolation of the vertex normals)."""
        import trimesh

        tri = self.mesh.triangles[face]
        bary = trimesh.triangles.points_to_barycentric(tri, pts)
        vn = self.mesh.vertex_normals[self.mesh.faces[face]]  # (N, 3, 3)
        n = np.einsum("nk,nkc->nc", bary, vn)
        bad = ~np.isfinite(n).all(1) | (np.linalg.norm(n, axis=1) < 1e-8)
        n[bad] = self.mesh.face_normals[face[bad]]
        return n / np.linalg.norm(n, axis=1, keepdims=True)


def shade(caster: Caster, texture: Texture, origins: np.ndarray, dirs: np.ndarray,
          ambient: float, specular: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Colours (N, 3), hit mask (N,), distances t (N,) and normals (N, 3) of rays (N, 3)+(N, 3)."""
    t, face, pts = caster.first_hits(origins, dirs)
    hit = face >= 0
    rgb = np.zeros((len(t), 3))
    nrm = np.zeros((len(t), 3))
    if hit.any():
        p, d = pts[hit], dirs[hit]
        n = caster.normals(face[hit], p)
        n = np.where((np.einsum("ij,ij->i", n, d) > 0)[:, None], -n, n)  # face the viewer
        lit = ~caster.blocked(p + 1e-4 * n, np.broadcast_to(LIGHT, p.shape).copy())
        diffuse = np.clip(n @ LIGHT, 0, None) * lit
        half = LIGHT - d
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = specular * np.clip(np.einsum("ij,ij->i", n, half), 0, None) ** 32 * lit
        rgb[hit] = np.clip(texture(p) * (ambient + (1 - ambient) * diffuse)[:, None]
                           + spec[:, None], 0, 1)
        nrm[hit] = n
    return rgb, hit, t, nrm


# --------------------------------------------------------------------------- rendering


def render_view(caster: Caster, texture: Texture, c2w: np.ndarray, size: int, focal: float,
                settings: SceneSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One square view: RGBA (S, S, 4) in [0, 1] (straight alpha = coverage), depth (S, S)
    float32 (distance along the unit pixel-centre ray, inf on the background) and world normals
    (S, S, 4) in [0, 1] (n·0.5 + 0.5, α = hit)."""
    s, k = size, settings.spp
    rot, eye = c2w[:3, :3], c2w[:3, 3]
    premult, cover = np.zeros((s * s, 3)), np.zeros(s * s)
    for a in range(k):  # stratified sub-pixel offsets (a + ½)/k in each axis
        for b in range(k):
            d = pixel_directions(s, s, focal).numpy()
            d[..., 0] += ((b + 0.5) / k - 0.5) / focal
            d[..., 1] -= ((a + 0.5) / k - 0.5) / focal
            d = d.reshape(-1, 3) @ rot.T
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            rgb, hit, _, _ = shade(caster, texture, np.broadcast_to(eye, d.shape).copy(), d,
                                   settings.ambient, settings.specular)
            premult += rgb
            cover += hit
    cover /= k * k
    premult /= k * k
    straight = np.where(cover[:, None] > 0, premult / np.maximum(cover, 1e-12)[:, None], 0)
    d = pixel_directions(s, s, focal).numpy().reshape(-1, 3) @ rot.T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    _, hit, t, nrm = shade(caster, texture, np.broadcast_to(eye, d.shape).copy(), d,
                           settings.ambient, settings.specular)
    rgba = np.concatenate([np.clip(straight, 0, 1), cover[:, None]], 1).reshape(s, s, 4)
    normal = np.concatenate([nrm * 0.5 + 0.5, hit[:, None]], 1).reshape(s, s, 4)
    normal[~hit.reshape(s, s)] = 0
    return rgba, t.reshape(s, s).astype(np.float32), normal


def _png(a: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(path)


def render_scene(mesh_path: str | Path, out: str | Path, settings: SceneSettings | None = None,
                 progress: bool = True) -> Path:
    """Write a Blender-format dataset of the mesh at ``mesh_path`` into folder ``out`` (see the
    module docstring). Returns ``out``. Refuses a non-empty ``out`` that is not a scene."""
    from tqdm.auto import tqdm

    st = settings or SceneSettings()
    st.validate()
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "scene.json").exists())):
        raise InrlabError(f"output {str(out)!r} exists and is not a generated scene: choose an "
                          f"empty or new --out")
    mesh, transform = normalise(load_mesh(mesh_path), st.extent, st.up)
    rng = np.random.default_rng(st.seed)
    texture = Texture.random(st.texture_frequency, rng)
    poses = {split: sphere_poses(n, st.radius, rng)
             for split, n in (("train", st.views), ("val", st.val_views),
                              ("test", st.test_views))}
    caster = Caster(mesh)
    focal = focal_from_fov(st.size, st.camera_angle_x)
    total = st.views + st.val_views + st.test_views
    bar = tqdm(total=total, disable=not progress, desc=f"rendering {Path(mesh_path).name}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for split, c2ws in poses.items():
            folder = out / split
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            frames = []
            for k, c2w in enumerate(c2ws):
                rgba, depth, normal = render_view(caster, texture, c2w, st.size, focal, st)
                _png(rgba, folder / f"r_{k}.png")
                _png(normal, folder / f"r_{k}_normal.png")
                np.save(folder / f"r_{k}_depth.npy", depth)
                frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": c2w.tolist(),
                               "depth_path": f"./{split}/r_{k}_depth.npy",
                               "normal_path": f"./{split}/r_{k}_normal.png"})
                bar.update(1)
            (out / f"transforms_{split}.json").write_text(json.dumps(
                {"camera_angle_x": st.camera_angle_x, "frames": frames}, indent=1) + "\n")
        mesh.export(out / "mesh.obj")
        (out / "scene.json").write_text(json.dumps(
            {"generator": "inrlab scene render", "mesh": str(mesh_path), "settings": asdict(st),
             "normalisation": transform, "ray_casting": caster.backend,
             "light_direction": LIGHT.tolist(), "near": st.radius - 2 * st.extent,
             "far": st.radius + 2 * st.extent,
             "faces": int(len(mesh.faces)), "watertight": bool(mesh.is_watertight)},
            indent=1) + "\n")
    except OSError as e:
        raise InrlabError(f"cannot write the scene to {str(out)!r} ({e.strerror}): choose a "
                          f"writable --out") from None
    finally:
        bar.close()
    return out
