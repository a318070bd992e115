"""Fourier reparameterized linear layers (FR; Shi et al., CVPR 2024).

A hidden layer's weight is W = Λ·B: B (M, in) is a fixed basis whose rows are sampled cosines
α·cos(ω·x_j + φ) on x_j = linspace(-T/2, T/2, in), T = 2π/ω_min; Λ (out, M) is trained. The
frequencies are L low ones (i+1)/L and H high ones 1 … H, each at Φ phases 2πj/Φ: M = (L+H)·Φ.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InrlabError


def fourier_basis(in_features: int, low: int, high: int, phases: int, alpha: float) -> torch.Tensor:
    """The fixed basis B, shape ((low + high)·phases, in_features), float32.

    Row order: frequency-major (all phases of ω₀, then of ω₁, …), low frequencies first."""
    omegas = [(i + 1) / low for i in range(low)] + [float(i + 1) for i in range(high)]
    omega = torch.tensor(omegas, dtype=torch.float64)
    t = 2 * math.pi / omega.min()
    x = torch.linspace(-t / 2, t / 2, in_features, dtype=torch.float64)
    phi = 2 * math.pi * torch.arange(phases, dtype=torch.float64) / phases
    rows = alpha * torch.cos(omega[:, None, None] * x[None, None, :] + phi[None, :, None])
    return rows.reshape(-1, in_features).float()


class FourierLinear(nn.Module):
    """y = x (Λ B)ᵀ + b for x (N, in) → (N, out); ``coef`` Λ (out, M) and ``bias`` (out,) train,
    ``basis`` B (M, in) is a buffer. ``weight`` is the composed (out, in) matrix."""

    def __init__(self, linear: nn.Linear, basis: torch.Tensor, omega0: float = 1.0):
        super().__init__()
        m = basis.shape[0]
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("basis", basis.to(linear.weight.device))
        norms = basis.norm(dim=1).clamp_min(1e-12).to(linear.weight.device)
        bound = math.sqrt(6 / m) / norms / omega0  # per basis row: U(±√(6/M)/‖B_m‖) (÷ ω₀)
        self.coef = nn.Parameter((torch.rand(self.out_features, m, device=bound.device) * 2 - 1)
                                 * bound)
        self.bias = nn.Parameter(linear.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.coef @ self.basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def default_alpha(model_cfg: object) -> float:
    """The paper's basis amplitude: PE 0.05, sine/FINER 0.004, ReLU (and others) 0.001."""
    if model_cfg.encoding.kind == "positional":  # type: ignore[attr-defined]
        return 0.05
    if model_cfg.activation.kind in ("sine", "finer"):  # type: ignore[attr-defined]
        return 0.004
    return 0.001


def reparameterize(model: nn.Module, low: int, high: int, phases: int,
                   alpha: float | None = None, zero_bias: bool = False) -> int:
    """Replace the hidden-to-hidden linears ``model.linears[1:]`` of an :class:`INR` by
    :class:`FourierLinear` (in place); the first layer (coordinates in) and the head stay plain.
    ``zero_bias``: start their biases at zero (the official code) instead of the replaced layers'
    initial biases. Returns the number of layers replaced."""
    cfg = model.cfg  # type: ignore[attr-defined]
    a = default_alpha(cfg) if alpha is None else alpha
    omega0 = cfg.activation.omega0_hidden if cfg.activation.kind in ("sine", "finer") else 1.0
    linears = model.linears  # type: ignore[attr-defined]
    if any(type(lin) is not nn.Linear for lin in linears[1:]):
        raise InrlabError("FR reparameterizes plain linear layers, but this model's hidden layers "
                          "scale their bias (model.activation.omega_bias = \"outside\"): use "
                          "omega_bias = \"inside\" with FR")
    for i in range(1, len(linears)):
        basis = fourier_basis(linears[i].in_features, low, high, phases, a)
        linears[i] = FourierLinear(linears[i], basis, omega0)
        if zero_bias:
            with torch.no_grad():
                linears[i].bias.zero_()
    return len(linears) - 1
