"""The INR model: encoding → hidden layers (Linear → norm → activation) → linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig


class ScaledLinear(nn.Linear):
    """z = (s_w·W) x + s_b·b, x (N, in) → (N, out): a linear layer whose stored weight and bias
    are scaled in the forward pass (the gradients and Adam see the stored ones).

    This is how FreSh's reference SIREN differs from Sitzmann's (``SineActivation.omega_bias``,
    ``omega_head``): its sine layers compute sin(ω₀·Wx + b), i.e. z = Wx + b/ω₀ before
    sin(ω₀ z) (s_b = 1/ω₀), and its head computes W(ω₀ h) + b (s_w = ω₀). Parameter names and
    shapes are those of ``nn.Linear``; the structured eNTK refuses it (it takes the Jacobian
    route), as for any layer that is not a plain ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, weight_scale: float = 1.0,
                 bias_scale: float = 1.0):
        super().__init__(in_features, out_features)
        self.weight_scale, self.bias_scale = float(weight_scale), float(bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.weight_scale == 1.0 else self.weight * self.weight_scale
        return F.linear(x, w, self.bias * self.bias_scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight_scale={self.weight_scale:g}, " \
               f"bias_scale={self.bias_scale:g}"


def make_linear(in_features: int, out_features: int, scales: tuple[float, float]) -> nn.Linear:
    """A plain ``nn.Linear`` when ``scales`` (s_w, s_b) is (1, 1), else a :class:`ScaledLinear`."""
    if tuple(scales) == (1.0, 1.0):
        return nn.Linear(in_features, out_features)
    return ScaledLinear(in_features, out_features, *scales)


def hidden_linears(cfg: ModelConfig, in_dim: int) -> nn.ModuleList:
    """The ``cfg.depth`` hidden linear layers (in_dim → width → … → width), each scaled as the
    activation asks (``ActivationConfig.linear_scales``) and not yet initialised."""
    dims = [in_dim] + [cfg.width] * cfg.depth
    return nn.ModuleList(make_linear(a, b, cfg.activation.linear_scales(first=i == 0))
                         for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)))


def argument_scale(act: nn.Module) -> float:
    """The factor an activation applies to its input before the nonlinearity: ω₀ of sine,
    FINER and WIRE, s of Gauss, 1 for the others."""
    return float(getattr(act, "omega0", getattr(act, "scale", 1.0)))


def hidden_layer(lin: nn.Module, norm: nn.Module, act: nn.Module, h: torch.Tensor,
                 placement: str) -> torch.Tensor:
    """One hidden layer on h (N, in) → (N, width) with its norm placed by ``placement`` (a
    resolved ``ModelConfig.placement()``): ``pre`` act(norm(lin h)), ``post`` norm(act(lin h)),
    ``scaled`` act(norm(lin h) / a) with a = :func:`argument_scale` (the sine then sees the
    normalised argument itself, sin(norm(z)), instead of sin(ω₀·norm(z))); without a norm,
    act(lin h)."""
    if isinstance(norm, nn.Identity):
        return act(lin(h))
    if placement == "post":
        return norm(act(lin(h)))
    if placement == "scaled":
        return act(norm(lin(h)) / argument_scale(act))
    return act(norm(lin(h)))


class INR(nn.Module):
    """Coordinate network f: (N, in_dim) → (N, out_dim).

    ``linears[i]``, ``norms[i]``, ``acts[i]`` form hidden layer i (norm placed by
    ``cfg.placement()``, :func:`hidden_layer`); ``head`` is the output layer
    (no norm, no activation). ``features(x)`` returns the last hidden activations (N, width).
    """

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int):
        super().__init__()
        cfg.validate()
        self.cfg, self.in_dim, self.out_dim = cfg, in_dim, out_dim
        self.encoding = cfg.encoding.setup(in_dim)
        self.linears = hidden_linears(cfg, self.encoding.out_dim)
        self.norms = nn.ModuleList(cfg.setup_norm() for _ in range(cfg.depth))
        self.acts = nn.ModuleList(cfg.activation.setup(first=i == 0) for i in range(cfg.depth))
        self.head = make_linear(cfg.width, out_dim, cfg.activation.head_scales())
        for i, lin in enumerate(self.linears):
            cfg.activation.init_linear(lin, first=i == 0)
        cfg.activation.init_linear(self.head, first=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoding(x)
        for lin, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            h = hidden_layer(lin, norm, act, h, self.cfg.placement())
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(cfg: ModelConfig, in_dim: int, out_dim: int) -> INR:
    """Build the :class:`INR` described by ``cfg`` (validates it first)."""
    return INR(cfg, in_dim, out_dim)
