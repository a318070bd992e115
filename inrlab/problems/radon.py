"""A differentiable parallel-beam Radon transform and its exact adjoint, in PyTorch.

Geometry (physical units; the reconstruction grid's pixel centres are linspace(-1, 1, N) along
rows y and columns x, spacing h = 2/(N − 1)): the ray of angle θ and detector offset t is
(y, x) = (−t sin θ + s cos θ, t cos θ + s sin θ), s ∈ ℝ; its measurement is the line integral
∫ f ds. This is scikit-image's ``radon`` convention (θ = 0 integrates down the columns) with the
rotation centre at the grid centre. D detector bins of width Δt tile [−√2·R, √2·R], R = 1 + h/2.

Discretisation: Joseph's method. A ray steps through the rows (or the columns, whichever the ray
crosses more steeply), one sample per row at the ray's crossing, linearly interpolated between the
two neighbouring pixels of that row, weighted by the step length h/|cos θ|. Every ray therefore
has exactly 2N weights, stored densely as ``index`` (M, 2N) pixel indices and ``weight`` (M, 2N)
(out-of-image samples weigh 0). Why this form rather than a torch sparse matrix or rotating with
``grid_sample``:

* forward A f = Σ_k weight[:, k] · f[index[:, k]] is one gather and a sum; its autograd backward
  is the scatter-add Aᵀ, so the adjoint is exact by construction (the same weights) and costs the
  same as the forward;
* gathers are torch.func-transformable (vmap, jacrev), so the Jacobian oracle of A∘f works, and
  measured on CPU they are ~6× faster than ``torch.sparse.mm`` with a CSR matrix (forward +
  backward, 2 M non-zeros);
* any subset of rays (a mini-batch, IGA's representatives) is a slice of the rows: only the pixels
  those rays cross need to be queried.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InrlabError


class ParallelBeam:
    """The Radon operator of an N×N grid for ``angles`` (degrees) and ``detectors`` bins.

    Attributes:
        n: grid side N; pixels are flattened row-major (index r·N + c).
        angles: (A,) float64 degrees; ``theta`` the same in radians.
        detectors: D; ``offsets`` (D,) the bins' centres t_j.
        index / weight: (M, 2N) int64 / float32 Joseph weights of the M = A·D rays, angle-major
            (ray a·D + j is angle a, detector j).
    """

    def __init__(self, n: int, angles: np.ndarray, detectors: int):
        if n < 2:
            raise InrlabError(f"a Radon grid needs N ≥ 2 pixels per side, got {n}")
        if len(angles) == 0:
            raise InrlabError("the Radon operator needs at least one angle")
        self.n, self.detectors = int(n), int(detectors)
        self.angles = np.asarray(angles, np.float64)
        self.theta = np.deg2rad(self.angles)
        self.h = 2.0 / (n - 1)
        half = math.sqrt(2) * (1 + self.h / 2)
        self.dt = 2 * half / detectors
        self.offsets = -half + (np.arange(detectors) + 0.5) * self.dt
        self.index, self.weight = self._joseph()

    @property
    def shape(self) -> tuple[int, int]:
        """(A, D): the sinogram layout of the measurements."""
        return len(self.angles), self.detectors

    @property
    def m(self) -> int:
        return len(self.angles) * self.detectors

    def _joseph(self) -> tuple[torch.Tensor, torch.Tensor]:
        n, h = self.n, self.h
        grid = np.linspace(-1.0, 1.0, n)  # pixel centres, rows and columns
        t = self.offsets[:, None]  # (D, 1)
        idx_all, w_all = [], []
        for th in self.theta:
            c, s = math.cos(th), math.sin(th)
            if abs(c) >= abs(s):  # step through the rows y_i, interpolate along x
                par = (grid[None, :] + t * s) / c
                frac = (t * c + par * s + 1) / h  # fractional column, (D, N)
                step = h / abs(c)
                lo = np.floor(frac)
                w1 = frac - lo
                lo = lo.astype(np.int64)
                rows = np.broadcast_to(np.arange(n)[None, :], lo.shape)
                pix = [(rows, lo), (rows, lo + 1)]
            else:  # step through the columns x_j, interpolate along y
                par = (grid[None, :] - t * c) / s
                frac = (-t * s + par * c + 1) / h  # fractional row, (D, N)
                step = h / abs(s)
                lo = np.floor(frac)
                w1 = frac - lo
                lo = lo.astype(np.int64)
                cols = np.broadcast_to(np.arange(n)[None, :], lo.shape)
                pix = [(lo, cols), (lo + 1, cols)]
            idx, wts = [], []
            for (r, cc), w in zip(pix, (1 - w1, w1), strict=True):
                inside = (r >= 0) & (r < n) & (cc >= 0) & (cc < n)
                idx.append(np.where(inside, np.clip(r, 0, n - 1) * n + np.clip(cc, 0, n - 1), 0))
                wts.append(np.where(inside, w * step, 0.0))
            idx_all.append(np.stack(idx, -1).reshape(len(t), 2 * n))
            w_all.append(np.stack(wts, -1).reshape(len(t), 2 * n))
        index = torch.from_numpy(np.concatenate(idx_all))
        weight = torch.from_numpy(np.concatenate(w_all)).float()
        return index, weight

    def rows(self, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(index, weight) of the rays ``idx`` (B,) (all rays for None): (B, 2N) each."""
        if idx is None:
            return self.index, self.weight
        return self.index[idx], self.weight[idx]

    def project(self, image: torch.Tensor) -> torch.Tensor:
        """A f: the sinogram (M, C) of ``image`` (N², C) (row-major pixels); differentiable."""
        return apply_rays(image, self.index.to(image.device), self.weight.to(image.device))

    def backproject(self, sino: torch.Tensor) -> torch.Tensor:
        """Aᵀ g: (N², C) from a sinogram ``sino`` (M, C); the exact adjoint of :meth:`project`."""
        w = self.weight.to(sino.device, sino.dtype)
        vals = (w[..., None] * sino[:, None, :]).reshape(-1, sino.shape[1])
        out = torch.zeros(self.n * self.n, sino.shape[1], dtype=sino.dtype, device=sino.device)
        return out.index_add(0, self.index.to(sino.device).reshape(-1), vals)


def apply_rays(values: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ_k weight[:, k] · values[index[:, k]]: (B, C) line integrals from point values (P, C),
    ``index`` (B, K) into the points and ``weight`` (B, K). Its autograd backward is the exact
    scatter-add adjoint."""
    return torch.einsum("bkc,bk->bc", values[index], weight.to(values.dtype))
