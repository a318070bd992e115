"""``train.compile``: the training forward pass compiled by ``torch.compile``.

AOTAutograd traces the model's forward and its backward into one joint graph that inductor turns
into fused kernels (vectorized C++ loops on CPU, Triton on CUDA), so a compiled step's forward
and backward run as generated code; the loss, the optimizer and the technique stay as they are.
Inside the traced graph the activations use their plain formulas and grid encodings their gather
form (inductor fuses both; see ``models.kernels`` and ``models.encodings``).

The first call compiles (seconds to a minute on a 2-core CPU); ``CompiledForward.seconds``
reports that first call's wall time. Where compilation is impossible (no C++ compiler, no
Triton) the first call falls back to the eager model with one warning.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
from torch import nn


class CompiledForward:
    """Callable like ``model`` (x (N, d) → (N, C)), compiled on its first call."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.compiled: Any = torch.compile(model, dynamic=False)
        self.seconds: float | None = None  # wall time of the first (compiling) call
        self.fallback = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fallback:
            return self.model(x)
        if self.seconds is not None:
            return self.compiled(x)
        t = time.perf_counter()
        try:
            out = self.compiled(x)
        except Exception as e:  # inductor raises many types (no compiler, no Triton)  # noqa: BLE001
            warnings.warn(f"inrlab: train.compile unavailable ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120] if str(e) else ''}); training eager",
                          stacklevel=2)
            self.fallback = True
            out = self.model(x)
        self.seconds = time.perf_counter() - t
        return out
