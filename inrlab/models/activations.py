"""Hidden-layer activations and their initialisations.

Every activation maps pre-activations z (N, C) elementwise. A kind's config (``setup``) builds
it; its ``init_linear`` applies the scheme the activation was published with to the linear layer
that feeds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..config import ActivationConfig
from ..errors import InrlabError
from ..registry import ACTIVATIONS
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


# --------------------------------------------------------------------------- configs, one per kind


@ACTIVATIONS.register()
@dataclass
class ReLUActivation(ActivationConfig):
    """max(z, 0) with PyTorch's default initialisation (the spectral-bias baseline)."""

    kind: str = "relu"

    def setup(self, first: bool) -> nn.Module:
        return nn.ReLU()


@ACTIVATIONS.register()
@dataclass
class SineActivation(ActivationConfig):
    """SIREN (:class:`Sine`) with its initialisation."""

    kind: str = "sine"
    omega0_first: float = 30.0  # frequency of the first layer
    omega0_hidden: float = 30.0  # frequency of the other hidden layers
    first_bias_scale: float | None = None  # first-layer bias ~ U(-k, k) (None: torch's)
    # where ω₀ meets the bias: inside, sin(ω₀(Wx + b)) (Sitzmann et al.), or outside,
    # sin(ω₀·Wx + b) (FreSh's reference code)
    omega_bias: str = "inside"
    omega_head: bool = False  # head W(ω₀ h) + b (FreSh's reference code) instead of W h + b
    positive: ClassVar[tuple[str, ...]] = ("omega0_first", "omega0_hidden")
    omega_bias_choices: ClassVar[tuple[str, ...]] = ("inside", "outside")
    # a norm before sin(ω₀·z) makes the argument's std ω₀ (noise, 12–18 dB on Kodak); after the
    # sine it keeps SIREN's initialisation (docs/core.md, configs/sweeps/norm_placement.toml)
    norm_placement: ClassVar[str] = "post"

    def validate(self) -> None:
        super().validate()
        k = self.first_bias_scale
        if k is not None and not (math.isfinite(k) and k >= 0):
            raise InrlabError(f"model.activation.first_bias_scale={k} must be a finite number ≥ 0 "
                              f"(or unset)")
        if self.omega_bias not in self.omega_bias_choices:
            raise InrlabError(f"model.activation.omega_bias={self.omega_bias!r} is not possible "
                              f"for kind {self.kind!r}: choose "
                              f"{' or '.join(self.omega_bias_choices)}")

    def setup(self, first: bool) -> nn.Module:
        return Sine(self.omega0_first if first else self.omega0_hidden)

    def linear_scales(self, first: bool) -> tuple[float, float]:
        """``omega_bias = "outside"``: z = Wx + b/ω₀, so that sin(ω₀ z) = sin(ω₀·Wx + b)."""
        if self.omega_bias == "outside":
            return 1.0, 1.0 / (self.omega0_first if first else self.omega0_hidden)
        return 1.0, 1.0

    def head_scales(self) -> tuple[float, float]:
        """``omega_head``: the head computes W(ω₀ h) + b with ω₀ = ``omega0_hidden``."""
        return (self.omega0_hidden, 1.0) if self.omega_head else (1.0, 1.0)

    @torch.no_grad()
    def init_linear(self, layer: nn.Linear, first: bool) -> None:
        """SIREN: first layer W ~ U(-1/in, 1/in); later layers (and the head) W ~
        U(±√(6/in)/ω₀_hidden). ``first_bias_scale`` k sets the first layer's bias to U(-k, k)
        (FINER's knob, swept by FreSh)."""
        fan_in = layer.in_features
        bound = 1 / fan_in if first else math.sqrt(6 / fan_in) / self.omega0_hidden
        layer.weight.uniform_(-bound, bound)
        if first and self.first_bias_scale is not None:
            layer.bias.uniform_(-self.first_bias_scale, self.first_bias_scale)


@ACTIVATIONS.register()
@dataclass
class FinerActivation(SineActivation):
    """FINER (:class:`Finer`) with SIREN's initialisation."""

    kind: str = "finer"
    # FINER's scale (|z| + 1) needs the whole argument z = Wx + b: the bias sits inside ω₀, as in
    # FINER's and FreSh's reference code
    omega_bias_choices: ClassVar[tuple[str, ...]] = ("inside",)

    def setup(self, first: bool) -> nn.Module:
        return Finer(self.omega0_first if first else self.omega0_hidden)


@ACTIVATIONS.register()
@dataclass
class GaussActivation(ActivationConfig):
    """Gaussian exp(-(s z)²) (:class:`Gauss`)."""

    kind: str = "gauss"
    scale: float = 10.0  # width s in exp(-(s·z)²)
    positive: ClassVar[tuple[str, ...]] = ("scale",)

    def setup(self, first: bool) -> nn.Module:
        return Gauss(self.scale)


@ACTIVATIONS.register()
@dataclass
class WireActivation(ActivationConfig):
    """WIRE real Gabor wavelet cos(ω z)·exp(-(s z)²) (:class:`Wire`)."""

    kind: str = "wire"
    omega0_first: float = 30.0  # frequency ω of the first layer
    omega0_hidden: float = 30.0  # frequency ω of the other hidden layers
    scale: float = 10.0  # width s of the Gaussian envelope
    positive: ClassVar[tuple[str, ...]] = ("omega0_first", "omega0_hidden", "scale")

    def setup(self, first: bool) -> nn.Module:
        return Wire(self.omega0_first if first else self.omega0_hidden, self.scale)
