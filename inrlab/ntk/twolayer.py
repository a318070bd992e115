"""IGA paper, 1-D experiment 1 (Fig. 1): a two-layer ReLU network; the gradient adjustment built
from the analytic NTK, from the full eNTK on all N points, and by IGA (p = 8) at several widths.

Network (NTK parameterization): f(x) = aᵀ relu(W x̃)/√m, x̃ = (x, 1), W, a ~ N(0, 1). Its
infinite-width NTK is Θ(x, x') = x̃·x̃' (π − θ)/(2π) + ‖x̃‖‖x̃'‖ (sin θ + (π − θ) cos θ)/(2π),
θ = ∠(x̃, x̃'). For a residual r at initialisation and the SGD variant (λ_1 … λ_{end−1} raised to
λ₀) each method gives an adjusted function-space step u = K_e S r (K_e: the network's eNTK); the
table reports ‖u − u_full‖/‖u_full‖ for the analytic-NTK S, IGA's inductive S and no adjustment
(the sweep job ``twolayer_ntk``, configs/papers/iga_twolayer.toml).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..techniques.iga import balance, grid_groups
from .kernel import kernel


class TwoLayerReLU(nn.Module):
    """f(x) = aᵀ relu(W (x, 1)) / √m for x (N, 1) → (N, 1); W (m, 2), a (m,) ~ N(0, 1)."""

    def __init__(self, width: int, generator: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(width, 2, generator=generator, dtype=torch.float64))
        self.a = nn.Parameter(torch.randn(width, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = torch.cat([x, torch.ones_like(x)], 1)
        return (torch.relu(xt @ self.w.T) @ self.a / math.sqrt(self.w.shape[0]))[:, None]


def analytic_ntk(x: torch.Tensor) -> torch.Tensor:
    """The infinite-width NTK (N, N) of :class:`TwoLayerReLU` on x (N, 1), float64."""
    xt = torch.cat([x, torch.ones_like(x)], 1).double()
    norm = xt.norm(dim=1)
    dot = xt @ xt.T
    cos = (dot / (norm[:, None] * norm[None, :])).clamp(-1, 1)
    th = torch.arccos(cos)
    return dot * (math.pi - th) / (2 * math.pi) + \
        norm[:, None] * norm[None, :] * (torch.sin(th) + (math.pi - th) * cos) / (2 * math.pi)


def adjusted_steps(model: nn.Module, x: torch.Tensor, r: torch.Tensor, end: int,
                   p: int) -> dict[str, torch.Tensor]:
    """Function-space steps u = K_e S r (N,) for no adjustment (``plain``), the full eNTK
    (``full``), the analytic NTK (``analytic``) and IGA (``iga``: groups of p, centre
    representatives, S applied inductively); x (N, 1), r (N,) float64."""
    k_e = kernel(model, x, "jacobian")
    s_full = balance(k_e, 0, end, "sgd")
    s_ana = balance(analytic_ntk(x), 0, end, "sgd")
    groups = grid_groups((x.shape[0],), p)
    reps = groups[:, p // 2]
    s_iga = balance(kernel(model, x[reps], "jacobian"), 0, end, "sgd")
    r_iga = s_iga.apply(r[groups]).reshape(-1)  # groups are runs in order: back to point order
    return {"plain": k_e @ r, "full": k_e @ s_full.apply(r), "analytic": k_e @ s_ana.apply(r),
            "iga": k_e @ r_iga}
