"""The Problem interface: what is fitted, through which operator, and how it is scored and shown.

A field f_θ: ℝ^d → ℝ^C (the model) is queried at the points of a batch; the problem maps those
outputs to measurements, m̂ = A(f(x_1), …, f(x_P); batch), compared with measured m by its loss
(spec/problems.md). Direct fitting (images, 1-D signals, video, volumes) is A = identity.

Every problem owns a set of M **measurements** laid out on ``measurement_shape`` (an image: its
pixels; CT: angles × detectors; MRI: k-space), of which ``train_idx`` are trained on. A training
batch is a set of measurement indices; :meth:`Problem.batch` turns them into the query points and
whatever the operator needs. The trainer, the techniques (IGA groups measurements on
``measurement_shape``), the eNTK (:meth:`Problem.kernel`: the measurement-space kernel), FreSh
(:meth:`Problem.reference`) and the report talk to problems only.

Problem kinds register by the prefix of their name (``sines:…``, ``ct:…``, ``mri:…``): see
:func:`register_problem`. Plugins register from their import, or through the ``inrlab.problems``
entry-point group (``name = "module:function"``, called with no arguments).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, SignalConfig
from ..errors import InrlabError
from ..registry import Registry


@dataclass
class Batch:
    """One training batch.

    Attributes:
        idx: (B,) int64 measurement indices (into the problem's M measurements).
        x: (P, d) query points the field is evaluated at (P = B for direct fitting).
        y: (B, C_m) target measurements.
        extra: whatever the operator needs (angles, detector rows, k-space indices, rays, …).
    """

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> Batch:
        return Batch(self.idx.to(device), self.x.to(device), self.y.to(device),
                     {k: v.to(device) if isinstance(v, torch.Tensor) else v
                      for k, v in self.extra.items()})


@dataclass
class GridData:
    """A field sampled on a regular grid: ``coords`` (N, d) in row-major order of ``shape``
    (prod(shape) == N) and ``values`` (N, C)."""

    coords: torch.Tensor
    shape: tuple[int, ...]
    values: torch.Tensor


class Problem(ABC):
    """Base class of every problem. Subclasses set the attributes below in ``__init__`` and
    implement :meth:`batch`, :meth:`evaluate`, :meth:`reference` and :meth:`save_outputs`;
    operators override :meth:`forward` (and :meth:`kernel` when a faster exact route exists).

    Attributes:
        name: short name used in run folders and reports.
        in_dim / out_dim: the field's input dimension d and output channels C.
        measurement_shape: layout of the M measurements (prod == M), e.g. (H, W) or (angles, detectors).
        train_idx: (M_train,) int64 measurement indices that are trained on.
        meta: free-form description written into the run's config (``kind`` first).
        config: the SignalConfig that rebuilds this problem (None for in-memory data).
        data_range: range of the measurements, for the PSNR shown during training (None: no PSNR).
    """

    name: str
    in_dim: int
    out_dim: int
    measurement_shape: tuple[int, ...]
    train_idx: torch.Tensor
    meta: dict[str, Any]
    config: SignalConfig | None = None
    data_range: float | None = None
    identity: bool = False  # measurement i is the field's value at point i (direct fitting)
    linear: bool = False  # forward is linear in the field's outputs and apply_operator exists
    band_bins: np.ndarray | None = None  # 1-D: the rfft bins of the band errors Δ_k (IGA sines)
    outputs: tuple[str, ...] = ("reconstruction.png", "summary.png")  # files save_outputs writes
    # mini-batch size used when train.batch_size is unset (None: full batch); problems too large
    # for a full batch (volumes, video) set it and refuse full_batch()
    default_batch_size: int | None = None
    group_layout: str = "auto"  # IGA's grouping when train.iga.layout is auto (NeRF: "slices")

    # ------------------------------------------------------------------ the field
    def build_model(self, cfg: ModelConfig) -> nn.Module:
        """The field this problem trains, described by ``cfg``: the coordinate network
        (``inrlab.models.build_model``) by default; rendering problems build a radiance field."""
        from ..models import build_model

        return build_model(cfg, self.in_dim, self.out_dim)

    def step(self, model: nn.Module, step: int) -> None:
        """Called by the trainer before each training step with the model being trained. Problems
        whose sampling adapts to the field (NeRF's occupancy grid) update here; default: nothing."""
        return None

    def statistics_points(self) -> torch.Tensor:
        """Query points (N, d) on which batch-coupled normalizations freeze their statistics after
        training: the reference grid's coordinates by default."""
        return self.reference().coords

    # ------------------------------------------------------------------ training
    @property
    def n_measurements(self) -> int:
        return math.prod(self.measurement_shape)

    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Measurement indices (batch_size,) of a mini-batch: uniform over the training
        measurements, with replacement, drawn with ``generator``."""
        return self.train_idx[torch.randint(self.n_train, (batch_size,), generator=generator)]

    @abstractmethod
    def batch(self, idx: torch.Tensor) -> Batch:
        """The batch that measures ``idx`` (B,): query points, targets and operator data."""

    def full_batch(self) -> Batch:
        """The batch of every training measurement (what full-batch training uses each step)."""
        return self.batch(self.train_idx)

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Measurements (B, C_m) predicted from the field's outputs ``out`` (P, C) at ``batch.x``;
        differentiable. Identity for direct fitting."""
        return out

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scalar loss of predicted measurements ``pred`` against ``y`` (both (B, C_m)): MSE."""
        return torch.mean((pred - y) ** 2)

    def residual(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C_m) residual r with ∂loss/∂pred ∝ r (what IGA balances): pred − y for MSE."""
        return pred - y

    def measure(self, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        """Predicted measurements (len(idx), C_m) of ``model``, differentiable in its parameters."""
        p = next(model.parameters())
        b = self.batch(idx.cpu()).to(p.device)
        return self.forward(model(b.x.to(p.dtype)), b)

    def kernel(self, model: nn.Module, idx: torch.Tensor, method: str = "auto",
               dtype: torch.dtype = torch.float64, outputs: str | int = "surrogate") -> torch.Tensor:
        """The measurement-space eNTK K_m = J_m J_mᵀ on measurements ``idx`` (n,): (n, n), or
        (C·n, C·n) for ``outputs="full"`` (see :func:`inrlab.ntk.kernel`).

        Direct fitting: the eNTK on the measured points (any route). Linear operators
        (``linear``): A K Aᵀ matrix-free from per-point gradient features when the model allows
        (:mod:`inrlab.ntk.operator`), unless ``method="jacobian"``. Otherwise the Jacobian of A∘f
        (exact for any differentiable A)."""
        from ..ntk import kernel, measurement_kernel

        if self.identity:
            return kernel(model, self.points(idx), method=method, dtype=dtype, outputs=outputs)
        if self.linear and method != "jacobian":
            from ..ntk.operator import linear_operator_kernel, supports

            if supports(model):
                dev = next(model.parameters()).device
                b = self.batch(torch.as_tensor(idx).cpu()).to(dev)
                return linear_operator_kernel(model, b.x, lambda v: self.apply_operator(b, v),
                                              dtype=dtype, outputs=outputs)
        if method == "structured":
            raise InrlabError(f"the structured eNTK has no route through the {self.meta.get('kind')} "
                              f"operator: use method='jacobian' (or 'auto')")
        return measurement_kernel(model, self, idx, dtype=dtype, outputs=outputs)

    def kernel_route(self, model: nn.Module, method: str = "auto") -> str:
        """Which route :meth:`kernel` takes for ``model``: ``structured`` / ``jacobian`` (direct
        fitting, as :func:`inrlab.ntk.resolve_method`), ``operator`` (matrix-free A K Aᵀ) or
        ``jacobian`` (of A∘f)."""
        from ..ntk import resolve_method
        from ..ntk.operator import supports

        if self.identity:
            return resolve_method(model, method)
        return "operator" if self.linear and method != "jacobian" and supports(model) else "jacobian"

    def apply_operator(self, batch: Batch, values: torch.Tensor) -> torch.Tensor:
        """Linear problems (``linear = True``): the operator applied to F columns of field values
        ``values`` (P, F) at ``batch.x``, (B, C_m, F), without autograd; what the matrix-free
        measurement eNTK (:mod:`inrlab.ntk.operator`) contracts per-point gradients with."""
        raise InrlabError(f"{self.meta.get('kind', type(self).__name__)} has no linear operator to "
                          f"apply: set linear = False or implement apply_operator")

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        """Query points (n, d) of the measurements ``idx`` of a direct-fitting problem."""
        raise InrlabError(f"{self.meta.get('kind', type(self).__name__)} measurements are not "
                          f"single points: use Problem.kernel")

    def progress(self, loss: float) -> dict[str, str]:
        """What the progress bar shows for a batch loss."""
        out = {"loss": f"{loss:.2e}"}
        if self.data_range is not None:
            out["psnr"] = f"{10 * math.log10(self.data_range ** 2 / max(loss, 1e-30)):.2f}"
        return out

    # ------------------------------------------------------------------ scoring and pictures
    def headline(self, metrics: dict[str, Any]) -> str:
        """The final metrics in one line for the command line (PSNR and SSIM by default)."""
        m = metrics
        return (f"PSNR {fmt_metric(m.get('psnr'))} dB (train {fmt_metric(m.get('psnr_train'))}, "
                f"held-out {fmt_metric(m.get('psnr_heldout'))}), SSIM {fmt_metric(m.get('ssim'))}")

    @abstractmethod
    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """Metrics of ``model`` (reconstruct, render or extract, then score). ``structural=False``
        skips costly metrics (SSIM …), as the trainer's periodic evaluations do."""

    @abstractmethod
    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """Write the run folder's pictures (``reconstruction.png``, ``summary.png`` …)."""

    @abstractmethod
    def reference(self) -> GridData:
        """The problem's reference grid, where the field and a target are both known: the image
        itself for direct fitting, FBP for CT, zero-filled IFFT for MRI. Used by FreSh, band
        errors and plots."""

    def reference_outputs(self, outputs: Callable[[torch.Tensor], torch.Tensor],
                          device: torch.device) -> torch.Tensor:
        """What FreSh compares with ``reference().values``: the outputs (R, N, C) of R models on
        the reference grid. ``outputs(x)`` evaluates the R models at points x (N, d). Rendering
        problems override this (rendered views instead of field values)."""
        return outputs(self.reference().coords.to(device))

    def preview(self) -> np.ndarray | None:
        """The target as an (H, W, C) image in [0, 1] for reports, or None."""
        return None


def fmt_metric(v: float | None) -> str:
    """A metric for a one-line summary: 4 decimals below 10, else 2; ``n/a`` for None."""
    return "n/a" if v is None else f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


# --------------------------------------------------------------------------- registry

Builder = Callable[[SignalConfig], Problem]


@dataclass
class ProblemKind:
    """A registered kind: ``prefix`` of the names it builds (``ct`` for ``ct:shepp_logan``)."""

    prefix: str
    build: Builder
    help: str


# Built-in kinds register in inrlab/problems/__init__.py; a plugin's entry point in the group
# ``inrlab.problems`` is a function that calls register_problem.
PROBLEMS: Registry[ProblemKind] = Registry("problem kind", "inrlab.problems", ("inrlab.problems",))


def register_problem(prefix: str, build: Builder, help: str = "") -> None:
    """Make ``PREFIX:REST`` names build problems with ``build(cfg)`` (cfg.name is the whole name)."""
    PROBLEMS.register(prefix)(ProblemKind(prefix, build, help))


def problem_prefix(name: str) -> str | None:
    """The registered prefix of ``name`` (``ct`` for ``ct:shepp_logan``), or None."""
    head = name.split(":", 1)[0] if ":" in name else None
    return head if head in PROBLEMS else None


def load_problem(cfg: SignalConfig) -> Problem:
    """The problem ``cfg.name`` names: ``PREFIX:…`` for a registered kind, else an image (a
    path or an embedded scikit-image name)."""
    cfg.validate()
    prefix = problem_prefix(cfg.name)
    if prefix is not None:
        return PROBLEMS[prefix].build(cfg)
    head = cfg.name.split(":", 1)[0]
    if ":" in cfg.name and not Path(cfg.name).exists() and len(head) > 1:
        raise InrlabError(f"unknown problem kind {head!r} in {cfg.name!r}: choose one of "
                          f"{', '.join(sorted(PROBLEMS))}, or give an image path")
    return PROBLEMS["image"].build(cfg)
