"""Spectra of eNTK matrices: eigenvalues and their summary, eigenvector frequency content, and
Lanczos extremes for kernels too large to form.

Eigenvalues are float64 and sorted descending. A kernel is positive semi-definite, so rounding
can leave its smallest eigenvalues slightly negative (≈ −1e-16·λ_max in float64); they are
reported as computed, and the condition number is +inf when λ_min ≤ 0.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch
from torch import nn

from ..errors import InrlabError
from ..train.metrics import radial_bands, radial_frequency
from .kernel import kernel_matvec


def _as_numpy(k: torch.Tensor | np.ndarray) -> np.ndarray:
    a = k.detach().cpu().numpy() if isinstance(k, torch.Tensor) else np.asarray(k)
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise InrlabError(f"a kernel must be a square matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InrlabError(f"the kernel has {int((~np.isfinite(a)).sum())} non-finite entries: "
                          f"its eigenvalues are undefined; recompute it from a finite model")
    return (a + a.T) / 2


def eigh(k: torch.Tensor | np.ndarray, vectors: bool = False
         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (N,) of the symmetric kernel ``k`` (N, N), float64 descending, and with
    ``vectors=True`` the eigenvectors as columns (N, N) in the same order.

    LAPACK's divide-and-conquer driver is tried first; if it fails to converge the slower
    QR-iteration driver is used (documented fallback), and if that fails too an InrlabError.
    """
    a = _as_numpy(k)
    last: Exception | None = None
    for driver in ("evd", "ev"):
        try:
            out = scipy.linalg.eigh(a, eigvals_only=not vectors, driver=driver, check_finite=False)
        except (np.linalg.LinAlgError, ValueError) as e:
            last = e
            continue
        if vectors:
            w, v = out
            return w[::-1].copy(), v[:, ::-1].copy()
        return out[::-1].copy()
    raise InrlabError(f"the eigen-solver failed on this kernel ({last}): check it for huge or "
                      f"degenerate values, or use lanczos() for its extreme eigenvalues")


def summary(eigenvalues: np.ndarray) -> dict[str, Any]:
    """λ_max, λ_min, condition number λ_max/λ_min (+inf when λ_min ≤ 0), mean, variance and
    trace of descending eigenvalues (N,), plus the eigenvalues themselves.

    ``floor`` = N·ε·λ_max (ε = float64 machine epsilon) is the rounding floor of a symmetric
    eigen-solver: eigenvalues below it are not resolved, and ``singular`` says λ_min is one.
    """
    lam = np.asarray(eigenvalues, np.float64)
    lmax, lmin = float(lam[0]), float(lam[-1])
    floor = lam.size * np.finfo(np.float64).eps * max(abs(lmax), np.finfo(np.float64).tiny)
    return {"eigenvalues": lam, "n": int(lam.size), "lambda_max": lmax, "lambda_min": lmin,
            "condition": lmax / lmin if lmin > 0 else float("inf"), "mean": float(lam.mean()),
            "variance": float(lam.var()), "trace": float(lam.sum()), "floor": floor,
            "singular": bool(lmin <= floor)}


def kernel_moments(k: torch.Tensor | np.ndarray) -> dict[str, float]:
    """``diag_mean`` κ₁ = tr K / N (= the mean eigenvalue) and ``offdiag_mean`` κ₂, the mean of
    the N(N−1) off-diagonal entries of the kernel ``k`` (N, N).

    κ₂ measures how much all points move together: when it is large the constant direction
    carries an eigenvalue ≈ κ₁ + (N−1)·κ₂ that dominates λ_max. Removing the batch mean (batch
    normalization) drives κ₂ towards 0 and lowers λ_max while leaving κ₁ (Karakida et al.,
    NeurIPS 2019, "pathological sharpness").
    """
    a = _as_numpy(k)
    n = a.shape[0]
    diag = float(np.trace(a)) / n
    off = (float(a.sum()) - diag * n) / (n * (n - 1)) if n > 1 else 0.0
    return {"diag_mean": diag, "offdiag_mean": off}


def report(k: torch.Tensor | np.ndarray, grid_shape: tuple[int, ...] | None = None,
           n_vectors: int = 8, n_bands: int = 8) -> dict[str, Any]:
    """:func:`summary` of kernel ``k`` (N, N); with ``grid_shape`` (points on a regular grid in
    row-major order, prod = N) also the frequency content of the ``n_vectors`` leading
    eigenvectors (:func:`eigenvector_frequencies`)."""
    if grid_shape is None:
        return summary(eigh(k))
    lam, vec = eigh(k, vectors=True)
    return {**summary(lam), **eigenvector_frequencies(vec[:, :n_vectors], grid_shape, n_bands)}


def eigenvector_frequencies(vectors: np.ndarray, grid_shape: tuple[int, ...],
                            n_bands: int = 8) -> dict[str, Any]:
    """Frequency content of eigenvectors (N, k) sampled on a regular grid (row-major, prod = N).

    Each eigenvector is reshaped to ``grid_shape`` and Fourier-transformed. Returns
    ``mean_frequency`` (k,): the energy-weighted mean radial frequency in cycles per sample
    (0 … 0.5 in 1-D, 0 … √0.5 in 2-D, 0 … √0.75 in 3-D), and ``band_energy`` (k, n_bands): the
    energy fraction in ``n_bands`` equal-width shells of radial frequency (see
    ``train.metrics.radial_bands``).
    """
    v = np.asarray(vectors, np.float64)
    n = int(np.prod(grid_shape))
    if v.shape[0] != n:
        raise InrlabError(f"eigenvectors have {v.shape[0]} entries but grid {grid_shape} has {n} "
                          f"points: frequency content needs the kernel on a full regular grid")
    if not 1 <= len(grid_shape) <= 3:
        raise InrlabError(f"eigenvector frequencies support 1-, 2- and 3-D grids, got {grid_shape}")
    freq = radial_frequency(tuple(grid_shape)).ravel()
    bands = radial_bands(tuple(grid_shape), n_bands).ravel()
    axes = tuple(range(len(grid_shape)))
    power = np.abs(np.fft.fftn(v.T.reshape(-1, *grid_shape), axes=tuple(a + 1 for a in axes))) ** 2
    power = power.reshape(v.shape[1], -1)
    total = np.maximum(power.sum(1, keepdims=True), 1e-300)
    band = np.stack([np.bincount(bands, p, minlength=n_bands) for p in power]) / total
    return {"mean_frequency": (power * freq).sum(1) / total[:, 0], "band_energy": band}


def lanczos(model: nn.Module, x: torch.Tensor, k: int = 6, which: str = "largest",
            outputs: str | int = "surrogate", tol: float = 0.0, maxiter: int = 100,
            ncv: int | None = None) -> np.ndarray:
    """The ``k`` largest or smallest eigenvalues (descending, float64) of the eNTK on ``x``
    (N, d) without forming it: implicitly restarted Lanczos (ARPACK, ``scipy.sparse.linalg.eigsh``)
    on kernel–vector products, each one backward and one forward-mode pass over ``x``.

    ``ncv`` Lanczos vectors (default min(N, max(2k + 1, 40))) per restart, at most ``maxiter``
    restarts. The smallest eigenvalues converge well only when they are separated; a cluster of
    near-zero eigenvalues (a rank-deficient kernel) does not converge, and ARPACK's failure is
    raised as an InrlabError saying what to change.
    """
    if which not in ("largest", "smallest"):
        raise InrlabError(f"which={which!r}: use 'largest' or 'smallest'")
    mv = kernel_matvec(model, x, outputs=outputs)
    n = x.shape[0] * (getattr(model, "out_dim", 1) if outputs == "full" else 1)
    if not 1 <= k < n:
        raise InrlabError(f"k={k} eigenvalues of a {n}×{n} kernel: Lanczos needs 1 ≤ k < {n} "
                          f"(use eigh(kernel(...)) for all of them)")
    op = spla.LinearOperator((n, n), matvec=lambda v: mv(torch.from_numpy(np.ravel(v))).cpu().numpy(),
                             dtype=np.float64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = spla.eigsh(op, k=k, which="LA" if which == "largest" else "SA", tol=tol,
                              maxiter=maxiter, ncv=ncv or min(n, max(2 * k + 1, 40)),
                              return_eigenvectors=False,
                              v0=np.random.default_rng(0).standard_normal(n))
    except spla.ArpackNoConvergence as e:
        raise InrlabError(f"Lanczos did not converge for the {k} {which} eigenvalues "
                          f"({len(e.eigenvalues)} converged): raise maxiter, loosen tol, or form the "
                          f"kernel and use eigh() when N is small enough") from None
    if not np.isfinite(vals).all():
        raise InrlabError("Lanczos returned non-finite eigenvalues: the model's gradients are "
                          "non-finite at these points")
    return np.sort(vals)[::-1].copy()
