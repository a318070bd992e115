"""The Signal protocol: coordinates, targets, a held-out split, scoring and rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig


@dataclass
class Signal:
    """A sampled signal on a regular grid.

    Attributes:
        name: short name used in run folders and reports.
        coords: (N, d) float32 coordinates in [-1, 1], every grid point in row-major order.
        targets: (N, C) float32 values in ``value_range``.
        grid_shape: spatial shape, prod(grid_shape) == N.
        train_idx / heldout_idx: (N_train,) / (N_heldout,) int64 indices into coords.
        value_range: (lo, hi) of valid target values (images: (-1, 1), shown as [0, 1]).
        meta: free-form description written into the run's config.
        config: the SignalConfig that rebuilds this signal (None for in-memory arrays).
    """

    name: str
    coords: torch.Tensor
    targets: torch.Tensor
    grid_shape: tuple[int, ...]
    train_idx: torch.Tensor
    heldout_idx: torch.Tensor
    value_range: tuple[float, float] = (-1.0, 1.0)
    meta: dict[str, Any] = field(default_factory=dict)
    config: SignalConfig | None = None

    @property
    def dim(self) -> int:
        return self.coords.shape[1]

    @property
    def channels(self) -> int:
        return self.targets.shape[1]

    @property
    def n(self) -> int:
        return self.coords.shape[0]

    @property
    def data_range(self) -> float:
        return self.value_range[1] - self.value_range[0]

    def grid(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, C) values → (*grid_shape, C) float64 array."""
        v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        return np.asarray(v, np.float64).reshape(*self.grid_shape, -1)

    def score(self, pred: np.ndarray | torch.Tensor, structural: bool = True) -> dict[str, Any]:
        """Metrics of a full-grid prediction (N, C); subclasses add their own.

        ``structural=False`` skips the costly structural metrics (SSIM, MS-SSIM), as the
        trainer's periodic evaluations do; the final evaluation computes everything."""
        from ..train.metrics import psnr

        p = self.grid(pred).reshape(self.n, -1)
        y = self.grid(self.targets).reshape(self.n, -1)
        tr, ho = self.train_idx.numpy(), self.heldout_idx.numpy()
        r = self.data_range
        return {
            "psnr": psnr(p, y, r),
            "psnr_train": psnr(p[tr], y[tr], r),
            "psnr_heldout": psnr(p[ho], y[ho], r) if len(ho) else None,
            "mse": float(np.mean((p - y) ** 2)),
        }


def split(n: int, heldout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of range(n) into (train, heldout) sorted index tensors."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    k = int(round(heldout * n))
    return perm[k:].sort().values, perm[:k].sort().values
