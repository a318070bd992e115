"""Pinhole cameras in the Blender/NeRF convention, and the rays through their pixels.

A camera is a 4×4 camera-to-world matrix ``c2w`` with OpenGL axes (the camera looks down its −Z
axis, +Y is up in the image, +X to the right) and a focal length ``f`` in pixels,
f = W / (2·tan(camera_angle_x / 2)). Pixel (row j, column i) is the square [i, i+1) × [j, j+1);
its ray passes through the pixel centre: direction (in camera axes)
((i + 0.5 − W/2)/f, −(j + 0.5 − H/2)/f, −1), rotated into the world by c2w[:3, :3].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import InrlabError


def focal_from_fov(width: int, camera_angle_x: float) -> float:
    """Focal length in pixels of a camera ``width`` pixels wide with horizontal field of view
    ``camera_angle_x`` (radians)."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def check_rigid(c2w: np.ndarray, what: str, tol: float = 1e-3) -> np.ndarray:
    """``c2w`` as a (4, 4) float64 array after checking it is a rigid transform: finite, bottom
    row (0, 0, 0, 1), rotation block orthonormal with determinant +1 (within ``tol``)."""
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0, 0, 0, 1]])
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InrlabError(f"{what}: transform_matrix must be a finite 4×4 matrix, got shape "
                          f"{m.shape}: fix the transforms file")
    r = m[:3, :3]
    if (np.abs(m[3] - [0, 0, 0, 1]).max() > tol or np.abs(r.T @ r - np.eye(3)).max() > tol
            or abs(np.linalg.det(r) - 1) > tol):
        raise InrlabError(f"{what}: transform_matrix is not a rigid camera-to-world transform "
                          f"(rotation block not orthonormal with det +1, or bottom row not 0 0 0 1): "
                          f"fix the transforms file (scale belongs in the scene, not the camera)")
    return m


def pixel_directions(height: int, width: int, focal: float) -> torch.Tensor:
    """Camera-frame directions (H, W, 3) float64 through the pixel centres (z = −1, not unit)."""
    j, i = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                          torch.arange(width, dtype=torch.float64), indexing="ij")
    return torch.stack([(i + 0.5 - width / 2) / focal, -(j + 0.5 - height / 2) / focal,
                        -torch.ones_like(i)], -1)


def camera_rays(c2w: torch.Tensor, height: int, width: int,
                focal: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (V, H, W, 3) float32 of the rays of cameras ``c2w`` (V, 4, 4)
    through every pixel centre."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    d = pixel_directions(height, width, focal)  # (H, W, 3)
    dirs = torch.einsum("vab,hwb->vhwa", c2w[:, :3, :3], d)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins.float().contiguous(), dirs.float().contiguous()


def project(points: np.ndarray, c2w: np.ndarray, height: int, width: int,
            focal: float) -> np.ndarray:
    """Continuous pixel coordinates (N, 2) = (column x, row y) of world ``points`` (N, 3) seen by
    camera ``c2w`` (4, 4); the centre of pixel (j, i) is (i + 0.5, j + 0.5). Independent of
    :func:`camera_rays` (inverts the camera instead of rotating directions), for checks."""
    w2c = np.linalg.inv(np.asarray(c2w, np.float64))
    p = (np.c_[points, np.ones(len(points))] @ w2c.T)[:, :3]
    depth = -p[:, 2]
    return np.stack([focal * p[:, 0] / depth + width / 2, -focal * p[:, 1] / depth + height / 2], 1)


def look_at(eye: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world (4, 4) of a camera at ``eye`` looking at ``target`` (default the origin;
    OpenGL axes, world +Z up as in Blender). A camera straight above or below the target uses
    world +Y as up."""
    eye = np.asarray(eye, np.float64)
    up = np.array([0.0, 0.0, 1.0])
    back = eye - (np.zeros(3) if target is None else np.asarray(target, np.float64))
    back /= np.linalg.norm(back)
    if abs(back @ up) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
    return m


def sphere_poses(n: int, radius: float, rng: np.random.Generator,
                 min_elevation: float = -30.0, max_elevation: float = 80.0) -> np.ndarray:
    """``n`` camera-to-world matrices (n, 4, 4) looking at the origin from random points of a
    sphere of ``radius``: azimuth uniform, elevation (degrees) uniform in sin over the band."""
    az = rng.uniform(0, 2 * np.pi, n)
    s = rng.uniform(math.sin(math.radians(min_elevation)), math.sin(math.radians(max_elevation)), n)
    el = np.arcsin(s)
    eyes = radius * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    return np.stack([look_at(e) for e in eyes])


def turntable_poses(n: int, radius: float, elevation: float = 30.0) -> np.ndarray:
    """``n`` cameras (n, 4, 4) on a circle of ``radius`` at ``elevation`` degrees, looking at the
    origin, azimuth 0 … 2π(1 − 1/n)."""
    el = math.radians(elevation)
    az = 2 * np.pi * np.arange(n) / n
    eyes = radius * np.stack([math.cos(el) * np.cos(az), math.cos(el) * np.sin(az),
                              np.full(n, math.sin(el))], 1)
    return np.stack([look_at(e) for e in eyes])
