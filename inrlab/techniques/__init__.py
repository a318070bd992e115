"""Techniques: how the training gradient is formed from predictions and targets.

A technique sees the model, the batch and the signal; ``loss`` returns a scalar whose gradient is
the update. Techniques register in ``TECHNIQUES`` by name (the ``train.technique`` field):
``mse`` (plain), ``iga`` (inductive gradient adjustment), ``fr`` (Fourier reparameterized training).
"""

from __future__ import annotations

from ..config import TrainConfig
from ..errors import InrlabError
from .base import Technique
from .fr import FR
from .iga import IGA

TECHNIQUES: dict[str, type[Technique]] = {"mse": Technique, "iga": IGA, "fr": FR}


def build_technique(name: str, cfg: TrainConfig | None = None) -> Technique:
    """The technique registered as ``name``, configured by ``cfg`` (its ``iga``/``fr`` section)."""
    if name not in TECHNIQUES:
        raise InrlabError(f"unknown technique {name!r}: choose one of {', '.join(TECHNIQUES)}")
    return TECHNIQUES[name](cfg)


__all__ = ["Technique", "TECHNIQUES", "build_technique", "IGA", "FR"]
