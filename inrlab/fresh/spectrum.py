"""FreSh spectrum vectors and the Wasserstein-1 distance between them (spec/fresh.md).

A spectrum vector summarises a sampled signal by how much DFT magnitude it has at each frequency
1 … K, with direction discarded:

* the signal (B, *spatial, C) is made cubic when it is not (2-D/3-D: resized to side =
  min(spatial), at most ``MAX_SIDE``; 2-D by antialiased bilinear interpolation whatever axis
  shrinks, as the reference's ``torchvision`` resize does; 3-D by plain trilinear interpolation,
  as the reference's volumes), so that index i means the same frequency along every axis;
* |F| = magnitude (not power) of the DFT over the spatial axes, summed over the C channels;
* binned into one value per frequency t = 1 … K, the DC bin (t = 0) dropped:

  - ``"diagonal"`` (default, the reference's binning): t = i₁ + … + i_d over the non-negative
    quadrant/octant of the raw (unshifted) DFT indices, i.e. L1 shells. It is the default because
    it is what FreSh's published selections were made with, so inrlab picks the same candidates.
  - ``"radial"``: t = round(‖f‖₂) over *all* signed frequencies f (fftfreq · n), i.e. L2 shells of
    the whole plane. Rotation invariant and it also sees the (+, −) quadrant that diagonal
    binning ignores (a real signal's (−, −) quadrant mirrors (+, +), but (+, −) is independent),
    so it is the better-founded choice for strongly oriented content; offered as an option.

  In 1-D both binnings are the same: bin t is rfft index t.
* normalised to sum 1, so only the *shape* of the spectrum matters, not the output's amplitude.

Bins must stay at or below the Nyquist index (K ≤ side // 2), otherwise the raw indices i > n/2
of the diagonal binning would be negative frequencies in disguise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InrlabError

BINNINGS = ("diagonal", "radial")
MAX_SIDE = 1024


def make_cubic(x: torch.Tensor, max_side: int = MAX_SIDE) -> torch.Tensor:
    """(B, *spatial, C) → (B, *[s]*d, C) with s = min(min(spatial), max_side) (d = 2 or 3).

    2-D: ``F.interpolate(..., mode="bilinear", antialias=True)`` — every 2-D resize is
    antialiased (a 768×512 image's long axis shrinks too, not only sides over ``max_side``),
    which is what the reference's ``torchvision.transforms.functional.resize(antialias=True)``
    computes. 3-D: trilinear without antialiasing (torch has none for volumes; the reference's
    volumes use the same). Unchanged when already cubic with side ≤ ``max_side``; 1-D signals are
    returned as they are.
    """
    spatial = x.shape[1:-1]
    d = len(spatial)
    side = min(min(spatial), max_side)
    if d == 1 or all(s == side for s in spatial):
        return x
    mode = "bilinear" if d == 2 else "trilinear"
    moved = torch.movedim(x, -1, 1)  # (B, C, *spatial)
    resized = F.interpolate(moved.float(), size=(side,) * d, mode=mode, align_corners=False,
                            antialias=d == 2)
    return torch.movedim(resized, 1, -1).to(x.dtype)


def check_bins(side: int, bins: int) -> None:
    """Raise unless a signal of (square/cubic) ``side`` samples per axis has ``bins`` frequencies."""
    if bins < 1:
        raise InrlabError(f"--bins {bins} is impossible: use at least 1 frequency bin")
    if bins > side // 2:
        raise InrlabError(f"the signal has {side} samples per axis, i.e. only {side // 2} "
                          f"frequency bins below Nyquist, fewer than --bins {bins}: use "
                          f"--bins ≤ {side // 2} or a larger signal")


def _bin_matrix(side: int, d: int, bins: int, binning: str, device: torch.device) -> tuple:
    """Which |F| entries feed which bin: (slices selecting the needed block, one-hot (M, K))."""
    if binning == "diagonal" or d == 1:
        idx = torch.arange(bins + 1, device=device)
        block = tuple(slice(0, bins + 1) for _ in range(d))
        grids = torch.meshgrid(*([idx] * d), indexing="ij")
        t = sum(grids).reshape(-1)
    else:
        f = torch.fft.fftfreq(side, d=1 / side, device=device).round().long()
        block = tuple(slice(None) for _ in range(d))
        grids = torch.meshgrid(*([f.double()] * d), indexing="ij")
        t = torch.sqrt(sum(g**2 for g in grids)).round().long().reshape(-1)
    keep = (t >= 1) & (t <= bins)
    onehot = torch.zeros(t.numel(), bins, device=device, dtype=torch.float64)
    rows = torch.nonzero(keep).squeeze(1)
    onehot[rows, t[rows] - 1] = 1.0
    return block, onehot


def spectrum_vectors(values: torch.Tensor | np.ndarray, bins: int = 64, binning: str = "diagonal",
                     max_side: int = MAX_SIDE) -> torch.Tensor:
    """Normalised spectrum vectors of a batch of signals.

    Args:
        values: (B, *spatial, C) samples on a regular grid (spatial = (n,), (H, W) or (D, H, W)).
        bins: K, number of frequencies kept (1 … K).
        binning: ``"diagonal"`` (reference, default) or ``"radial"``.
        max_side: 2-D/3-D signals are resized to a cube of side min(min(spatial), max_side).

    Returns:
        (B, K) float64 tensor, each row summing to 1.

    Raises:
        InrlabError: unknown binning, too few samples for K bins, or a signal whose spectrum is
        zero over bins 1 … K (constant signal: nothing to normalise).
    """
    if binning not in BINNINGS:
        raise InrlabError(f"unknown binning {binning!r}: choose one of {', '.join(BINNINGS)}")
    x = torch.as_tensor(values)
    if x.ndim < 3 or x.ndim > 5:
        raise InrlabError(f"spectrum_vectors needs (B, *spatial, C) with 1-3 spatial axes, "
                          f"got shape {tuple(x.shape)}")
    x = make_cubic(x, max_side)
    d = x.ndim - 2
    side = x.shape[1]
    check_bins(side, bins)
    axes = tuple(range(1, d + 1))
    # float64: a constant float32 signal must give (numerically) zero bins, not float32 noise
    mag = torch.fft.fftn(x.double(), dim=axes).abs().sum(-1)
    block, onehot = _bin_matrix(side, d, bins, binning, x.device)
    flat = mag[(slice(None),) + block].reshape(x.shape[0], -1)
    vec = flat @ onehot  # (B, K)
    total = vec.sum(1, keepdim=True)
    scale = mag.reshape(x.shape[0], -1).amax(1, keepdim=True)  # DC included
    flat_rows = (total <= 1e-10 * scale) | (total <= 0)
    if bool(flat_rows.any()):
        raise InrlabError("a signal has zero spectrum over bins 1…K (it is constant): there is "
                          "nothing to compare; check the signal or the model's initialisation")
    return vec / total


def spectrum_vector(values: torch.Tensor | np.ndarray, bins: int = 64,
                    binning: str = "diagonal", max_side: int = MAX_SIDE) -> torch.Tensor:
    """The spectrum vector (K,) of one signal (*spatial, C); see :func:`spectrum_vectors`."""
    return spectrum_vectors(torch.as_tensor(values)[None], bins, binning, max_side)[0]


def wasserstein(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1-D Wasserstein-1 distance on the integer support 1 … K: Σ_k |CDF_a(k) − CDF_b(k)|.

    ``a`` (..., K) and ``b`` (..., K) are normalised spectrum vectors; they broadcast. Equals
    ``scipy.stats.wasserstein_distance(k, k, a, b)`` with k = 1 … K.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return (torch.cumsum(a, -1) - torch.cumsum(b, -1)).abs().sum(-1)


def grid_side(grid_shape: tuple[int, ...], max_side: int = MAX_SIDE) -> int:
    """Samples per axis after :func:`make_cubic` (1-D: the length)."""
    return grid_shape[0] if len(grid_shape) == 1 else min(min(grid_shape), max_side)


def nyquist_bins(grid_shape: tuple[int, ...]) -> int:
    """The largest K a signal of this grid shape allows."""
    return grid_side(grid_shape) // 2


__all__ = ["BINNINGS", "MAX_SIDE", "make_cubic", "check_bins", "spectrum_vectors",
           "spectrum_vector", "wasserstein", "grid_side", "nyquist_bins"]
