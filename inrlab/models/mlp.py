"""The INR model: encoding → hidden layers (Linear → norm → activation) → linear head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


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
        dims = [self.encoding.out_dim] + [cfg.width] * cfg.depth
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:],
                                                                     strict=True))
        self.norms = nn.ModuleList(cfg.setup_norm() for _ in range(cfg.depth))
        self.acts = nn.ModuleList(cfg.activation.setup(first=i == 0) for i in range(cfg.depth))
        self.head = nn.Linear(cfg.width, out_dim)
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
