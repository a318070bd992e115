"""Reconstruction metrics on arrays: PSNR, SSIM, MS-SSIM and the band-wise relative error Δ_k.

Images are (H, W, C) arrays in [0, 1] unless stated. SSIM and MS-SSIM come from pytorch-msssim
(Gaussian window 11, σ = 1.5, K = (0.01, 0.03)); the tests check SSIM against scikit-image.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d
from pytorch_msssim.ssim import _ssim as _ssim_terms

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
    """MS-SSIM with the standard 5 scales, or fewer on small images (weights renormalised).

    Scale s needs a side of more than 10·2^(s-1) pixels; below 2 scales it returns None.
    """
    side = min(np.shape(target)[:2])
    scales = 5
    while scales > 1 and side <= 10 * 2 ** (scales - 1):
        scales -= 1
    if scales < 2:
        return None
    x, y = _nchw(pred), _nchw(target)
    if scales == 5:
        return float(_ms_ssim(x, y, data_range=data_range))
    return _ms_ssim_scales(x, y, data_range, scales)


def _ms_ssim_scales(x: torch.Tensor, y: torch.Tensor, data_range: float, scales: int) -> float:
    """MS-SSIM over ``scales`` scales of (1, C, H, W) tensors, standard weights renormalised.

    pytorch-msssim asserts 5 scales; this composes fewer from its own per-scale SSIM and contrast
    terms (with ``scales=5`` it reproduces ``pytorch_msssim.ms_ssim``; tested)."""
    w = torch.tensor(_MS_WEIGHTS[:scales], dtype=torch.float64)
    if scales < 5:  # the five standard weights sum to 1.0001: keep them as published
        w = w / w.sum()
    win = _fspecial_gauss_1d(11, 1.5).to(torch.float64).repeat(x.shape[1], 1, 1, 1)
    terms = []
    for s in range(scales):
        ssim_c, cs = _ssim_terms(x, y, data_range=data_range, win=win, size_average=False)
        terms.append(torch.relu(ssim_c if s == scales - 1 else cs))
        pad = [d % 2 for d in x.shape[2:]]
        x, y = (torch.nn.functional.avg_pool2d(t, 2, padding=pad) for t in (x, y))
    return float(torch.prod(torch.stack(terms) ** w.view(-1, 1, 1), 0).mean())


def band_error_1d(pred: np.ndarray, target: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """IGA's Δ_k = |F[y]_k − F[f]_k| / |F[y]_k| at rfft bins ``bins`` of (N,) or (N, C) signals."""
    fy = np.fft.rfft(np.asarray(target, np.float64), axis=0)
    ff = np.fft.rfft(np.asarray(pred, np.float64), axis=0)
    num = np.abs(fy[bins] - ff[bins])
    den = np.abs(fy[bins])
    if num.ndim > 1:
        num, den = num.sum(-1), den.sum(-1)
    return num / np.maximum(den, 1e-12)


def radial_bands(shape: tuple[int, int], n_bands: int) -> np.ndarray:
    """Band index (H, W) of each 2-D DFT coefficient: ``n_bands`` equal-width rings in
    normalised radial frequency √(f_y² + f_x²) ∈ [0, √0.5] (cycles per pixel); DC is band 0's."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    r = np.sqrt(fy**2 + fx**2) / np.sqrt(0.5)
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
