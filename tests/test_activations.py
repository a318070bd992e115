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


def _reference_siren(x, layers, head, omegas, omega_head):
    """FreSh's reference SIREN written out: sin(ω_l·W_l h + b_l) per periodic layer (bias
    outside ω), then the head W(ω h) + b (its ``apply_omega_when_linear``)."""
    h = x
    for (w, b), om in zip(layers, omegas, strict=True):
        h = torch.sin(om * (h @ w.T) + b)
    return (omega_head * h) @ head[0].T + head[1]


def _params(m):
    return ([(lin.weight, lin.bias) for lin in m.linears], (m.head.weight, m.head.bias))


def test_fresh_reference_siren_conventions_match_the_reference_formula():
    # the reference's "3 hidden layers" SIREN has hidden + 1 = 4 periodic layers: inrlab depth 4
    from inrlab.models.mlp import ScaledLinear

    torch.manual_seed(0)
    act = ActivationConfig(kind="sine", omega0_first=20.0, omega0_hidden=30.0,
                           omega_bias="outside", omega_head=True)
    m = build_model(ModelConfig(activation=act, width=8, depth=4), 2, 3).double()
    assert len(m.acts) == 4 and all(isinstance(a, Sine) for a in m.acts)
    assert all(isinstance(lin, ScaledLinear) for lin in [*m.linears, m.head])
    x = torch.rand(17, 2, dtype=torch.float64) * 2 - 1
    layers, head = _params(m)
    ref = _reference_siren(x, layers, head, [20.0, 30.0, 30.0, 30.0], 30.0)
    out = m(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # the stored parameters are the reference's own: same gradients (so Adam takes the same steps)
    params = [p for wb in layers for p in wb] + list(head)
    g_ours = torch.autograd.grad(out.square().sum(), params)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # initialisation as the reference: SIREN weights, torch's default biases (phases)
    assert m.linears[0].bias.abs().max() <= 1 / math.sqrt(2)
    assert m.linears[1].bias.abs().max() <= 1 / math.sqrt(8)
    assert m.head.weight.abs().max() <= math.sqrt(6 / 8) / 30


def test_default_siren_keeps_the_bias_inside_omega():
    torch.manual_seed(0)
    m = build_model(ModelConfig(activation=ActivationConfig(kind="sine", omega0_first=20.0),
                                width=8, depth=2), 2, 1).double()
    assert all(type(lin) is torch.nn.Linear for lin in [*m.linears, m.head])
    x = torch.rand(9, 2, dtype=torch.float64) * 2 - 1
    (w0, b0), (w1, b1) = _params(m)[0]
    h = torch.sin(30.0 * (torch.sin(20.0 * (x @ w0.T + b0)) @ w1.T + b1))  # Sitzmann
    torch.testing.assert_close(m(x), h @ m.head.weight.T + m.head.bias)
    # and it differs from the reference's convention on the same parameters: the test can fail
    ref = _reference_siren(x, *_params(m), [20.0, 30.0], 1.0)
    assert (m(x) - ref).abs().max() > 1e-3


def test_reference_finer_formula_with_hidden_plus_one_layers():
    # FreSh's reference FINER: sin(ω(|z|+1)z), z = Wx + b (bias inside), 3 hidden → 4 layers
    torch.manual_seed(0)
    act = ActivationConfig(kind="finer", first_bias_scale=0.7)
    m = build_model(ModelConfig(activation=act, width=8, depth=4), 2, 3).double()
    x = torch.rand(11, 2, dtype=torch.float64) * 2 - 1
    h = x
    for lin in m.linears:
        z = h @ lin.weight.T + lin.bias
        h = torch.sin(30.0 * (z.abs() + 1) * z)
    torch.testing.assert_close(m(x), h @ m.head.weight.T + m.head.bias)
    assert m.linears[0].bias.abs().max() <= 0.7


def test_reference_convention_errors():
    from inrlab.errors import InrlabError
    from inrlab.models.reparam import reparameterize
    from inrlab.ntk.kernel import resolve_method

    with pytest.raises(InrlabError, match="omega_bias='outside' is not possible for kind 'finer'"):
        ModelConfig(activation=ActivationConfig(kind="finer", omega_bias="outside")).validate()
    with pytest.raises(InrlabError, match="choose inside or outside"):
        ModelConfig(activation=ActivationConfig(kind="sine", omega_bias="within")).validate()
    m = build_model(ModelConfig(activation=ActivationConfig(kind="sine", omega_bias="outside"),
                                width=8, depth=3), 2, 1)
    with pytest.raises(InrlabError, match="FR reparameterizes plain linear layers"):
        reparameterize(m, 4, 4, 2)
    # the structured eNTK does not know scaled layers: auto takes the exact Jacobian route
    assert resolve_method(m, "auto") == "jacobian"
    with pytest.raises(InrlabError, match="ScaledLinear is not a plain nn.Linear"):
        resolve_method(m, "structured")
