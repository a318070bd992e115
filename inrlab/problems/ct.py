"""``ct:NAME``: parallel-beam CT, an image field fitted through the Radon transform of its sinogram.

The field f: (y, x) ∈ [-1, 1]² → attenuation is queried at the pixel centres of an N×N grid; the
operator is :class:`~inrlab.problems.radon.ParallelBeam` (Joseph's method, exact adjoint); the loss
is the MSE over the sinogram's (angle, detector) measurements.

Measurements are simulated without the inverse crime (spec/problems.md): the source (phantom,
DICOM slice, image) is sampled on a 2× finer grid of 2N+1 points at spacing h/2 (odd, so that
scikit-image's rotation centre is the grid centre), projected with scikit-image's ``radon``
(rotate-and-sum, a different discretisation from the reconstruction operator), and linearly
interpolated at the detector centres; optional seeded Gaussian noise. ``problem.meta`` records how.

Baselines scored with every run: filtered back-projection (``iradon``, ramp filter) and SART
(``iradon_sart``), both scikit-image, on the same sinogram resampled to scikit-image's detector
convention. ``reference()`` is the FBP image (what FreSh compares the untrained field with).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig
from ..errors import InrlabError
from ..train.metrics import psnr
from .base import Batch, GridData
from .radon import ParallelBeam, apply_rays
from .sources import ImageInverse, default_size, grid_points, image_scores, load_source, sample_object


def ct_angles(cfg: SignalConfig) -> np.ndarray:
    """The projection angles in degrees: ``signal.ct.angle_list``, else ``angles`` evenly spaced
    over [0, angle_range)."""
    c = cfg.ct
    if c.angle_list is not None:
        return np.asarray(c.angle_list, np.float64)
    return np.arange(c.angles) * (c.angle_range / c.angles)


def simulate_sinogram(src: np.ndarray, op: ParallelBeam) -> np.ndarray:
    """Noise-free measurements (A, D) of the object ``src`` (source pixels on [-R, R]²) for the
    geometry of ``op``, from scikit-image's ``radon`` of a 2N+1 grid at spacing h/2, interpolated
    linearly at the detector centres (physical line integrals)."""
    from skimage.transform import radon

    n, h = op.n, op.h
    fine = sample_object(src, np.arange(-n, n + 1) * h / 2, 1 + h / 2)
    sino = radon(fine, op.angles, circle=False)  # (T, A), sums of fine pixels along rays
    t = (np.arange(sino.shape[0]) - sino.shape[0] // 2) * h / 2
    return np.stack([np.interp(op.offsets, t, sino[:, a] * h / 2, left=0.0, right=0.0)
                     for a in range(len(op.angles))])


def skimage_sinogram(sino: np.ndarray, op: ParallelBeam, rows: int) -> np.ndarray:
    """Our sinogram (A, D) resampled to scikit-image's reconstruction convention for an N×N
    output: ``rows`` detector bins of one pixel, rotation centre at pixel N//2, pixel-sum units
    (T, A)."""
    n, h = op.n, op.h
    centre = -1 + (n // 2) * h  # physical position of pixel N//2 (both axes)
    t_c = (np.arange(rows) - rows // 2) * h
    out = [np.interp(t_c + centre * (math.cos(th) - math.sin(th)), op.offsets, sino[a] / h,
                     left=0.0, right=0.0) for a, th in enumerate(op.theta)]
    return np.stack(out, 1)


def fbp(sino: np.ndarray, op: ParallelBeam) -> np.ndarray:
    """Filtered back-projection (scikit-image ``iradon``, ramp filter): (N, N)."""
    from skimage.transform import iradon

    rows = int(math.ceil(math.sqrt(2) * op.n)) + 2
    return iradon(skimage_sinogram(sino, op, rows), op.angles, output_size=op.n,
                  filter_name="ramp", circle=False)


def sart(sino: np.ndarray, op: ParallelBeam, iterations: int) -> np.ndarray:
    """SART (scikit-image ``iradon_sart``, ``iterations`` sweeps, each starting from the last):
    (N, N). scikit-image reconstructs the disc inscribed in the grid."""
    from skimage.transform import iradon_sart

    s = skimage_sinogram(sino, op, op.n)
    img = None
    for _ in range(iterations):
        img = iradon_sart(s, op.angles, image=img)
    return img


class CT(ImageInverse):
    """Parallel-beam CT of an N×N image from its (A, D) sinogram (see the module doc).

    Attributes:
        op: the :class:`ParallelBeam` operator.
        coords: (N², 2) pixel centres (y, x) on linspace(-1, 1), row-major.
        truth: (N, N) float64 ground-truth image in [0, 1] (the source sampled on the grid).
        sinogram: (A, D) float64 measured sinogram (simulated, with noise if asked).
        y: (M, 1) float32 measurements, angle-major.
        baselines: {"fbp": (N, N), "sart": (N, N)} reconstructions.
    """

    def __init__(self, source: str, size: int | None = None, cfg: SignalConfig | None = None):
        cfg = cfg if cfg is not None else SignalConfig(f"ct:{source}", size)
        cfg.ct.validate()
        c = cfg.ct
        src, info = load_source(source, "ct")
        n = default_size(size, src)
        angles = ct_angles(cfg)
        detectors = c.detectors or 8 * math.ceil(math.sqrt(2) * n / 8)
        self.op = ParallelBeam(n, angles, detectors)
        h = self.op.h
        self._image_grid(source, n)
        self.config = cfg
        self.truth = sample_object(src, grid_points(n), 1 + h / 2)
        clean = simulate_sinogram(src, self.op)
        peak = float(np.abs(clean).max())
        if c.noise > 0:
            rng = np.random.default_rng(c.noise_seed)
            self.sinogram = clean + c.noise * peak * rng.standard_normal(clean.shape)
        else:
            self.sinogram = clean
        self.y = torch.tensor(self.sinogram.reshape(-1, 1), dtype=torch.float32)
        self.measurement_shape = self.op.shape
        self.train_idx = torch.arange(self.op.m)
        self.data_range = peak
        self.baselines = {"fbp": fbp(self.sinogram, self.op),
                          "sart": sart(self.sinogram, self.op, c.sart_iterations)}
        self._full: Batch | None = None
        self.meta = {
            "kind": "ct", **info, "size": n, "angles": len(angles),
            "angle_list": [round(float(a), 4) for a in angles] if c.angle_list is not None else None,
            "angle_range": None if c.angle_list is not None else c.angle_range,
            "detectors": detectors, "detector_spacing": self.op.dt, "pixel_spacing": h,
            "operator": "Joseph ray-driven projector (2N weights per ray), exact adjoint",
            "simulation": (f"scikit-image radon of the source sampled on a {2 * n + 1}² grid at "
                           f"spacing h/2 (2× finer), line integrals interpolated linearly at the "
                           f"{detectors} detector centres"),
            "noise": c.noise, "noise_seed": c.noise_seed if c.noise > 0 else None,
            "noise_std": c.noise * peak,
            "baselines": f"FBP (iradon, ramp filter), SART ({c.sart_iterations} sweeps)",
        }

    # ------------------------------------------------------------------ operator
    def batch(self, idx: torch.Tensor) -> Batch:
        """Rays ``idx`` (B,): the pixels they cross (P ≤ N², the union) as query points, and
        ``extra`` index (B, 2N) into those points with the Joseph weights (B, 2N)."""
        index, weight = self.op.rows(idx)
        cols, local = torch.unique(index, return_inverse=True)
        return Batch(idx, self.coords[cols], self.y[idx], {"index": local, "weight": weight})

    def full_batch(self) -> Batch:
        """Every ray, querying every pixel (built once)."""
        if self._full is None:
            self._full = Batch(self.train_idx, self.coords, self.y,
                               {"index": self.op.index, "weight": self.op.weight})
        return self._full

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Line integrals (B, 1) of the field values ``out`` (P, 1) at the batch's pixels."""
        return apply_rays(out, batch.extra["index"], batch.extra["weight"])

    def apply_operator(self, batch: Batch, values: torch.Tensor) -> torch.Tensor:
        """The rays of ``batch`` applied to columns ``values`` (P, F): (B, 1, F), through a sparse
        (B, P) matrix of the Joseph weights (built once per batch)."""
        a = batch.extra.get("matrix")
        if a is None or a.dtype != values.dtype:
            index, weight = batch.extra["index"], batch.extra["weight"]
            rows = torch.arange(index.shape[0], device=index.device).repeat_interleave(index.shape[1])
            a = torch.sparse_coo_tensor(torch.stack([rows, index.reshape(-1)]),
                                        weight.reshape(-1).to(values.dtype),
                                        (index.shape[0], batch.x.shape[0]),
                                        check_invariants=False).coalesce()
            batch.extra["matrix"] = a
        return torch.sparse.mm(a, values)[:, None, :]

    # ------------------------------------------------------------------ scoring and pictures
    def evaluate(self, model: torch.nn.Module, structural: bool = True) -> dict[str, Any]:
        """Image PSNR/SSIM against the ground truth, sinogram PSNR (range: the measured peak),
        and the FBP / SART baselines' scores."""
        img = self.image(model)
        sino = self.op.project(torch.from_numpy(img.reshape(-1, 1))).numpy().reshape(self.op.shape)
        return {**image_scores(img, self.truth, structural),
                "sinogram_psnr": psnr(sino, self.sinogram, self.data_range),
                **self.baseline_scores(structural)}

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """reconstruction.png / .npy (the field on the grid) and summary.png: truth, INR, FBP,
        SART, error maps, the measured sinogram and its residual, PSNR curve."""
        import matplotlib.pyplot as plt

        from ..plots import psnr_curve, save_image

        img = self.image(model)
        np.save(out / "reconstruction.npy", img)
        save_image(np.clip(img, 0, 1)[..., None], out / "reconstruction.png")
        sino = self.op.project(torch.from_numpy(img.reshape(-1, 1))).numpy().reshape(self.op.shape)
        fbp_img, sart_img = self.baselines["fbp"], self.baselines["sart"]
        scores = self.evaluate(model, structural=False)
        panels = [("truth", self.truth), (f"INR {scores['psnr']:.2f} dB", img),
                  (f"FBP {scores['fbp_psnr']:.2f} dB", fbp_img),
                  (f"SART {scores['sart_psnr']:.2f} dB", sart_img)]
        err = [np.abs(img - self.truth), np.abs(fbp_img - self.truth), np.abs(sart_img - self.truth)]
        emax = max(float(np.percentile(np.concatenate([e.ravel() for e in err]), 99.5)), 1e-6)
        fig, ax = plt.subplots(2, 5, figsize=(20, 8.5))
        for a, (t, im) in zip(ax[0, :4], panels, strict=True):
            a.imshow(im, cmap="gray", vmin=0, vmax=1)
            a.set_title(t)
        for a, e, t in zip(ax[1, :3], err, ("|INR − truth|", "|FBP − truth|", "|SART − truth|"),
                           strict=True):
            a.imshow(e, cmap="inferno", vmin=0, vmax=emax)
            a.set_title(t)
        ax[0, 4].imshow(self.sinogram.T, cmap="gray", aspect="auto",
                        extent=(0, len(self.op.angles), self.op.detectors, 0))
        ax[0, 4].set_title(f"measured sinogram ({len(self.op.angles)} angles)")
        r = sino - self.sinogram
        lim = max(float(np.abs(r).max()), 1e-9)
        ax[1, 3].imshow(r.T, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        ax[1, 3].set_title(f"sinogram residual ({scores['sinogram_psnr']:.1f} dB)")
        for a in ax.ravel()[:-1]:
            a.axis("off")
        psnr_curve(ax[1, 4], history, keys=("psnr",))
        fig.suptitle(f"CT {self.name}: {self.op.n}², {len(self.op.angles)} angles, "
                     f"{self.op.detectors} detectors")
        fig.tight_layout()
        fig.savefig(out / "summary.png", dpi=80)
        plt.close(fig)

    def reference(self) -> GridData:
        """The FBP reconstruction on the image grid."""
        return GridData(self.coords, (self.op.n, self.op.n),
                        torch.tensor(self.baselines["fbp"].reshape(-1, 1), dtype=torch.float32))


def build_ct(cfg: SignalConfig) -> CT:
    """``ct:SOURCE`` → a :class:`CT` problem configured by ``cfg.ct`` and ``cfg.size``."""
    source = cfg.name.split(":", 1)[1]
    if not source:
        raise InrlabError("ct: needs a source: ct:shepp_logan, ct:dicom_ct, ct:dicom_mr or ct:PATH")
    return CT(source, cfg.size, cfg)
