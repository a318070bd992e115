"""Reader of Blender-format multi-view datasets (the NeRF synthetic scenes, and what
``inrlab scene render`` writes).

A dataset folder holds ``transforms_{train,val,test}.json``, each with ``camera_angle_x``
(horizontal field of view, radians) and ``frames``, a list of ``{"file_path": "./train/r_0",
"transform_matrix": 4×4 camera-to-world, OpenGL axes}``; ``file_path`` names an RGBA PNG (the
``.png`` suffix may be left out, as in the original scenes). Images are composited over a white
(or black) background, rgb·α + bg·(1 − α), and may be shrunk by an integer factor (area average
of the composited colours, focal length divided by the factor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import InrlabError
from ...files import check_file, contained, read_json
from .cameras import check_rigid, focal_from_fov

SPLITS = ("train", "val", "test")


@dataclass
class Views:
    """The views of one split.

    Attributes:
        images: (V, H, W, 3) float32 in [0, 1], composited over the background.
        alpha: (V, H, W) float32 coverage in [0, 1] (1 where the image had no alpha channel).
        c2w: (V, 4, 4) float32 camera-to-world matrices (OpenGL axes).
        focal: focal length in pixels (after downscaling).
        files: the image paths, in frame order.
    """

    images: torch.Tensor
    alpha: torch.Tensor
    c2w: torch.Tensor
    focal: float
    files: list[Path]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def __len__(self) -> int:
        return self.images.shape[0]


def read_transforms(root: Path, split: str) -> dict:
    """The parsed ``transforms_{split}.json`` of ``root``, with its keys checked (read with the
    size cap of :func:`inrlab.files.read_json`)."""
    path = root / f"transforms_{split}.json"
    if not path.exists() and not path.is_symlink():
        raise InrlabError(f"{path} not found: a Blender-format scene needs transforms_train.json, "
                          f"transforms_val.json and transforms_test.json (make one with "
                          f"`inrlab scene render MESH --out DIR`)")
    data = read_json(path, "transforms file")
    if not isinstance(data, dict) or "camera_angle_x" not in data:
        raise InrlabError(f"{path} has no 'camera_angle_x' (horizontal field of view in radians): "
                          f"add it")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InrlabError(f"{path} has no frames: give a non-empty 'frames' list of "
                          f"{{file_path, transform_matrix}}")
    for k, fr in enumerate(frames):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise InrlabError(f"{path}: frame {k} lacks 'file_path' or 'transform_matrix': "
                              f"every frame needs both")
    try:
        fov = float(data["camera_angle_x"])
    except (TypeError, ValueError):
        fov = float("nan")
    if not 0 < fov < np.pi:
        raise InrlabError(f"{path}: camera_angle_x={data['camera_angle_x']!r} must be an angle in "
                          f"(0, π) radians")
    return data


def image_path(root: Path, file_path: object, where: str = "file_path") -> Path:
    """The image a frame's ``file_path`` names (``.png`` appended when it has no suffix),
    resolved inside the scene folder ``root`` or refused (:func:`inrlab.files.contained`)."""
    if isinstance(file_path, str) and file_path and not Path(file_path).suffix:
        file_path += ".png"
    return contained(root, file_path, where)


def load_rgba(path: Path) -> np.ndarray:
    """An image file as (H, W, 4) float32 in [0, 1] (alpha 1 when the file has none)."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists() and not path.is_symlink():
        raise InrlabError(f"image {path} named in the transforms file is missing: restore it or "
                          f"remove its frame")
    check_file(path, "image named in the transforms file")
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError) as e:
        raise InrlabError(f"cannot read image {path} ({e}): give an RGBA PNG") from None
    return a.astype(np.float32) / 255.0


def composite(rgba: np.ndarray, white: bool = True) -> np.ndarray:
    """rgb·α + bg·(1 − α) of (..., 4) colours: (..., 3)."""
    a = rgba[..., 3:4]
    return rgba[..., :3] * a + (1.0 if white else 0.0) * (1 - a)


def shrink(a: np.ndarray, factor: int) -> np.ndarray:
    """Area average of (H, W, C) by an integer ``factor`` (H, W divisible by it)."""
    h, w, c = a.shape
    return a.reshape(h // factor, factor, w // factor, factor, c).mean((1, 3))


def load_views(root: str | Path, split: str, downscale: int = 1, white: bool = True,
               limit: int | None = None) -> Views:
    """Read split ``split`` (train, val or test) of the Blender-format scene in ``root``.

    ``downscale``: integer factor the images (and the focal length) are shrunk by; ``limit``:
    keep only the first frames. Raises :class:`InrlabError` on missing keys, frames or files,
    images of different sizes, sizes the factor does not divide, and non-rigid cameras."""
    root = Path(root)
    if split not in SPLITS:
        raise InrlabError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if downscale < 1:
        raise InrlabError(f"downscale={downscale} is impossible: give an integer ≥ 1")
    data = read_transforms(root, split)
    frames = data["frames"][:limit] if limit else data["frames"]
    images, poses, files = [], [], []
    for k, fr in enumerate(frames):
        path = image_path(root, fr["file_path"], f"transforms_{split}.json frame {k} file_path")
        rgba = load_rgba(path)
        if images and rgba.shape[:2] != images[0].shape[:2]:
            raise InrlabError(f"images of split {split!r} have different sizes ({files[0].name}: "
                              f"{images[0].shape[1]}×{images[0].shape[0]}, {path.name}: "
                              f"{rgba.shape[1]}×{rgba.shape[0]}): resize them to one size")
        h, w = rgba.shape[:2]
        if h % downscale or w % downscale:
            raise InrlabError(f"downscale={downscale} does not divide the {w}×{h} images of "
                              f"{root}: choose a divisor of both sides")
        poses.append(check_rigid(_matrix(fr["transform_matrix"]),
                                 f"{root / f'transforms_{split}.json'} frame {k}"))
        images.append(rgba)
        files.append(path)
    w0 = images[0].shape[1]
    focal = focal_from_fov(w0, float(data["camera_angle_x"])) / downscale
    rgb = np.stack([shrink(composite(im, white), downscale) for im in images])
    alpha = np.stack([shrink(im[..., 3:4], downscale)[..., 0] for im in images])
    return Views(torch.from_numpy(rgb.astype(np.float32)), torch.from_numpy(alpha.astype(np.float32)),
                 torch.from_numpy(np.stack(poses).astype(np.float32)), focal, files)


def _matrix(m: object) -> np.ndarray:
    """A transform_matrix entry as a float64 array (NaN when it is not a nested list of numbers,
    which :func:`check_rigid` then rejects)."""
    try:
        return np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        return np.full((1,), np.nan)
