"""FR: the Fourier basis, the reparameterized layer's init, and training through the trainer."""

import math

import pytest
import torch

from inrlab.config import ModelConfig, RunConfig, preset
from inrlab.models import build_model
from inrlab.models.reparam import FourierLinear, fourier_basis, reparameterize
from inrlab.problems import Function1D
from inrlab.techniques import FR
from inrlab.train.trainer import Trainer


def test_basis_rows_by_hand():
    b = fourier_basis(5, low=2, high=3, phases=4, alpha=0.5)
    assert b.shape == ((2 + 3) * 4, 5)
    t = 2 * math.pi / 0.5  # ω_min = 1/L = 0.5
    x = torch.linspace(-t / 2, t / 2, 5, dtype=torch.float64)
    omegas = [0.5, 1.0, 1.0, 2.0, 3.0]
    for i, w in enumerate(omegas):
        for j in range(4):
            want = 0.5 * torch.cos(w * x + 2 * math.pi * j / 4)
            torch.testing.assert_close(b[i * 4 + j].double(), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind,omega0,var", [("relu", 1.0, 2.0), ("sine", 30.0, 2.0 / 900)])
def test_init_matches_he_and_siren_variance(kind, omega0, var):
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 256)
    layer = FourierLinear(lin, fourier_basis(256, 128, 128, 32, 0.001), omega0)
    w = layer.weight.detach()
    assert w.shape == (256, 256) and layer.coef.shape == (256, 8192)
    # W = Σ_m Λ_om B_m with Λ_om ~ U(±√(6/M)/‖B_m‖/ω₀): Var W ≈ 2 / (in · ω₀²)
    assert abs(w.var().item() * 256 / var - 1) < 0.1
    torch.testing.assert_close(layer(torch.ones(3, 256)), torch.ones(3, 256) @ w.T + layer.bias)


def test_reparameterize_hidden_layers_only():
    model = build_model(preset("pe").model, 2, 3)
    n = reparameterize(model, 4, 4, 2)
    assert n == 2 and isinstance(model.linears[1], FourierLinear)
    assert isinstance(model.linears[0], torch.nn.Linear) and isinstance(model.head, torch.nn.Linear)
    assert not any(p is model.linears[1].basis for p in model.parameters())
    assert model.linears[1].basis.abs().max().item() == pytest.approx(0.05, rel=1e-3)  # PE α
    assert model.linears[1].bias.abs().max() > 0  # keeps the replaced layer's initial bias
    zero = build_model(preset("pe").model, 2, 3)
    reparameterize(zero, 4, 4, 2, zero_bias=True)
    assert zero.linears[1].bias.abs().max() == 0 and zero.linears[0].bias.abs().max() > 0


def test_fr_trains_through_trainer():
    sig = Function1D.sines([1, 2], samples=128)
    cfg = RunConfig()
    cfg.model = ModelConfig(width=32, depth=3)
    cfg.train.steps, cfg.train.lr, cfg.train.eval_every = 80, 1e-2, 80
    cfg.train.technique = "fr"
    cfg.train.fr.low, cfg.train.fr.high, cfg.train.fr.phases, cfg.train.fr.alpha = 8, 8, 4, 0.1
    tr = Trainer(cfg, sig, progress=False)
    assert isinstance(tr.technique, FR) and isinstance(tr.model.linears[2], FourierLinear)
    before = torch.mean((tr.model(sig.coords) - sig.targets) ** 2).item()
    res = tr.train()
    assert res.metrics["mse"] < 0.5 * before
