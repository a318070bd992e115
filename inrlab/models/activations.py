"""Hidden-layer activations and their initialisations.

Every activation maps pre-activations z (N, C) elementwise. ``init_linear`` applies the scheme
the activation was published with to the linear layer that feeds it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ActivationConfig
from . import kernels


class Sine(nn.Module):
    """SIREN: sin(ω₀ z) (fused kernel, see ``kernels``)."""

    def __init__(self, omega0: float):
        super().__init__()
        self.omega0 = omega0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return kernels.apply("sine", z, self.omega0)


class Finer(nn.Module):
    """FINER: sin(ω₀ (|z| + 1) z), the scale (|z| + 1) detached from the graph as published."""

    def __init__(self, omega0: float):
        super().__init__()
        self.omega0 = omega0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return kernels.apply("finer", z, self.omega0)


def gauss_envelope(u: torch.Tensor) -> torch.Tensor:
    """exp(-u²), set to exactly 0 where u² > 40 (the value is then below 4e-18).

    Without the cut, far tails underflow to denormal floats, and CPU matmuls on denormal inputs ran
    100× slower here (65536×256 @ 256×256: 23 s instead of 0.24 s); exact zeros cost nothing.
    """
    return kernels.envelope_formula(u)


class Gauss(nn.Module):
    """Gaussian activation exp(-(s z)²) (tails below 4e-18 set to 0, see ``gauss_envelope``)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return kernels.apply("gauss", z, self.scale)


class Wire(nn.Module):
    """WIRE, real Gabor wavelet: cos(ω z) · exp(-(s z)²) (envelope as in ``gauss_envelope``)."""

    def __init__(self, omega0: float, scale: float):
        super().__init__()
        self.omega0, self.scale = omega0, scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return kernels.apply("wire", z, self.omega0, self.scale)


def build_activation(cfg: ActivationConfig, first: bool) -> nn.Module:
    """The activation after the first (``first=True``) or a later hidden layer."""
    omega = cfg.omega0_first if first else cfg.omega0_hidden
    if cfg.kind == "relu":
        return nn.ReLU()
    if cfg.kind == "sine":
        return Sine(omega)
    if cfg.kind == "finer":
        return Finer(omega)
    if cfg.kind == "gauss":
        return Gauss(cfg.scale)
    return Wire(omega, cfg.scale)


@torch.no_grad()
def init_linear(layer: nn.Linear, cfg: ActivationConfig, first: bool) -> None:
    """SIREN initialisation for sine/FINER networks; PyTorch's default otherwise.

    SIREN: first layer W ~ U(-1/in, 1/in); later layers (and the head) W ~ U(±√(6/in)/ω₀_hidden).
    ``first_bias_scale`` k sets the first layer's bias to U(-k, k) (FINER's knob, swept by FreSh).
    """
    if cfg.kind not in ("sine", "finer"):
        return
    fan_in = layer.in_features
    bound = 1 / fan_in if first else math.sqrt(6 / fan_in) / cfg.omega0_hidden
    layer.weight.uniform_(-bound, bound)
    if first and cfg.first_bias_scale is not None:
        layer.bias.uniform_(-cfg.first_bias_scale, cfg.first_bias_scale)
