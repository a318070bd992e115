"""IGA: inductive gradient adjustment (Shi, Chen, Zhang, Gu, ICML 2025; spec/iga.md).

Plain MSE moves the residual as r ← (I − ηK) r with K the eNTK: components on small-eigenvalue
(high-frequency) eigenvectors decay slowly. IGA trains with Jᵀ S r instead of Jᵀ r, where S
balances the top eigenvalues of the eNTK of one representative point per group and is applied
to every point of the groups inductively.

IGA works in the problem's measurement space (spec/problems.md): for direct fitting a
measurement is the field's value at one grid point; through an operator (CT, MRI) it is one
entry of the sinogram or k-space, and the kernel is the measurement-space eNTK
(:meth:`inrlab.problems.Problem.kernel`).

Shapes: M measurements of the problem, n groups of p slots, C channels. ``index`` (n, p) holds
each group's measurement indices in a fixed within-group layout (slot k is the same relative
position in every group), so residuals arrange as r[g, k, c] and
(S r)[g, k, c] = Σ_h S[g, h] r[h, k, c].

Held-out measurements: groups tile the full measurement grid; held-out slots never enter the loss
and carry a zero residual in S r (they cannot be representatives of the residual rule). With
mini-batches of whole groups the same holds for slots outside the batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import TechniqueConfig, TrainConfig, check_choice, check_positive
from ..errors import InrlabError
from ..problems import Batch, Problem
from ..registry import TECHNIQUES
from .base import Technique

KernelFn = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- grouping


def grid_groups(grid_shape: Sequence[int], group: int, layout: str = "auto",
                tail: bool = False) -> torch.Tensor:
    """Group a row-major grid into equal groups: (n, p) int64 coordinate indices.

    ``layout="auto"``: 1-D runs of ``group`` samples; 2-D ``group``×``group`` patches (p = P²,
    slots row-major inside the patch); 3-D ``group``³ blocks. ``layout="slices"``: ``group``×``group``
    patches of the last two axes within every index of the leading ones (rays of neighbouring
    pixels in one view). ``layout="run"``: runs of ``group``
    consecutive flat indices for any dimension. A group size that does not tile the grid is an
    error (IGA needs equal groups): choose a divisor, or resize/crop the signal. Exception:
    ``layout="run"`` with ``tail=True`` leaves the last total mod ``group`` samples out of every
    group (the IGA reference code's 3-D runs of 256 voxels on volumes of any size).
    """
    shape = tuple(int(s) for s in grid_shape)
    total = math.prod(shape)
    if layout == "run" and tail:
        return torch.arange(total - total % group).view(total // group, group)
    if layout == "slices":
        if len(shape) < 2:
            raise InrlabError(f"IGA's slices layout needs a grid of ≥ 2 axes, not {shape}: use "
                              f"train.iga.layout = run")
        *lead, h, w = shape
        if h % group or w % group:
            raise InrlabError(f"IGA patch side {group} does not divide the {h}×{w} slices: choose "
                              f"a common divisor of the sides (train.iga.group) or resize")
        ids = torch.arange(total).view(-1, h // group, group, w // group, group)
        return ids.permute(0, 1, 3, 2, 4).reshape(-1, group * group)
    if layout == "run" or len(shape) == 1:
        if total % group:
            raise InrlabError(f"IGA group size p={group} does not divide the {total} samples: "
                              f"choose a divisor of {total} (train.iga.group)")
        return torch.arange(total).view(total // group, group)
    if len(shape) not in (2, 3):
        raise InrlabError(f"IGA's auto layout handles 1-D to 3-D grids, not {len(shape)}-D: "
                          f"set train.iga.layout = run")
    bad = [s for s in shape if s % group]
    if bad:
        raise InrlabError(f"IGA patch side {group} does not divide the grid {'×'.join(map(str, shape))}: "
                          f"choose a common divisor of the sides (train.iga.group) or resize")
    ids = torch.arange(total).view(shape)
    if len(shape) == 2:
        h, w = shape
        ids = ids.view(h // group, group, w // group, group).permute(0, 2, 1, 3)
    else:
        a, b, c = shape
        ids = ids.view(a // group, group, b // group, group, c // group, group)
        ids = ids.permute(0, 2, 4, 1, 3, 5)
    return ids.reshape(-1, group ** len(shape))


def centre_slot(grid_shape: Sequence[int], group: int, layout: str = "auto") -> int:
    """The slot of a group's centre point (for even sides, the one just past the middle)."""
    if layout == "run" or len(grid_shape) == 1:
        return group // 2
    if layout == "slices":
        return (group // 2) * group + group // 2
    return sum((group // 2) * group ** i for i in range(len(grid_shape)))


def check_groups(groups: torch.Tensor | Sequence[Sequence[int]], n_points: int) -> torch.Tensor:
    """Validate user-given groups (equal sizes, indices in range, no point twice) → (n, p)."""
    if not isinstance(groups, torch.Tensor):
        sizes = sorted({len(g) for g in groups})
        if len(sizes) > 1:
            raise InrlabError(f"IGA groups have unequal sizes {sizes}: the inductive application "
                              f"needs groups of one size p with one layout; regroup or pad")
        groups = torch.as_tensor([list(g) for g in groups], dtype=torch.long)
    if groups.ndim != 2 or groups.numel() == 0:
        raise InrlabError(f"IGA groups must be an (n, p) index array, got shape {tuple(groups.shape)}")
    groups = groups.long()
    if groups.min() < 0 or groups.max() >= n_points:
        raise InrlabError(f"IGA group indices must lie in 0 … {n_points - 1}: fix the groups")
    if torch.unique(groups).numel() != groups.numel():
        raise InrlabError("a point appears in two IGA groups (or twice in one): groups must not "
                          "overlap")
    return groups


# --------------------------------------------------------------------------- the balanced transform


@dataclass
class Balance:
    """S = I − V diag(coeff) Vᵀ over the balanced eigenvectors V (n, e); ``eigenvalues``:
    the leading min(end + 1, n) of the kernel it came from, descending. ``None`` fields mean S = I."""

    vectors: torch.Tensor | None
    coeff: torch.Tensor | None
    eigenvalues: torch.Tensor | None

    def matrix(self, n: int) -> torch.Tensor:
        """The dense (n, n) S (float64; for tests and inspection)."""
        eye = torch.eye(n, dtype=torch.float64)
        if self.vectors is None:
            return eye
        v = self.vectors.double().cpu()
        return eye - (v * self.coeff.double().cpu()) @ v.T

    def apply(self, r: torch.Tensor) -> torch.Tensor:
        """(S r) for r (n, ...) mixing the first axis: r − V (coeff ⊙ (Vᵀ r))."""
        if self.vectors is None:
            return r
        flat = r.reshape(r.shape[0], -1)
        v = self.vectors.to(flat.dtype)
        proj = (v.T @ flat) * self.coeff.to(flat.dtype)[:, None]
        return (flat - v @ proj).reshape(r.shape)


def _eigh_one_thread(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` on one CPU thread (restoring the thread count): right after the
    training forward pass, torch's OpenMP threads still busy-wait while LAPACK's eigh starts its
    own, and on the 2-core development machine a 384 × 384 eigh then took 6–7 s instead of
    0.1 s. One thread is fast enough for n ≤ a few thousand groups."""
    if k.device.type != "cpu":
        return torch.linalg.eigh(k)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(k)
    finally:
        torch.set_num_threads(threads)


LANCZOS_MIN_N = 256  # from this many groups on, leading eigenpairs by Lanczos (CPU)


def leading_eigh(k: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` largest eigenpairs of a symmetric float64 ``k`` (n, n), eigenvalues
    descending (count,) and eigenvectors (n, count).

    Balancing needs only the top ``end + 1`` pairs. On CPU with n ≥ ``LANCZOS_MIN_N`` and
    count ≤ n/4 they come from ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``,
    tolerance 0 = machine precision, a fixed pseudo-random start vector so runs repeat): 15× faster
    than a full eigh at n = 2048 (0.12 vs 1.8 s), eigenvalues equal to its within 1e-12 relative
    and S within 1e-8 (tested). A Lanczos run that does not converge falls back to the full
    ``eigh``."""
    n = k.shape[0]
    if k.device.type == "cpu" and n >= LANCZOS_MIN_N and 4 * count <= n:
        import numpy as np
        from scipy.sparse.linalg import ArpackError, eigsh
        try:
            lam, vec = eigsh(k.detach().numpy(), k=count, which="LA", tol=0,
                             v0=np.random.default_rng(0).standard_normal(n))
            order = np.argsort(lam)[::-1].copy()
            return torch.from_numpy(lam[order]), torch.from_numpy(vec[:, order])
        except ArpackError:
            pass  # ArpackNoConvergence is one: the exact route below
    lam, vec = _eigh_one_thread(k)
    return lam.flip(0)[:count], vec.flip(1)[:, :count]


def balance(kernel: torch.Tensor, start: int, end: int, variant: str = "adam") -> Balance:
    """The balanced transform of a symmetric PSD ``kernel`` (n, n).

    Eigenvalues λ₀ ≥ λ₁ ≥ … (``leading_eigh``): S = I − Σ_{i=start}^{end−1} (1 − λ_t/λ_i) v_i v_iᵀ with
    t = end (``adam``: clip the top ones down to λ_end) or t = 0 (``sgd``: raise them to λ₀).
    The sum stops at the first λ_i ≤ tol = n·ε·λ₀ (numerically zero); if the Adam target λ_end is
    itself ≤ tol, the target becomes the last positive eigenvalue. Raises for ``end`` out of range;
    returns S = I (with a warning) when the eigen-decomposition fails.
    """
    n = kernel.shape[0]
    limit = n - 1 if variant == "adam" else n
    if end > limit:
        raise InrlabError(f"train.iga.end={end} needs more than {n} groups (the {variant} variant "
                          f"needs end ≤ {limit}): lower train.iga.end or use more, smaller groups")
    k = kernel.double()
    try:
        if not torch.isfinite(k).all():
            raise torch.linalg.LinAlgError("non-finite eNTK")
        lam, vec = leading_eigh(k, min(end + 1, n))
    except (torch.linalg.LinAlgError, RuntimeError) as e:
        warnings.warn(f"IGA: eigen-decomposition failed ({str(e).splitlines()[0][:80]}); this "
                      f"step uses the plain gradient (S = I)", RuntimeWarning, stacklevel=3)
        return Balance(None, None, None)
    if lam[0] <= 0:
        return Balance(None, None, lam)
    tol = n * torch.finfo(torch.float64).eps * lam[0]
    positive = int((lam > tol).long().cumprod(0).sum())  # leading positive eigenvalues
    if variant == "adam":
        t = end if end < positive else positive - 1
        stop = t
    else:
        t, stop = 0, min(end, positive)
    if stop <= start:
        return Balance(None, None, lam)
    sel = slice(start, stop)
    coeff = 1 - lam[t] / lam[sel]
    return Balance(vec[:, sel].contiguous(), coeff, lam)


# --------------------------------------------------------------------------- the technique


IGA_VARIANTS = ("adam", "sgd")
IGA_LAYOUTS = ("auto", "run", "slices")
IGA_KERNELS = ("representative", "patch_sum", "patch_mean", "reference")
NTK_METHODS = ("auto", "structured", "jacobian")


@dataclass
class IGAConfig(TechniqueConfig):
    """Inductive gradient adjustment (spec/iga.md): section ``train.iga``, used when
    ``train.technique = "iga"``."""

    group: int = 32  # 1-D and run layout: p samples per group; 2-D: patch side P; 3-D: block side
    layout: str = "auto"  # auto: 1-D runs, 2-D patches, 3-D blocks (or the problem's choice); run:
    # p consecutive flat indices; slices: P×P patches of the last two axes in every leading index
    start: int = 0  # first balanced eigenvalue (index into the descending spectrum)
    end: int = 25  # balance eigenvalues start … end-1 (exclusive)
    variant: str = "adam"  # adam: clip the top ones down to λ_end; sgd: raise 1 … end-1 up to λ₀
    representative: str = "residual"  # residual (largest |r| summed over channels), centre, or a slot
    # eNTK row of a group: representative (the gradient at its representative point), patch_sum /
    # patch_mean (of the output summed / averaged over its training points), reference (the
    # official code's indexing: summed over the slots of every group's residual representative)
    kernel: str = "representative"
    every: int = 1  # recompute the eNTK and S every k steps (full batch only)
    ntk_method: str = "auto"  # inrlab.ntk.kernel route: auto, structured, jacobian
    # with a batch-coupled norm (batch, global, cross): frozen = the norms' statistics of the
    # training batch held fixed, so rows are per point (fast); batch = the eNTK of the group rows
    # taken as one batch (their own statistics; a whole-batch Jacobian, 20-40x slower)
    coupled: str = "frozen"

    def validate(self) -> None:
        check_positive("train.iga.group", self.group)
        check_choice("train.iga.layout", self.layout, IGA_LAYOUTS)
        check_choice("train.iga.variant", self.variant, IGA_VARIANTS)
        check_choice("train.iga.kernel", self.kernel, IGA_KERNELS)
        check_choice("train.iga.ntk_method", self.ntk_method, NTK_METHODS)
        check_choice("train.iga.coupled", self.coupled, ("batch", "frozen"))
        check_positive("train.iga.every", self.every)
        if self.start < 0 or self.end <= self.start:
            raise InrlabError(f"train.iga.start={self.start}, end={self.end}: need 0 ≤ start < end")
        if self.representative not in ("residual", "centre") and not self.representative.isdigit():
            raise InrlabError(f"unknown train.iga.representative {self.representative!r}: choose "
                              f"residual, centre or a slot number (0 … p-1)")


@TECHNIQUES.register()
class IGA(Technique):
    """Inductive gradient adjustment, configured by ``train.iga`` (see :class:`IGAConfig`).

    ``groups``: optional user-given (n, p) measurement indices (equal sizes) replacing the grid
    grouping. ``kernel_fn(model, x, method=, dtype=, outputs=)`` (points x of a direct-fitting
    problem) replaces the problem's kernel (:meth:`Problem.kernel`, the 1/√C surrogate eNTK).
    """

    name = "iga"
    config = IGAConfig

    def __init__(self, cfg: TrainConfig | None = None,
                 groups: torch.Tensor | Sequence[Sequence[int]] | None = None,
                 kernel_fn: KernelFn | None = None):
        super().__init__(cfg)
        self.icfg = self.cfg.iga
        self.icfg.validate()
        self.user_groups = groups
        self.kernel_fn = kernel_fn
        self.fallbacks = 0  # steps that used S = I because eigh failed
        self.last: Balance | None = None
        self._cache: dict[str, torch.Tensor] = {}
        self._balance_step = -1
        self._balance_groups: torch.Tensor | None = None
        self._layout: tuple[torch.Tensor, ...] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The cached balancing S (reused for ``every`` steps) and when it was computed."""
        if self.last is None:
            return {}
        return {"step": self._balance_step, "groups": self._balance_groups,
                "vectors": self.last.vectors, "coeff": self.last.coeff,
                "eigenvalues": self.last.eigenvalues}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.last = Balance(state["vectors"], state["coeff"], state["eigenvalues"])
        self._balance_step, self._balance_groups = int(state["step"]), state["groups"]

    # ------------------------------------------------------------------ setup
    def setup(self, model: nn.Module, problem: Problem) -> None:
        super().setup(model, problem)
        c = self.icfg
        shape, total = problem.measurement_shape, problem.n_measurements
        if self.user_groups is not None:
            self.index = check_groups(self.user_groups, total)
            self.centre = self.index.shape[1] // 2
        else:
            # mini-batches of whole groups never meet a partial tail run, so it may stay ungrouped
            layout = problem.group_layout if c.layout == "auto" else c.layout
            sampled = (self.cfg.batch_size or problem.default_batch_size) is not None
            tail = layout == "run" and sampled and total % c.group < total
            self.index = grid_groups(shape, c.group, layout, tail=tail)
            self.centre = centre_slot(shape, c.group, layout)
        n, p = self.index.shape
        slot_of = torch.full((total,), -1, dtype=torch.long)
        slot_of[self.index.reshape(-1)] = torch.arange(n * p)
        uncovered = int((slot_of[problem.train_idx] < 0).sum())
        if uncovered and (self.user_groups is not None or uncovered >= p):
            raise InrlabError("some training measurements belong to no IGA group: the groups must "
                              "cover every training measurement")
        if uncovered:
            warnings.warn(f"IGA: the last {uncovered} training measurements do not fill a run of "
                          f"{p} and are not trained on", RuntimeWarning, stacklevel=2)
        if c.representative.isdigit() and int(c.representative) >= p:
            raise InrlabError(f"train.iga.representative slot {c.representative} is outside the "
                              f"group of p={p} points: give 0 … {p - 1}")
        self.slot_of = slot_of
        self.train_mask = torch.zeros(n * p, dtype=torch.bool)
        self.train_mask[slot_of[problem.train_idx]] = True
        self.train_mask = self.train_mask.view(n, p)
        self.trainable_groups = torch.nonzero(self.train_mask.any(1)).reshape(-1)
        limit = len(self.trainable_groups) - (1 if c.variant == "adam" else 0)
        if c.end > limit and self.cfg.batch_size is None:
            raise InrlabError(f"train.iga.end={c.end} but the problem has only "
                              f"{len(self.trainable_groups)} groups (need end ≤ {limit}): lower "
                              f"train.iga.end or use smaller groups (train.iga.group)")

    def _on(self, name: str, device: torch.device) -> torch.Tensor:
        key = f"{name}@{device}"
        if key not in self._cache:
            self._cache[key] = getattr(self, name).to(device)
        return self._cache[key]

    def sample_batch(self, problem: Problem, batch_size: int,
                     generator: torch.Generator) -> torch.Tensor:
        """The training measurements of max(1, batch_size // p) random whole groups."""
        n_groups = len(self.trainable_groups)
        k = min(n_groups, max(1, batch_size // self.index.shape[1]))
        chosen = self.trainable_groups[torch.randperm(n_groups, generator=generator)[:k]]
        return self.index[chosen][self.train_mask[chosen]]

    # ------------------------------------------------------------------ one step
    def representatives(self, res: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Slot (n_b,) of each group's representative from residuals ``res`` (n_b, p, C) and the
        slots in the batch ``present`` (n_b, p): largest Σ_c |r|, the centre, or a fixed slot."""
        rule = self.icfg.representative
        if rule == "residual":
            score = res.abs().sum(-1).masked_fill(~present, -1.0)
            return score.argmax(1)
        slot = self.centre if rule == "centre" else int(rule)
        return torch.full((res.shape[0],), slot, dtype=torch.long, device=res.device)

    def kernel(self, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        """Surrogate eNTK (n, n) float64 of ``model`` on the representative measurements ``idx``."""
        assert self.problem is not None
        if self.kernel_fn is not None:
            x = self.problem.points(idx).to(next(model.parameters()).dtype)
            return self.kernel_fn(model, x, method=self.icfg.ntk_method,
                                  dtype=torch.float64, outputs="surrogate")
        return self.problem.kernel(model, idx, method=self.icfg.ntk_method, dtype=torch.float64,
                                   outputs="surrogate")

    def group_kernel(self, model: nn.Module, groups: torch.Tensor, res: torch.Tensor,
                     present: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The eNTK (n_b, n_b) float64 between the batch's groups ``groups`` (n_b,), whose row
        for a group is chosen by ``train.iga.kernel`` (residuals ``res`` (n_b, p, C), slots in
        the batch ``present`` (n_b, p)):

        * ``representative``: the gradient at the group's representative point (:meth:`kernel`);
        * ``patch_sum`` / ``patch_mean``: of the output summed / averaged over the group's points
          in the batch (both give the same S: S depends on eigenvalue ratios only);
        * ``reference``: the official code's indexing, the output summed over the slots of every
          group's representative (slot k counted as often as it is a representative), i.e. the
          patch sum weighted by those counts.

        Patch kernels use :func:`inrlab.ntk.patch.patch_kernel` in the model's dtype.
        """
        kind = self.icfg.kernel
        assert self.problem is not None
        dev = res.device
        index = self._on("index", dev)[groups]  # (n_b, p) measurement indices
        if kind == "representative":
            rep = self.representatives(res, present)
            return self.kernel(model, index[torch.arange(len(groups), device=dev), rep].cpu())
        if kind == "reference":
            rep = self.representatives(res, present)
            counts = torch.bincount(rep, minlength=index.shape[1]).to(dtype)
            weights = counts.expand(len(groups), -1)
        else:
            weights = present.to(dtype)
            if kind == "patch_mean":
                weights = weights / weights.sum(1, keepdim=True)
        from ..ntk.patch import patch_kernel
        param_dtype = next(model.parameters()).dtype
        points = self.problem.points(index.reshape(-1).cpu()).view(*index.shape, -1).to(dev)
        return patch_kernel(model, points.to(dtype), weights, method=self.icfg.ntk_method,
                            dtype=param_dtype).double()

    def _kernel_model(self, model: nn.Module, x: torch.Tensor) -> nn.Module:
        """``model``, or with ``train.iga.coupled = "frozen"`` and a batch-coupled norm, a copy
        whose norms evaluate every point with the statistics of the training batch's query points
        ``x`` (P, d) (``batch.x``: what the training forward saw; for operator problems the
        field's points, not the measurements)."""
        from ..models import coupled_now, freeze_statistics
        from ..ntk.kernel import float_copy

        if self.icfg.coupled != "frozen" or not coupled_now(model):
            return model  # no batch-coupled norm, or already per point (eval, frozen statistics)
        param = next(model.parameters())
        frozen = float_copy(model, param.dtype)
        freeze_statistics(frozen, x.to(param))
        return frozen.eval()

    def loss(self, model: nn.Module, batch: Batch, pred: torch.Tensor, step: int) -> torch.Tensor:
        """L' = (2/(B·C)) Σ pred ⊙ stopgrad(S r): its gradient is the adjusted update (for the
        MSE loss; other losses use their residual, ``Problem.residual``)."""
        assert self.problem is not None
        idx, y = batch.idx, batch.y
        dev = pred.device
        b, ch = pred.shape
        p = self.index.shape[1]
        if self._layout is not None and self._layout[0] is idx:
            groups, local, k_of = self._layout[1:]  # full batch: the same index tensor every step
        else:
            slots = self._on("slot_of", dev)[idx]
            if (slots < 0).any():
                raise InrlabError("the batch holds points outside every IGA group")
            groups, local = torch.unique(slots // p, return_inverse=True)
            k_of = slots % p
            self._layout = (idx, groups, local, k_of)
        r = self.problem.residual(pred.detach(), y).double()
        if r.shape[1] != ch:
            raise InrlabError(f"IGA balances a loss on the predicted measurements alone, but "
                              f"{self.problem.name}'s prediction has {ch} channels for a "
                              f"{r.shape[1]}-channel residual (a further loss term, e.g. NeuS's "
                              f"eikonal): use train.technique mse or fr")
        if not bool(torch.isfinite(r).all()):
            return self.problem.loss(pred, y)  # let the trainer report the divergence
        res = torch.zeros(len(groups), p, ch, dtype=torch.float64, device=dev)
        res[local, k_of] = r
        stale = (self._balance_groups is None or step - self._balance_step >= self.icfg.every
                 or not torch.equal(self._balance_groups, groups))
        if stale:
            present = torch.zeros(len(groups), p, dtype=torch.bool, device=dev)
            present[local, k_of] = True
            k = self.group_kernel(self._kernel_model(model, batch.x), groups, res, present,
                                  pred.dtype)
            bal = balance(k, self.icfg.start, self.icfg.end, self.icfg.variant)
            if bal.eigenvalues is None:
                self.fallbacks += 1
            self.last, self._balance_step, self._balance_groups = bal, step, groups
        assert self.last is not None
        sr = self.last.apply(res)[local, k_of].to(pred.dtype)
        return (2.0 / (b * ch)) * (pred * sr).sum()
