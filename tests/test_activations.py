import math

import pytest
import torch

from inrlab.config import ActivationConfig, ModelConfig
from inrlab.models import build_model
from inrlab.models.activations import Finer, Gauss, Sine, Wire


@pytest.mark.parametrize("kind", ["relu", "sine", "finer", "gauss", "wire"])
def test_model_shapes_and_gradients(kind):
    cfg = ModelConfig(activation=ActivationConfig(kind=kind), width=32, depth=2)
    m = build_model(cfg, 2, 3)
    x = torch.rand(40, 2) * 2 - 1
    out = m(x)
    assert out.shape == (40, 3)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_activation_formulas():
    z = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(Sine(30)(z), torch.sin(30 * z))
    torch.testing.assert_close(Finer(5)(z), torch.sin(5 * (z.abs() + 1) * z))
    torch.testing.assert_close(Gauss(3)(z), torch.exp(-(3 * z) ** 2))
    torch.testing.assert_close(Wire(20, 10)(z), torch.cos(20 * z) * torch.exp(-(10 * z) ** 2))


def test_finer_scale_is_detached():
    z = torch.tensor([0.3], requires_grad=True)
    Finer(2.0)(z).backward()
    # d/dz sin(ω s z) with s = |z| + 1 held constant is ω s cos(ω s z)
    s = 1.3
    assert z.grad.item() == pytest.approx(2.0 * s * math.cos(2.0 * s * 0.3), rel=1e-6)


def test_siren_initialisation_statistics():
    torch.manual_seed(0)
    cfg = ModelConfig(activation=ActivationConfig(kind="sine"), width=512, depth=4)
    m = build_model(cfg, 2, 1)
    first, hidden = m.linears[0], m.linears[1]
    assert first.weight.abs().max() <= 1 / 2 + 1e-7
    bound = math.sqrt(6 / 512) / 30
    assert hidden.weight.abs().max() <= bound + 1e-7
    # U(-b, b) has std b/√3
    assert hidden.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    # SIREN's claim: hidden activations follow an arcsine law on [-1, 1] (std 1/√2), layer after
    # layer; pre-activations ω·z are ~ N(0, 1)·… with std ≈ √2 ... check the activations' std.
    x = torch.rand(20000, 2) * 2 - 1
    h = m.encoding(x)
    for lin, act in zip(m.linears, m.acts, strict=True):
        h = act(lin(h))
        if lin is not first:
            assert h.std().item() == pytest.approx(1 / math.sqrt(2), abs=0.05)


def test_first_bias_scale():
    cfg = ModelConfig(activation=ActivationConfig(kind="finer", first_bias_scale=2.0), width=4096,
                      depth=1)
    b = build_model(cfg, 2, 1).linears[0].bias
    assert b.abs().max() <= 2.0 and b.abs().max() > 1.9


def test_gauss_envelope_cut_has_no_denormals():
    from inrlab.models.activations import gauss_envelope

    u = torch.linspace(-12, 12, 10001, requires_grad=True)
    v = gauss_envelope(u)
    keep = u.detach() ** 2 < 40
    torch.testing.assert_close(v[keep], torch.exp(-u[keep] ** 2))
    assert (v[~keep] == 0).all() and v[~keep].numel() > 0
    v.sum().backward()
    tiny = torch.finfo(torch.float32).tiny
    for t in (v.detach(), u.grad):
        assert not ((t != 0) & (t.abs() < tiny)).any()
