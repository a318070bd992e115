"""The technique interface: how the training gradient is formed from predictions and targets."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TechniqueConfig, TrainConfig
from ..problems import Batch, Problem
from ..registry import TECHNIQUES


@TECHNIQUES.register()
class Technique:
    """Plain loss (the problem's own, MSE by default); subclasses override ``setup`` (once, before
    training), ``loss`` and, to choose their own mini-batches, ``sample_batch``. ``cfg`` is the
    run's TrainConfig; a technique with settings names its :class:`TechniqueConfig` subclass in
    ``config`` and reads them from ``cfg.<name>`` (the section ``train.<name>``)."""

    name = "mse"
    config: type[TechniqueConfig] | None = None

    def __init__(self, cfg: TrainConfig | None = None):
        self.cfg = cfg if cfg is not None else TrainConfig()
        self.problem: Problem | None = None

    def setup(self, model: nn.Module, problem: Problem) -> None:
        """Called once with the built model and the problem before the optimizer is created."""
        self.problem = problem

    def sample_batch(self, problem: Problem, batch_size: int,
                     generator: torch.Generator) -> torch.Tensor:
        """Measurement indices (batch_size,) of one mini-batch: the problem's own sampling
        (uniform over its training measurements, with replacement) by default."""
        return problem.sample(batch_size, generator)

    def loss(self, model: nn.Module, batch: Batch, pred: torch.Tensor, step: int) -> torch.Tensor:
        """Scalar loss of the predicted measurements ``pred`` (B, C_m) of ``batch``."""
        assert self.problem is not None, "Technique.setup() was not called"
        return self.problem.loss(pred, batch.y)

    def state_dict(self) -> dict[str, Any]:
        """State carried from step to step (tensors, numbers, None), saved in checkpoints so a
        resumed run continues exactly; plain MSE has none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""
