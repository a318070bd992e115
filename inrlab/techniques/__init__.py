"""Techniques: how the training gradient is formed from predictions and targets.

A technique sees the model, the batch and the signal; ``loss`` returns a scalar whose gradient is
the update. New techniques register in ``TECHNIQUES`` by name (the ``train.technique`` field).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InrlabError
from ..signals import Signal


class Technique:
    """Plain MSE; subclasses override ``setup`` (once, before training) and ``loss``."""

    name = "mse"

    def setup(self, model: nn.Module, signal: Signal) -> None:
        """Called once with the built model before the optimizer is created."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
             idx: torch.Tensor, step: int) -> torch.Tensor:
        """Scalar loss for batch ``x`` (B, d), targets ``y`` and ``pred`` (B, C); ``idx`` (B,) are
        the batch's indices into the signal's coordinates."""
        return torch.mean((pred - y) ** 2)


TECHNIQUES: dict[str, type[Technique]] = {"mse": Technique}


def build_technique(name: str) -> Technique:
    if name not in TECHNIQUES:
        raise InrlabError(f"unknown technique {name!r}: choose one of {', '.join(TECHNIQUES)}")
    return TECHNIQUES[name]()
