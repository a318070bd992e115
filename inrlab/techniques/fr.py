"""FR: Fourier reparameterized training (spec/iga.md, baselines). The loss is plain MSE; what
changes is the parameterization of the hidden layers (``inrlab.models.reparam``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import TechniqueConfig, check_choice, check_positive
from ..errors import InrlabError
from ..models.reparam import reparameterize
from ..problems import Problem
from ..registry import TECHNIQUES
from .base import Technique


@dataclass
class FRConfig(TechniqueConfig):
    """Fourier reparameterized training (spec/iga.md, FR): section ``train.fr``, used when
    ``train.technique = "fr"``."""

    low: int = 128  # L low frequencies (i+1)/L
    high: int = 128  # H high frequencies 1 … H
    phases: int = 32  # Φ phases 2πj/Φ
    alpha: float | None = None  # basis amplitude (None: ReLU 0.001, PE 0.05, sine/FINER 0.004)
    bias: str = "keep"  # keep: the replaced layer's initial bias; zero: zeros (the official code)

    def validate(self) -> None:
        for name in ("low", "high", "phases"):
            if getattr(self, name) < 0:
                raise InrlabError(f"train.fr.{name} must be ≥ 0")
        check_positive("train.fr.low + high", self.low + self.high)
        check_positive("train.fr.phases", self.phases)
        if self.alpha is not None:
            check_positive("train.fr.alpha", self.alpha)
        check_choice("train.fr.bias", self.bias, ("keep", "zero"))


@TECHNIQUES.register()
class FR(Technique):
    """Hidden layers W = Λ·B (B fixed cosine basis, Λ trained), configured by ``train.fr``."""

    name = "fr"
    config = FRConfig

    def setup(self, model: nn.Module, problem: Problem) -> None:
        super().setup(model, problem)
        if not hasattr(model, "linears") or len(model.linears) < 2:
            raise InrlabError("FR reparameterizes hidden-to-hidden layers: the model needs "
                              "model.depth ≥ 2")
        f = self.cfg.fr
        reparameterize(model, f.low, f.high, f.phases, f.alpha, zero_bias=f.bias == "zero")
