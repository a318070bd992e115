"""Direct fitting of a signal sampled on a regular grid (identity operator): coordinates,
targets, a held-out split, scoring. :class:`Image` and :class:`Function1D` build on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig
from ..models import predict
from .base import Batch, GridData, Problem


@dataclass(eq=False)
class Signal(Problem):
    """A sampled signal on a regular grid, fitted directly: measurement i is the value at
    coordinate i (``measurement_shape`` = ``grid_shape``).

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

    identity = True
    outputs = ("reconstruction.png", "reconstruction.npy", "summary.png")

    @property
    def in_dim(self) -> int:
        return self.coords.shape[1]

    @property
    def out_dim(self) -> int:
        return self.targets.shape[1]

    @property
    def n(self) -> int:
        return self.coords.shape[0]

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.grid_shape

    @property
    def data_range(self) -> float:
        return self.value_range[1] - self.value_range[0]

    def batch(self, idx: torch.Tensor) -> Batch:
        return Batch(idx, self.coords[idx], self.targets[idx])

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        return self.coords[idx]

    def reference(self) -> GridData:
        return GridData(self.coords, self.grid_shape, self.targets)

    def evaluate(self, model: torch.nn.Module, structural: bool = True) -> dict[str, Any]:
        dev = next(model.parameters()).device
        return self.score(predict(model, self.coords.to(dev)).float().cpu(), structural)

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """Any grid: the prediction as ``reconstruction.npy`` (*grid_shape, C) and the PSNR curve
        as ``summary.png``; images and 1-D signals draw more."""
        import matplotlib.pyplot as plt

        from ..plots import psnr_curve

        dev = next(model.parameters()).device
        np.save(out / "reconstruction.npy", self.grid(predict(model, self.coords.to(dev)).float()))
        fig, ax = plt.subplots(figsize=(6, 4))
        psnr_curve(ax, history)
        fig.suptitle(self.name)
        fig.tight_layout()
        fig.savefig(out / "summary.png", dpi=80)
        plt.close(fig)

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
