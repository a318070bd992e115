"""Ground-truth objects of the inverse problems (CT, MRI): a phantom, a DICOM slice or an image,
as a continuous 2-D object on [-R, R]² sampled on any grid.

Sources (the part after ``ct:`` / ``mri:``): ``shepp_logan`` (scikit-image's 400² phantom),
``dicom_ct`` / ``dicom_mr`` (the CT_small.dcm / MR_small.dcm slices that ship inside pydicom's
wheel), a ``.dcm`` path, or any image file Pillow reads (converted to gray). Values are scaled to
[0, 1]; a non-square image is zero-padded to a square (recorded in the description).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InrlabError
from ..models import predict
from ..train.metrics import psnr, ssim
from .base import Problem

NAMED = {"shepp_logan": "scikit-image shepp_logan_phantom()",
         "dicom_ct": "pydicom test file CT_small.dcm",
         "dicom_mr": "pydicom test file MR_small.dcm"}


def _dicom(path: str, label: str) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as e:
        raise InrlabError(f"cannot read DICOM {label!r} ({e}): give a valid .dcm file") from None
    if "PixelData" not in ds:
        raise InrlabError(f"DICOM {label!r} holds no image (no PixelData): give a DICOM image slice")
    try:
        a = ds.pixel_array.astype(np.float64)
    except Exception as e:  # noqa: BLE001  (pydicom raises many types for unsupported encodings)
        raise InrlabError(f"cannot decode the image of DICOM {label!r} ({e}): give an uncompressed "
                          f"slice") from None
    if a.ndim != 2:
        raise InrlabError(f"DICOM {label!r} holds a {a.ndim}-D pixel array {a.shape}: give a single "
                          f"2-D slice")
    return a * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)


def load_source(source: str, kind: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The ground truth named ``source`` as a square (S, S) float64 array in [0, 1], and a
    description for ``problem.meta``. ``kind`` (``ct``/``mri``) only names the problem in errors."""
    info: dict[str, Any] = {"source": source}
    if source == "shepp_logan":
        from skimage.data import shepp_logan_phantom

        a = shepp_logan_phantom().astype(np.float64)
    elif source in ("dicom_ct", "dicom_mr"):
        from pydicom.data import get_testdata_file

        path = get_testdata_file("CT_small.dcm" if source == "dicom_ct" else "MR_small.dcm")
        if path is None:
            raise InrlabError(f"pydicom's bundled {source} slice is missing: reinstall pydicom>=2.4")
        a = _dicom(str(path), source)
    elif source.lower().endswith(".dcm"):
        if not Path(source).is_file():
            raise InrlabError(f"DICOM file {source!r} not found: check the path")
        a = _dicom(source, source)
    elif Path(source).suffix or "/" in source:
        from .image import load_array

        a = load_array(source).astype(np.float64)
        if a.ndim == 3:
            a = a[..., :3].mean(-1) if a.shape[2] >= 3 else a[..., 0]
    else:
        raise InrlabError(f"unknown {kind} source {source!r}: choose one of "
                          f"{', '.join(f'{kind}:{n}' for n in NAMED)}, or {kind}:PATH to an image or "
                          f".dcm file")
    info["described"] = NAMED.get(source, "file")
    if a.ndim != 2 or min(a.shape) < 8:
        raise InrlabError(f"{kind} source {source!r} has shape {a.shape}: need a 2-D image of at least "
                          f"8×8 pixels")
    if not np.all(np.isfinite(a)):
        raise InrlabError(f"{kind} source {source!r} has NaN or inf pixels: clean the image")
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        raise InrlabError(f"{kind} source {source!r} is constant: nothing to reconstruct")
    a = (a - lo) / (hi - lo)
    info["source_shape"] = list(a.shape)
    h, w = a.shape
    if h != w:
        s = max(h, w)
        pad = ((s - h) // 2, s - h - (s - h) // 2), ((s - w) // 2, s - w - (s - w) // 2)
        a = np.pad(a, pad)
        info["padded_to_square"] = [s, s]
    return a, info


def sample_object(src: np.ndarray, positions: np.ndarray, extent: float) -> np.ndarray:
    """The continuous object whose pixels are ``src`` (S, S) covering [-extent, extent]² (pixel
    areas), sampled at the square grid ``positions`` × ``positions`` (physical coordinates, rows
    then columns): (len, len) float64. Bilinear interpolation of ``src`` after a Gaussian
    anti-aliasing filter when the grid is coarser than the source (σ = (ratio − 1)/2 source
    pixels, scikit-image's rule); zero outside the extent."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    s = src.shape[0]
    pixel = 2 * extent / s
    step = float(positions[1] - positions[0]) if len(positions) > 1 else pixel
    ratio = step / pixel
    a = gaussian_filter(src, (ratio - 1) / 2, mode="constant") if ratio > 1 else src
    idx = (positions + extent) / pixel - 0.5
    rr, cc = np.meshgrid(idx, idx, indexing="ij")
    return map_coordinates(a, [rr, cc], order=1, mode="constant", cval=0.0)


def grid_points(n: int) -> np.ndarray:
    """Pixel centres of the N-pixel reconstruction grid: linspace(-1, 1, N) (the image problems'
    coordinates); pixel spacing h = 2/(N − 1), object extent R = 1 + h/2."""
    return np.linspace(-1.0, 1.0, n)


def default_size(size: int | None, src: np.ndarray) -> int:
    """The reconstruction grid side: ``signal.size``, else the source's side capped at 128."""
    n = size if size is not None else min(128, src.shape[0])
    if n < 8:
        raise InrlabError(f"signal.size={n} is too small for an inverse problem: use ≥ 8")
    return int(n)


def image_scores(pred: np.ndarray, truth: np.ndarray, structural: bool = True,
                 prefix: str = "") -> dict[str, float | None]:
    """PSNR (data range 1) and SSIM of an (N, N) image against the truth in [0, 1]."""
    out: dict[str, float | None] = {f"{prefix}psnr": psnr(pred, truth, 1.0)}
    if structural:
        out[f"{prefix}ssim"] = ssim(pred, truth) if min(truth.shape) >= 11 else None
    return out


class ImageInverse(Problem):
    """What CT and MRI share: an N×N real image (the field) on pixel centres ``coords`` (N², 2),
    a ground truth ``truth`` (N, N) in [0, 1] and baseline reconstructions ``baselines``
    ({name: (N, N)}) scored beside the INR. Subclasses call :meth:`_image_grid` in ``__init__``."""

    in_dim, out_dim = 2, 1
    linear = True
    outputs = ("reconstruction.png", "reconstruction.npy", "summary.png")
    n: int
    coords: torch.Tensor
    truth: np.ndarray
    baselines: dict[str, np.ndarray]

    def _image_grid(self, source: str, n: int) -> None:
        """Name the problem after its source and lay out the N×N pixel grid."""
        self.name = source if source in NAMED else Path(source).stem
        self.n = n
        ys = torch.tensor(grid_points(n), dtype=torch.float32)
        self.coords = torch.stack(torch.meshgrid(ys, ys, indexing="ij"), -1).reshape(-1, 2)
        self._baseline_scores: dict[str, dict[str, float | None]] = {}

    def image(self, model: torch.nn.Module) -> np.ndarray:
        """The field on the reconstruction grid: (N, N) float64."""
        dev = next(model.parameters()).device
        out = predict(model, self.coords.to(dev)).detach().float().cpu()
        return out.numpy().astype(np.float64).reshape(self.n, self.n)

    def baseline_scores(self, structural: bool) -> dict[str, float | None]:
        """``{NAME_psnr, NAME_ssim}`` of every baseline (computed once)."""
        key = "all" if structural else "psnr"
        if key not in self._baseline_scores:
            self._baseline_scores[key] = {
                k: v for name, img in self.baselines.items()
                for k, v in image_scores(img, self.truth, structural, f"{name}_").items()}
        return self._baseline_scores[key]

    def preview(self) -> np.ndarray:
        return np.clip(self.truth, 0, 1)[..., None]
