"""FR: Fourier reparameterized training (spec/iga.md, baselines). The loss is plain MSE; what
changes is the parameterization of the hidden layers (``inrlab.models.reparam``)."""

from __future__ import annotations

from torch import nn

from ..errors import InrlabError
from ..models.reparam import reparameterize
from ..problems import Problem
from .base import Technique


class FR(Technique):
    """Hidden layers W = Λ·B (B fixed cosine basis, Λ trained), configured by ``train.fr``."""

    name = "fr"

    def setup(self, model: nn.Module, problem: Problem) -> None:
        super().setup(model, problem)
        if not hasattr(model, "linears") or len(model.linears) < 2:
            raise InrlabError("FR reparameterizes hidden-to-hidden layers: the model needs "
                              "model.depth ≥ 2")
        f = self.cfg.fr
        reparameterize(model, f.low, f.high, f.phases, f.alpha, zero_bias=f.bias == "zero")
