"""Reconstruction metrics on arrays: PSNR, SSIM, MS-SSIM and the band-wise relative error Δ_k.

Images are (H, W, C) arrays in [0, 1] unless stated. SSIM comes from pytorch-msssim, MS-SSIM from
torchmetrics (whose public ``betas`` argument takes fewer scales on small images; pytorch-msssim
asserts five). Both use a Gaussian window 11, σ = 1.5, K = (0.01, 0.03); the tests check SSIM
against scikit-image and MS-SSIM at five scales against pytorch-msssim.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ssim as _ssim
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as _ms_ssim

_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """10·log10(range² / MSE); +inf for a perfect fit, NaN for empty inputs."""
    if np.size(target) == 0:
        return float("nan")
    m = mse(pred, target)
    return float("inf") if m == 0 else float(10 * np.log10(data_range**2 / m))


def _nchw(img: np.ndarray) -> torch.Tensor:
    a = np.asarray(img, np.float64)
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over channels of (H, W[, C]) images (Gaussian window; needs H, W ≥ 11)."""
    return float(_ssim(_nchw(pred), _nchw(target), data_range=data_range, size_average=True))


def ms_ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float | None:
    """MS-SSIM of (H, W[, C]) images with the standard 5 scales, or fewer on small images (the
    first weights, renormalised); None below 2 scales.

    n scales need the coarsest scale to hold the 11-pixel window, min(H, W) ≥ 11·2^(n−1), and
    torchmetrics' own size rule, min(H, W) // (n−1)² > 10: five from a side of 176 pixels, four
    from 99, three from 44, two from 22.
    """
    side = min(np.shape(target)[:2])
    scales = next((n for n in range(5, 1, -1)
                   if side >= 11 * 2 ** (n - 1) and side // (n - 1) ** 2 > 10), 1)
    if scales < 2:
        return None
    weights = np.asarray(_MS_WEIGHTS[:scales])
    if scales < 5:  # the five standard weights sum to 1.0001: keep them as published
        weights = weights / weights.sum()
    return float(_ms_ssim(_nchw(pred), _nchw(target), data_range=data_range,
                          betas=tuple(weights.tolist()), normalize="relu"))


def band_error_1d(pred: np.ndarray, target: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """IGA's Δ_k = |F[y]_k − F[f]_k| / |F[y]_k| at rfft bins ``bins`` of (N,) or (N, C) signals."""
    fy = np.fft.rfft(np.asarray(target, np.float64), axis=0)
    ff = np.fft.rfft(np.asarray(pred, np.float64), axis=0)
    num = np.abs(fy[bins] - ff[bins])
    den = np.abs(fy[bins])
    if num.ndim > 1:
        num, den = num.sum(-1), den.sum(-1)
    return num / np.maximum(den, 1e-12)


def radial_frequency(shape: tuple[int, ...]) -> np.ndarray:
    """Radial frequency √(Σ f_i²) (``shape``) of each DFT coefficient of a d-D grid, cycles per
    sample, in [0, √(d/4)] (FFT order)."""
    f = np.meshgrid(*(np.fft.fftfreq(s) for s in shape), indexing="ij")
    return np.sqrt(sum(a**2 for a in f))


def radial_bands(shape: tuple[int, ...], n_bands: int) -> np.ndarray:
    """Band index (``shape``) of each DFT coefficient of a d-D grid: ``n_bands`` equal-width shells
    in normalised radial frequency (:func:`radial_frequency` / √(d/4); 2-D: rings up to √0.5
    cycles per pixel); DC is band 0's."""
    r = radial_frequency(shape) / np.sqrt(len(shape) / 4)
    return np.minimum((r * n_bands).astype(int), n_bands - 1)


def band_error_2d(pred: np.ndarray, target: np.ndarray, n_bands: int = 8) -> np.ndarray:
    """Relative error per radial band: ‖F[y] − F[f]‖_band / ‖F[y]‖_band over (H, W[, C]) images."""
    y = np.asarray(target, np.float64)
    f = np.asarray(pred, np.float64)
    fy = np.fft.fft2(y, axes=(0, 1))
    fd = np.fft.fft2(y - f, axes=(0, 1))
    bands = radial_bands(y.shape[:2], n_bands)
    py = np.abs(fy) ** 2
    pd = np.abs(fd) ** 2
    if py.ndim == 3:
        py, pd = py.sum(-1), pd.sum(-1)
    num = np.bincount(bands.ravel(), pd.ravel(), minlength=n_bands)
    den = np.bincount(bands.ravel(), py.ravel(), minlength=n_bands)
    return np.sqrt(num / np.maximum(den, 1e-24))
