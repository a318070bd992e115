"""Evaluation of a field on many points, respecting the rule of batch-coupled normalizations."""

from __future__ import annotations

import torch
from torch import nn

from .norms import batch_coupled


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 2**16) -> torch.Tensor:
    """Eval-mode prediction (N, C) on ``x`` (N, d). Batch-coupled norms see the whole ``x`` in one
    pass (the full-grid evaluation rule); other models are evaluated in chunks to bound memory."""
    was = model.training
    model.eval()
    try:
        if batch_coupled(model) or x.shape[0] <= chunk:
            return model(x)
        return torch.cat([model(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
    finally:
        model.train(was)
