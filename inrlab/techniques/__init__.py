"""Techniques: how the training gradient is formed from predictions and targets.

A technique sees the model, the batch and the signal; ``loss`` returns a scalar whose gradient is
the update. Techniques register in ``TECHNIQUES`` by name (the ``train.technique`` field), each
with its config section ``train.<name>``: ``mse`` (plain), ``iga`` (inductive gradient
adjustment, ``train.iga``), ``fr`` (Fourier reparameterized training, ``train.fr``).
"""

from __future__ import annotations

from ..config import TrainConfig
from ..registry import TECHNIQUES
from .base import Technique
from .fr import FR, FRConfig
from .iga import IGA, IGAConfig


def build_technique(name: str, cfg: TrainConfig | None = None) -> Technique:
    """The technique registered as ``name``, configured by ``cfg`` (its section)."""
    return TECHNIQUES[name](cfg)


__all__ = ["Technique", "TECHNIQUES", "build_technique", "IGA", "IGAConfig", "FR", "FRConfig"]
