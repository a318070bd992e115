"""Normalizations for coordinate networks (spec/norms.md): batch, layer, global, cross.

Input X has shape (N, C): N coordinates of the batch, C channels. Every variant has a per-channel
affine γ (init 1), β (init 0) and ε = 1e-5; variances are biased (divide by N or C), like torch.

Evaluation rule. Batch, global and cross norms make a point's output depend on the rest of its
batch. In training mode they always use the batch's statistics. In eval mode they use
``self.stats``:

* ``"batch"`` (default): statistics of the batch being evaluated; evaluating the whole coordinate
  grid in one pass reproduces what training saw (inrlab's default for grid signals).
* ``"frozen"``: statistics captured by :func:`freeze_statistics` (exact statistics of a reference
  batch, normally the full grid after training), so single points can be queried and a point's
  output no longer depends on its batch. Before any capture the running (EMA) statistics of
  training are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import NormConfig, check_choice
from ..registry import NORMS

BATCH_COUPLED = ("batch", "global", "cross")


def _var(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Biased variance by the two-pass formula mean((x − mean)²): equal to ``x.var(dim,
    unbiased=False)`` within float rounding, and 2–20× faster on CPU, where torch's Welford
    reduction is slow for (N, C) activations (measured 64 ms vs 29 ms at 9216 × 256, one
    thread)."""
    if dim is None:
        return (x - x.mean()).square().mean()
    return (x - x.mean(dim, keepdim=True)).square().mean(dim, keepdim=keepdim)


class CoordNorm(nn.Module):
    """One normalization layer; ``kind`` ∈ {batch, layer, global, cross}."""

    def __init__(self, kind: str, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.kind, self.eps, self.momentum = kind, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.stats = "batch"
        shape = () if kind == "global" else (channels,)
        # batch/global: running mean, var of the normalised axis; cross: per-column mean and var,
        # plus the reference batch size N (the cross mean needs Σ_n X_nj = N · mean_j).
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("running_n", torch.tensor(0.0))
        self._capture = False

    @property
    def batch_coupled(self) -> bool:
        return self.kind in BATCH_COUPLED

    def _batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "global":
            return x.mean(), _var(x)
        return x.mean(0), _var(x, 0)  # batch, and the column part of cross

    @property
    def per_point(self) -> bool:
        """True when a point's output depends on that point alone in the current mode: layer
        norm, or a batch-coupled norm in eval mode with frozen statistics."""
        return self.kind == "layer" or (not self.training and self.stats == "frozen"
                                        and not self._capture)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x) * self.weight + self.bias

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x̂ (N, C): the normalized activations before γ, β (and, in training mode, the running
        statistics' update)."""
        if self.kind == "layer":
            mean, var = x.mean(1, keepdim=True), _var(x, 1, keepdim=True)
            return (x - mean) / torch.sqrt(var + self.eps)
        n = x.shape[0]
        if self.training or self.stats == "batch" or self._capture:
            mean, var = self._batch_stats(x)
            n_ref = torch.tensor(float(n), device=x.device)
            if self._capture:
                self.running_mean.copy_(mean.detach())
                self.running_var.copy_(var.detach())
                self.running_n.copy_(n_ref)
            elif self.training:
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean.lerp_(mean.detach(), m)
                    self.running_var.lerp_(var.detach(), m)
                    self.running_n.copy_(n_ref)
        else:
            mean, var, n_ref = self.running_mean, self.running_var, self.running_n
        if self.kind == "cross":
            c = x.shape[1]
            row_sum = x.sum(1, keepdim=True)
            row_var = _var(x, 1, keepdim=True)
            mu = (row_sum + n_ref * mean - x) / (n_ref + c)
            var = (var + row_var).clamp_min(0)  # guard: σ² ≥ 0 even with rounding (fp16 NaN)
            return (x - mu) / torch.sqrt(var + self.eps)
        return (x - mean) / torch.sqrt(var.clamp_min(0) + self.eps)


@NORMS.register()
@dataclass
class NoNorm(NormConfig):
    """No normalization."""

    kind: str = "none"

    def setup(self, channels: int, momentum: float) -> nn.Module:
        return nn.Identity()


@NORMS.register("batch")
@NORMS.register("layer")
@NORMS.register("global")
@NORMS.register("cross")
@dataclass
class CoordNormConfig(NormConfig):
    """The :class:`CoordNorm` of kind ``kind`` (batch, layer, global or cross)."""

    kind: str = "batch"

    def validate(self) -> None:  # one class serves four kinds
        check_choice(self.path, self.kind, ("batch", "layer", "global", "cross"))

    def setup(self, channels: int, momentum: float) -> nn.Module:
        return CoordNorm(self.kind, channels, momentum=momentum)


def batch_coupled(model: nn.Module) -> bool:
    """True when some layer makes a point's output depend on the other points of its batch."""
    return any(isinstance(m, CoordNorm) and m.batch_coupled for m in model.modules())


def coupled_now(model: nn.Module) -> bool:
    """True when some batch-coupled norm of ``model`` computes batch statistics in its current
    mode (training, or eval with ``stats = "batch"``); False once every such norm evaluates
    with frozen statistics (:func:`freeze_statistics` + eval), i.e. point by point."""
    return any(isinstance(m, CoordNorm) and not m.per_point for m in model.modules())


@torch.no_grad()
def freeze_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Capture exact normalization statistics on reference batch ``x`` (N, d) and use them in eval.

    Afterwards ``model.eval()(x)`` equals the batch-statistics output on ``x``, and any subset of
    points (a single one too) gives the same values it had inside ``x``.
    """
    norms = [m for m in model.modules() if isinstance(m, CoordNorm) and m.batch_coupled]
    was_training = model.training
    model.eval()
    for m in norms:
        m._capture = True
    try:
        model(x)
    finally:
        for m in norms:
            m._capture = False
            m.stats = "frozen"
    model.train(was_training)


def set_norm_stats(model: nn.Module, stats: str) -> None:
    """Choose the eval-mode statistics (``"batch"`` or ``"frozen"``) of every norm layer."""
    for m in model.modules():
        if isinstance(m, CoordNorm):
            m.stats = stats
