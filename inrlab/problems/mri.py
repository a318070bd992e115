"""``mri:NAME``: Cartesian MRI, an image field fitted through undersampled k-space.

(``signal.mri.trajectory radial`` gives radial sampling through a NUFFT instead:
:mod:`inrlab.problems.mri_radial`, which shares the simulation and the TV solver below.)

The field f: (y, x) ∈ [-1, 1]² → ℝ is the (real) image on an N×N grid; the operator is
A = mask ⊙ FFT2 (orthonormal, k-space centred: DC at row/column N//2), and a measurement is one
sampled k-space entry as two channels (real, imaginary), so the MSE over a batch is the complex
k-space MSE (/2).

Why a real field (out_dim 1): the simulated objects (a phantom, DICOM magnitudes, images) are
real and non-negative, so a complex field would add N² unknowns (the imaginary part) that the
data constrain only through the conjugate symmetry the mask breaks; a real field keeps that
symmetry as prior knowledge, as the zero-filled and TV baselines below do not (they are scored on
the magnitude, like the field).

Measurements are simulated without the inverse crime: the source is sampled on a 2× finer grid
(2N points per side at spacing h/2), its orthonormal FFT cropped to the central N×N frequencies
(× 1/2, which keeps the orthonormal scale of an N-point grid). The ground truth for scoring is the
magnitude of the fully sampled inverse FFT (the usual MRI reference). The mask samples whole
phase-encode lines (rows): a fully sampled centre (``signal.mri.centre`` of the lines) plus
lines drawn at random (seeded) up to about N/R lines; or a user mask (``signal.mri.mask``).

Baselines scored with every run: the zero-filled inverse FFT and a total-variation
compressed-sensing reconstruction (FISTA on ½‖A x − m‖² + λ TV(x) over real images x, the proximal
step by scikit-image's ``denoise_tv_chambolle`` with weight λ = ``signal.mri.tv_weight``, fixed,
not tuned on the truth). ``reference()`` is the zero-filled inverse FFT (real part).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig
from ..errors import InrlabError
from ..train.metrics import psnr
from .base import Batch, GridData
from .sources import ImageInverse, default_size, image_scores, load_source, sample_object


def fft2c(img: np.ndarray | torch.Tensor) -> Any:
    """Centred orthonormal 2-D FFT of (..., N, N) arrays (numpy or torch)."""
    if isinstance(img, torch.Tensor):
        return torch.fft.fftshift(torch.fft.fft2(img, norm="ortho"), dim=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(img, norm="ortho"), axes=(-2, -1))


def ifft2c(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fft2c` (numpy)."""
    return np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho")


def cartesian_mask(n: int, acceleration: float, centre: float, seed: int) -> np.ndarray:
    """(N, N) bool mask of sampled phase-encode rows: the round(centre·N) (≥ 1) rows around
    DC, plus random rows (``seed``) up to round(N/R) rows in all."""
    lines = int(round(n / acceleration))
    if lines < 1:
        raise InrlabError(f"signal.mri.acceleration={acceleration} samples no k-space line of {n}: "
                          f"use R ≤ {n}")
    n_centre = max(1, int(round(centre * n)))
    start = n // 2 - n_centre // 2
    rows = np.zeros(n, bool)
    rows[start:start + n_centre] = True
    extra = max(0, lines - n_centre)
    rest = np.flatnonzero(~rows)
    rows[np.random.default_rng(seed).choice(rest, size=min(extra, len(rest)), replace=False)] = True
    return np.repeat(rows[:, None], n, 1)


def load_mask(path: str, n: int) -> np.ndarray:
    """A user mask (.npy, (N, N), centred k-space, nonzero = sampled)."""
    p = Path(path)
    if not p.is_file():
        raise InrlabError(f"signal.mri.mask file {path!r} not found: give a .npy of an ({n}, {n}) mask")
    try:
        m = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InrlabError(f"cannot read signal.mri.mask {path!r} ({e}): save it with numpy.save") \
            from None
    if m.shape != (n, n):
        raise InrlabError(f"signal.mri.mask {path!r} has shape {m.shape} but the grid is {n}×{n}: "
                          f"give an ({n}, {n}) mask or set signal.size {m.shape[0]}")
    m = m != 0
    if not m.any():
        raise InrlabError(f"signal.mri.mask {path!r} samples no k-space entry: the mask is all zero")
    return m


def fista_tv(grad: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, weight: float,
             iterations: int, step: float = 1.0) -> np.ndarray:
    """FISTA on ½‖A x − m‖² + λ TV(x) over real images x (N, N), given the data term's gradient
    ``grad``: x ↦ Re Aᴴ(A x − m) and a step ≤ 1/‖A‖²; proximal step
    ``denoise_tv_chambolle(·, step·λ)``, started from ``x0``."""
    from skimage.restoration import denoise_tv_chambolle

    x = x0
    z, t = x.copy(), 1.0
    for _ in range(iterations):
        v = z - step * grad(z)
        x_new = denoise_tv_chambolle(v, weight=step * weight) if weight > 0 else v
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


def tv_cs(kspace: np.ndarray, mask: np.ndarray, weight: float, iterations: int) -> np.ndarray:
    """TV compressed sensing: :func:`fista_tv` for A = mask ⊙ F, step 1 (‖mask ⊙ F‖ ≤ 1 for the
    orthonormal F), started from the zero-filled real part. ``kspace``, ``mask``: (N, N)."""
    return fista_tv(lambda z: ifft2c(mask * (fft2c(z) - kspace)).real, ifft2c(kspace * mask).real,
                    weight, iterations)


BASELINE_LABELS = {"zero_filled": "zero-filled", "dc_adjoint": "DC adjoint", "tv": "TV"}


class MRI(ImageInverse):
    """Cartesian MRI of an N×N real image from masked k-space (see the module doc).

    Attributes:
        coords: (N², 2) pixel centres (y, x) on linspace(-1, 1), row-major.
        mask: (N, N) bool sampled k-space entries (centred).
        kspace: (N, N) complex128 measured k-space (zero where not sampled).
        truth: (N, N) float64 magnitude of the fully sampled reconstruction.
        y: (N², 2) float32 (real, imaginary) of ``kspace``; ``train_idx`` the sampled entries.
        baselines: {"zero_filled": (N, N), "tv": (N, N)} magnitude images.
    """

    def __init__(self, source: str, size: int | None = None, cfg: SignalConfig | None = None):
        cfg = cfg if cfg is not None else SignalConfig(f"mri:{source}", size)
        cfg.mri.validate()
        src, info = load_source(source, "mri")
        n = default_size(size, src)
        h = 2.0 / (n - 1)
        self._image_grid(source, n)
        self.config = cfg
        fine = sample_object(src, -1 + np.arange(2 * n) * h / 2, 1 + h / 2)
        lo = n - n // 2
        full = fft2c(fine)[lo:lo + n, lo:lo + n] / 2  # the N×N centre, orthonormal scale of N
        self.truth = np.abs(ifft2c(full))
        self._sample(fine, full, float(np.abs(full).max()), info)

    def _sample(self, fine: np.ndarray, full: np.ndarray, peak: float, info: dict[str, Any]) -> None:
        """Measure the object: ``fine`` (2N, 2N) the source on the 2× finer grid, ``full``
        (N, N) its centred k-space on the N grid, ``peak`` = max |full| (the noise and PSNR
        scale), ``info`` the source's description. Sets the measurements, ``train_idx``,
        ``data_range``, the baselines, ``reference()``'s image and ``meta``."""
        c, n = self.config.mri, self.n
        self.mask = load_mask(c.mask, n) if c.mask else cartesian_mask(n, c.acceleration, c.centre,
                                                                         c.mask_seed)
        k = full.copy()
        if c.noise > 0:
            rng = np.random.default_rng(c.noise_seed)
            k = k + c.noise * peak * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
        self.kspace = np.where(self.mask, k, 0)
        self.y = torch.tensor(np.stack([self.kspace.real, self.kspace.imag], -1).reshape(-1, 2),
                              dtype=torch.float32)
        self.measurement_shape = (n, n)
        self.train_idx = torch.from_numpy(np.flatnonzero(self.mask.reshape(-1)))
        self.data_range = 2 * peak
        zf = ifft2c(self.kspace)
        self._reference_real = zf.real
        self.baselines = {"zero_filled": np.abs(zf),
                          "tv": np.abs(tv_cs(self.kspace, self.mask, c.tv_weight, c.tv_iterations))}
        self.meta = {
            "kind": "mri", **info, "size": n, "sampled_fraction": float(self.mask.mean()),
            "acceleration": float(1 / self.mask.mean()),
            "mask": (f"user mask {c.mask}" if c.mask else
                     f"Cartesian rows: {max(1, round(c.centre * n))} centre rows + random rows "
                     f"(seed {c.mask_seed}) up to round(N/{c.acceleration:g}) = {round(n / c.acceleration)}"),
            "operator": "mask ⊙ FFT2 (orthonormal, centred k-space); real field; loss MSE over "
                        "(real, imaginary) of the sampled entries",
            "simulation": (f"orthonormal FFT of the source sampled on a {2 * n}² grid at spacing h/2 "
                           f"(2× finer), centre {n}×{n} frequencies kept (× 1/2); truth = |IFFT| "
                           f"of the full {n}×{n} k-space"),
            "noise": c.noise, "noise_seed": c.noise_seed if c.noise > 0 else None,
            "baselines": (f"zero-filled IFFT; TV-CS (FISTA, {c.tv_iterations} iterations, "
                          f"denoise_tv_chambolle weight {c.tv_weight:g})"),
        }

    # ------------------------------------------------------------------ operator
    def batch(self, idx: torch.Tensor) -> Batch:
        """k-space entries ``idx`` (B,): every measurement needs the whole image, so the query
        points are all N² pixels."""
        return Batch(idx, self.coords, self.y[idx])

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(real, imaginary) (B, 2) of the centred orthonormal FFT of the image ``out`` (N², 1)
        at the batch's k-space entries."""
        k = fft2c(out[:, 0].reshape(self.n, self.n))
        return torch.view_as_real(k).reshape(-1, 2)[batch.idx.to(out.device)]

    def apply_operator(self, batch: Batch, values: torch.Tensor) -> torch.Tensor:
        """The batch's k-space entries of each column of ``values`` (N², F) as an image:
        (B, 2, F) (real, imaginary), one FFT per column."""
        n = self.n
        k = torch.fft.fft2(values.reshape(n, n, -1), dim=(0, 1), norm="ortho").reshape(n * n, -1)
        idx = batch.idx.to(values.device)  # centred (fftshift) positions → unshifted FFT rows
        rows = ((idx // n - n // 2) % n) * n + (idx % n - n // 2) % n
        k = k[rows]  # (B, F)
        return torch.stack([k.real, k.imag], 1)

    # ------------------------------------------------------------------ scoring and pictures
    def evaluate(self, model: torch.nn.Module, structural: bool = True) -> dict[str, Any]:
        """PSNR/SSIM of the magnitude image against the truth (range 1), k-space PSNR over the
        sampled entries, and the zero-filled / TV baselines' scores."""
        img = self.image(model)
        pred, measured = self._measured_pair(img)
        return {**image_scores(np.abs(img), self.truth, structural),
                "kspace_psnr": psnr(pred, measured, self.data_range),
                **self.baseline_scores(structural)}

    def _measured_pair(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(real, imaginary) (M_train, 2) of the operator applied to ``img`` (N, N) and of the
        measurements, over the sampled entries."""
        k = fft2c(img)
        return (np.stack([k.real, k.imag], -1)[self.mask],
                np.stack([self.kspace.real, self.kspace.imag], -1)[self.mask])

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """reconstruction.png / .npy and summary.png: truth, INR, zero-filled, TV, error maps,
        the mask, measured log |k|, PSNR curve."""
        import matplotlib.pyplot as plt

        from ..plots import psnr_curve, save_image

        img = self.image(model)
        np.save(out / "reconstruction.npy", img)
        mag = np.abs(img)
        save_image(np.clip(mag, 0, 1)[..., None], out / "reconstruction.png")
        s = self.evaluate(model, structural=False)
        (b0, first), (_, tv) = self.baselines.items()  # the adjoint-type baseline, TV
        label = BASELINE_LABELS[b0]
        panels = [("truth (fully sampled)", self.truth), (f"INR {s['psnr']:.2f} dB", mag),
                  (f"{label} {s[b0 + '_psnr']:.2f} dB", first), (f"TV {s['tv_psnr']:.2f} dB", tv)]
        err = [np.abs(mag - self.truth), np.abs(first - self.truth), np.abs(tv - self.truth)]
        emax = max(float(np.percentile(np.concatenate([e.ravel() for e in err]), 99.5)), 1e-6)
        fig, ax = plt.subplots(2, 5, figsize=(20, 8.5))
        for a, (t, im) in zip(ax[0, :4], panels, strict=True):
            a.imshow(im, cmap="gray", vmin=0, vmax=1)
            a.set_title(t)
        for a, e, t in zip(ax[1, :3], err, ("|INR − truth|", f"|{label} − truth|", "|TV − truth|"),
                           strict=True):
            a.imshow(e, cmap="inferno", vmin=0, vmax=emax)
            a.set_title(t)
        self._sampling_panels(ax[0, 4], ax[1, 3])
        for a in ax.ravel()[:-1]:
            a.axis("off")
        psnr_curve(ax[1, 4], history, keys=("psnr",))
        fig.suptitle(f"MRI {self.name}: {self.n}², {self._sampling_title()}")
        fig.tight_layout()
        fig.savefig(out / "summary.png", dpi=80)
        plt.close(fig)

    def _sampling_panels(self, where: Any, measured: Any) -> None:
        """Draw the sampling pattern on axes ``where`` and the measured log |k| on ``measured``."""
        where.imshow(self.mask, cmap="gray")
        where.set_title(f"mask ({self.meta['sampled_fraction']:.1%} sampled)")
        measured.imshow(np.log10(np.abs(self.kspace) + 1e-6), cmap="viridis")
        measured.set_title("measured log10 |k|")

    def _sampling_title(self) -> str:
        return f"R = {self.meta['acceleration']:.2f}"

    def reference(self) -> GridData:
        """The zero-filled inverse FFT (real part; radial: the density-compensated adjoint) on
        the image grid."""
        return GridData(self.coords, (self.n, self.n),
                        torch.tensor(self._reference_real.reshape(-1, 1), dtype=torch.float32))


def build_mri(cfg: SignalConfig) -> MRI:
    """``mri:SOURCE`` → an :class:`MRI` problem (a :class:`~.mri_radial.RadialMRI` for
    ``signal.mri.trajectory radial``) configured by ``cfg.mri`` and ``cfg.size``."""
    source = cfg.name.split(":", 1)[1]
    if not source:
        raise InrlabError("mri: needs a source: mri:shepp_logan, mri:dicom_mr, mri:dicom_ct or mri:PATH")
    if cfg.mri.trajectory == "radial":
        from .mri_radial import RadialMRI
        return RadialMRI(source, cfg.size, cfg)
    return MRI(source, cfg.size, cfg)
