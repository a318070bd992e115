"""The technique interface: how the training gradient is formed from predictions and targets."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..signals import Signal


class Technique:
    """Plain MSE; subclasses override ``setup`` (once, before training), ``loss`` and, to choose
    their own mini-batches, ``sample_batch``. ``cfg`` is the run's TrainConfig (their section)."""

    name = "mse"

    def __init__(self, cfg: TrainConfig | None = None):
        self.cfg = cfg if cfg is not None else TrainConfig()

    def setup(self, model: nn.Module, signal: Signal) -> None:
        """Called once with the built model before the optimizer is created."""

    def sample_batch(self, train_idx: torch.Tensor, batch_size: int,
                     generator: torch.Generator) -> torch.Tensor:
        """Indices (batch_size,) into the signal's coordinates for one mini-batch: by default
        ``batch_size`` training points drawn uniformly (with replacement) with ``generator``."""
        return train_idx[torch.randint(len(train_idx), (batch_size,), generator=generator)]

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
             idx: torch.Tensor, step: int) -> torch.Tensor:
        """Scalar loss for batch ``x`` (B, d), targets ``y`` and ``pred`` (B, C); ``idx`` (B,) are
        the batch's indices into the signal's coordinates."""
        return torch.mean((pred - y) ** 2)
