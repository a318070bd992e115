import pytest
import torch

from inrlab.config import ModelConfig
from inrlab.models import build_model, freeze_statistics
from inrlab.models.norms import CoordNorm


def _x():
    torch.manual_seed(0)
    return torch.randn(64, 16) * 3 + 1


def _affine(norm):
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    return norm


def test_batch_norm_matches_torch():
    x = _x()
    ours = _affine(CoordNorm("batch", 16))
    ref = torch.nn.BatchNorm1d(16)
    ref.load_state_dict({"weight": ours.weight, "bias": ours.bias}, strict=False)
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)


def test_layer_norm_matches_torch():
    x = _x()
    ours = _affine(CoordNorm("layer", 16))
    ref = torch.nn.LayerNorm(16)
    ref.load_state_dict({"weight": ours.weight, "bias": ours.bias})
    torch.testing.assert_close(ours(x), ref(x))


def test_global_norm_by_hand():
    x = _x()
    ours = _affine(CoordNorm("global", 16))
    mean = x.sum() / x.numel()
    var = ((x - mean) ** 2).sum() / x.numel()
    torch.testing.assert_close(ours(x), (x - mean) / torch.sqrt(var + 1e-5) * ours.weight
                               + ours.bias)


def test_cross_norm_by_hand():
    x = _x().double()
    ours = _affine(CoordNorm("cross", 16)).double()
    n, c = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        for j in range(c):
            mu = (x[i, :].sum() + x[:, j].sum() - x[i, j]) / (n + c)
            var = x[:, j].var(unbiased=False) + x[i, :].var(unbiased=False)
            out[i, j] = (x[i, j] - mu) / torch.sqrt(var + 1e-5) * ours.weight[j] + ours.bias[j]
    torch.testing.assert_close(ours(x), out)


@pytest.mark.parametrize("kind", ["batch", "layer", "global", "cross"])
def test_gradients_flow(kind):
    x = _x().requires_grad_()
    norm = CoordNorm(kind, 16)
    norm(x).pow(3).sum().backward()
    assert torch.isfinite(x.grad).all() and norm.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["batch", "global", "cross"])
def test_evaluation_rules(kind):
    """Default eval = batch statistics (full-grid rule); after freezing, single points are
    answered exactly as inside the full grid, independently of their batch."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(norm=kind, width=32, depth=2), 2, 3)
    grid = torch.rand(300, 2) * 2 - 1
    m.train()
    m(grid)  # one training step's forward updates running statistics
    m.eval()
    full = m(grid)
    sub = m(grid[:10])
    assert not torch.allclose(sub, full[:10]), "batch statistics: output depends on the batch"
    freeze_statistics(m, grid)
    torch.testing.assert_close(m(grid), full)
    torch.testing.assert_close(m(grid[:10]), full[:10])
    torch.testing.assert_close(m(grid[5:6]), full[5:6])


def test_layer_norm_is_batch_independent():
    m = build_model(ModelConfig(norm="layer", width=32, depth=2), 2, 3).eval()
    grid = torch.rand(100, 2)
    torch.testing.assert_close(m(grid[:7]), m(grid)[:7])


@pytest.mark.parametrize("placement", ["pre", "post", "scaled"])
def test_norm_placement_formulas(placement):
    """model.norm_placement: pre act(norm(z)), post norm(act(z)), scaled act(norm(z)/ω₀)."""
    from inrlab.config import ActivationConfig

    torch.manual_seed(0)
    cfg = ModelConfig(width=8, depth=2, norm="batch", norm_placement=placement,
                      activation=ActivationConfig(kind="sine"))
    model = build_model(cfg, 2, 1)
    x = torch.rand(32, 2) * 2 - 1
    h = x
    for lin, norm in zip(model.linears, model.norms, strict=True):
        z = lin(h)
        if placement == "pre":
            h = torch.sin(30 * norm(z))
        elif placement == "post":
            h = norm(torch.sin(30 * z))
        else:
            h = torch.sin(norm(z))
    torch.testing.assert_close(model.features(x), h)


def test_norm_placement_without_norm_and_bad_value():
    from inrlab.errors import InrlabError

    torch.manual_seed(0)
    a = build_model(ModelConfig(width=8, depth=2, norm_placement="scaled"), 2, 1)
    torch.manual_seed(0)
    b = build_model(ModelConfig(width=8, depth=2), 2, 1)
    x = torch.rand(10, 2)
    torch.testing.assert_close(a(x), b(x))  # no norm: the placement changes nothing
    with pytest.raises(InrlabError, match="unknown model.norm_placement 'mid'"):
        ModelConfig(norm_placement="mid").validate()


@pytest.mark.parametrize("placement", ["post", "scaled"])
def test_norm_placement_kernel_routes_to_the_jacobian(placement):
    """The structured eNTK knows only 'pre': other placements of a per-sample (layer) norm take
    the Jacobian route, which matches plain autograd."""
    from inrlab.ntk import kernel, resolve_method

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, depth=2, norm="layer", norm_placement=placement),
                        2, 1).double()
    x = torch.rand(6, 2, dtype=torch.float64)
    assert resolve_method(model, "auto") == "jacobian"
    rows = []
    for i in range(6):
        model.zero_grad()
        model(x[i:i + 1]).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    j = torch.stack(rows)
    torch.testing.assert_close(kernel(model, x), j @ j.T)


def test_auto_placement_is_post_for_sines_only():
    from inrlab.config import preset

    for name, placed in [("siren", "post"), ("finer", "post"), ("relu", "pre"), ("pe", "pre"),
                         ("wire", "pre"), ("gauss", "pre")]:
        mc = preset(name).model
        assert mc.norm_placement == "auto" and mc.placement() == "pre"  # no norm: irrelevant
        mc.norm = "batch"
        assert mc.placement() == placed, name
        mc.norm_placement = "pre"
        assert mc.placement() == "pre"


def test_sine_default_placement_runs_post():
    """SIREN + BN with the default placement computes norm(sin(30 z)) (not sin(30 norm(z)))."""
    from inrlab.config import ActivationConfig

    torch.manual_seed(0)
    auto = build_model(ModelConfig(width=8, depth=2, norm="batch",
                                   activation=ActivationConfig(kind="sine")), 2, 1)
    torch.manual_seed(0)
    post = build_model(ModelConfig(width=8, depth=2, norm="batch", norm_placement="post",
                                   activation=ActivationConfig(kind="sine")), 2, 1)
    x = torch.rand(16, 2)
    torch.testing.assert_close(auto(x), post(x))
