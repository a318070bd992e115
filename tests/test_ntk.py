"""eNTK engine: every route against the Jacobian oracle, the oracle against plain autograd."""

import pytest
import torch

from inrlab.config import PRESETS, preset
from inrlab.errors import InrlabError
from inrlab.models import build_model, freeze_statistics
from inrlab.ntk import kernel, kernel_matvec, resolve_method


def small_model(name: str, norm: str = "none", out_dim: int = 3, seed: int = 0):
    """A narrow version of preset ``name`` (width 16, depth 2, small grids)."""
    torch.manual_seed(seed)
    mc = preset(name).model
    mc.width, mc.depth, mc.norm = 16, 2, norm
    if mc.encoding.kind in ("multigrid", "hash"):
        mc.encoding.levels, mc.encoding.base_resolution = 4, 4
        mc.encoding.finest_resolution, mc.encoding.log2_table_size = 32, 8
        mc.encoding.init_scale = 0.5  # non-trivial grid features so every term matters
    if mc.encoding.kind == "fourier":
        mc.encoding.n_features = 16
    return build_model(mc, 2, out_dim)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture
def points():
    return torch.rand(24, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("name", list(PRESETS))
def test_structured_equals_jacobian_every_preset(name, points):
    model = small_model(name)
    assert resolve_method(model, "auto") == "structured"
    for outputs in ("surrogate", "trace", "full", 2):
        ks = kernel(model, points, "structured", outputs=outputs)
        kj = kernel(model, points, "jacobian", outputs=outputs)
        assert ks.dtype == torch.float64
        assert ks.shape == ((72, 72) if outputs == "full" else (24, 24))
        assert rel(ks, kj) < 1e-6, (name, outputs)


def test_output_combinations_are_consistent(points):
    model = small_model("pe")
    full = kernel(model, points, outputs="full")
    n = points.shape[0]
    blocks = full.reshape(3, n, 3, n).permute(0, 2, 1, 3)  # output-major layout
    assert rel(kernel(model, points, outputs=1), blocks[1, 1]) < 1e-12
    assert rel(kernel(model, points, outputs="trace"), sum(blocks[c, c] for c in range(3))) < 1e-12
    assert rel(kernel(model, points), blocks.sum((0, 1)) / 3) < 1e-12  # surrogate
    assert torch.allclose(full, full.T)


def autograd_oracle(model, x, out=0):
    """K from one autograd.grad per sample of the batch's output (no torch.func)."""
    m = model.double()
    y = m(x.double())[:, out]
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(y[i], list(m.parameters()),
                                                                  retain_graph=True)])
            for i in range(len(x))]
    j = torch.stack(rows)
    return j @ j.T


@pytest.mark.parametrize("norm", ["layer", "batch", "global", "cross"])
def test_norms_route_and_match_autograd(norm, points):
    model = small_model("relu", norm=norm, out_dim=1)
    expected = "structured" if norm == "layer" else "jacobian"
    assert resolve_method(model, "auto") == expected
    k = kernel(model, points)
    assert rel(k, autograd_oracle(small_model("relu", norm=norm, out_dim=1), points)) < 1e-6
    if norm == "layer":
        assert rel(kernel(model, points, "jacobian"), k) < 1e-6
    else:
        with pytest.raises(InrlabError, match="norms.0"):
            kernel(model, points, "structured")


def test_caller_model_untouched_and_no_grad_leak(points):
    model = small_model("relu", norm="batch")
    model.train()
    loss = model(points).sum()
    loss.backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    with torch.no_grad():
        k = kernel(model, points)
    assert not k.requires_grad and model.training
    assert all(torch.equal(state[n], v) for n, v in model.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_frozen_statistics_are_per_sample(points):
    model = small_model("relu", norm="cross", out_dim=1)
    freeze_statistics(model, points)
    model.eval()
    full = kernel(model, points)
    part = kernel(model, points[:5])
    assert rel(part, full[:5, :5]) < 1e-10  # with frozen statistics a point ignores its batch


def test_grid_kernel_after_coordinate_reuse(points):
    # the interpolation cache must not serve stale weights to new coordinates
    model = small_model("hash", out_dim=1)
    k1 = kernel(model, points)
    k2 = kernel(model, -points)
    assert rel(k2, kernel(model, -points, "jacobian")) < 1e-6
    assert rel(k1, k2) > 1e-3


def test_kernel_matvec(points):
    for norm in ("none", "batch"):
        model = small_model("siren", norm=norm)
        v = torch.randn(points.shape[0], dtype=torch.float64)
        for outputs in ("surrogate", "trace", 0):
            k = kernel(model, points, outputs=outputs)
            assert rel(kernel_matvec(model, points, outputs=outputs)(v), k @ v) < 1e-10
        vf = torch.randn(3 * points.shape[0], dtype=torch.float64)
        kf = kernel(model, points, outputs="full")
        assert rel(kernel_matvec(model, points, outputs="full")(vf), kf @ vf) < 1e-10


def test_bad_input(points):
    model = small_model("relu")
    with pytest.raises(InrlabError, match="method"):
        kernel(model, points, method="magic")
    with pytest.raises(InrlabError, match="out of range"):
        kernel(model, points, outputs=3)
    with pytest.raises(InrlabError, match="outputs"):
        kernel(model, points, outputs="mean")
    with pytest.raises(InrlabError, match="coordinates"):
        kernel(model, torch.zeros(4, 3))
    with pytest.raises(InrlabError, match="at least one"):
        kernel(model, torch.zeros(0, 2))
    with pytest.raises(InrlabError, match="not an inrlab INR"):
        kernel(torch.nn.Linear(2, 1), points, "structured")
    with torch.no_grad():
        model.head.weight.fill_(float("inf"))
    with pytest.raises(InrlabError, match="non-finite"):
        kernel(model, points)


def test_non_inr_module_uses_jacobian(points):
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    k = kernel(net, points)
    assert rel(k, autograd_oracle(net, points)) < 1e-10
