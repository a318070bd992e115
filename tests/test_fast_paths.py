"""The fast paths (fused activation kernels, sparse grid interpolation, fused Adam) give the same
values and gradients as the eager formulas they replace."""

import pytest
import torch

from inrlab.config import ActivationConfig, ModelConfig, preset
from inrlab.errors import InrlabError
from inrlab.models import build_model, grid_kernel, kernels
from inrlab.models.encodings import Grid
from inrlab.train.optim import build_adam

PARAMS = {"sine": (30.0,), "finer": (5.0,), "gauss": (3.0,), "wire": (20.0, 2.0)}


@pytest.fixture
def eager_backend():
    kernels.set_backend("eager")
    yield
    kernels.set_backend("auto")


@pytest.mark.parametrize("kind", list(PARAMS))
def test_function_matches_eager_formula(kind, eager_backend):
    z = (torch.randn(300, dtype=torch.float64) * 0.7).requires_grad_()
    g = torch.randn(300, dtype=torch.float64)
    ref = kernels.KERNELS[kind][0](z, *PARAMS[kind])
    (ref_grad,) = torch.autograd.grad(ref, z, g)
    out = kernels.FUNCTIONS[kind].apply(z, *PARAMS[kind])
    (grad,) = torch.autograd.grad(out, z, g)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(PARAMS))
def test_function_gradcheck_jvp_vmap(kind, eager_backend):
    fn = kernels.FUNCTIONS[kind]
    z = (torch.randn(12, dtype=torch.float64) * 0.5).requires_grad_()
    p = PARAMS[kind]
    eager = kernels.KERNELS[kind][0]
    if kind != "finer":  # FINER's published gradient holds |z| + 1 constant: not the derivative
        assert torch.autograd.gradcheck(lambda t: fn.apply(t, *p), (z,), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(lambda t: fn.apply(t, *p), (z,))
    v = torch.randn(12, dtype=torch.float64)
    torch.testing.assert_close(torch.func.jvp(lambda t: fn.apply(t, *p), (z.detach(),), (v,))[1],
                               torch.func.jvp(lambda t: eager(t, *p), (z.detach(),), (v,))[1])
    (g1,) = torch.autograd.grad(fn.apply(z, *p).sum(), z, create_graph=True)
    (e1,) = torch.autograd.grad(eager(z, *p).sum(), z, create_graph=True)
    torch.testing.assert_close(torch.autograd.grad(g1.sum(), z)[0],
                               torch.autograd.grad(e1.sum(), z)[0])
    zs = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(lambda t: fn.apply(t, *p))(zs),
                               kernels.KERNELS[kind][0](zs, *p))
    jac = torch.func.jacrev(lambda t: fn.apply(t, *p))(zs[0])
    ref = torch.func.jacrev(lambda t: kernels.KERNELS[kind][0](t, *p))(zs[0])
    torch.testing.assert_close(jac, ref)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PARAMS))
def test_compiled_kernels_match_eager(kind):
    """torch.compile'd kernels: same values and gradients up to float32 rounding."""
    kernels.set_backend("compiled")
    try:
        z = torch.randn(64, 257).requires_grad_()
        g = torch.randn(64, 257)
        out = kernels.apply(kind, z, *PARAMS[kind])
        (grad,) = torch.autograd.grad(out, z, g)
    finally:
        kernels.set_backend("auto")
    ref = kernels.KERNELS[kind][0](z, *PARAMS[kind])
    (ref_grad,) = torch.autograd.grad(ref, z, g)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-4)


def test_small_tensors_stay_eager():
    z = torch.randn(10, 4)
    assert not kernels.use_compiled(z)


def test_unknown_backend_is_one_line_error():
    with pytest.raises(InrlabError, match="kernel backend"):
        kernels.set_backend("fast")


@pytest.mark.parametrize("dim,hashed,log2", [(2, False, 19), (2, True, 4), (3, True, 6),
                                             (3, False, 19), (1, True, 4)])
def test_grid_fast_paths_match_gather(dim, hashed, log2, monkeypatch):
    """Both training paths equal index_select + weighting, values and table gradient, including
    hashed levels whose corners collide (tiny tables): the first use of new coordinates
    (GatherInterpolation: 1-D element gather/index_add) and their reuse (CSR products). (3-D
    grids use the C++ kernel by default, tests/test_grid_kernel.py: switched off here.)"""
    monkeypatch.setattr(grid_kernel, "AUTO_DIMS", ())
    torch.manual_seed(0)
    grid = Grid(dim, levels=4, base_resolution=2, finest_resolution=9, features_per_level=2,
                hashed=hashed, log2_table_size=log2, init_scale=1.0)
    x = torch.rand(500, dim) * 2 - 1
    g = torch.randn(500, grid.out_dim)
    ref = grid._gather(*grid.interpolation(x)).reshape(500, -1)
    ref = torch.cat([x, ref], dim=1)
    (ref_grad,) = torch.autograd.grad(ref, grid.table, g)
    for path in ("gather", "sparse"):
        out = grid(x)
        assert (grid.table.dtype in grid._cache[4]) == (path == "sparse")  # the memoized CSR
        (grad,) = torch.autograd.grad(out, grid.table, g)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)


def _reference_interpolation(grid, x):
    """The per-corner formula (vertices (N, L, 2^d, d)) the broadcast interpolation replaced."""
    d = grid.in_dim
    corners = torch.tensor([[(c >> i) & 1 for i in range(d)] for c in range(2**d)])
    pos = ((x.clamp(-1, 1) + 1) / 2)[:, None, :] * grid.res[None, :, None].to(x.dtype)
    base = torch.minimum(pos.floor().long(), (grid.res - 1)[None, :, None])
    frac = pos - base
    vert = base[:, :, None, :] + corners
    w = torch.where(corners.bool(), frac[:, :, None, :], 1 - frac[:, :, None, :]).prod(-1)
    idx = torch.zeros_like(vert[..., 0])
    for i in reversed(range(d)):
        idx = idx * (grid.res + 1)[None, :, None] + vert[..., i]
    h = torch.zeros_like(idx)
    for i in range(d):
        h = h ^ (vert[..., i] * (1, 2654435761, 805459861)[i])
    idx = torch.where(grid.dense[None, :, None], idx, h % grid.sizes[None, :, None])
    return idx + grid.offsets[:-1][None, :, None], w


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("hashed,log2,dense_when_fits", [(False, 19, True), (True, 19, True),
                                                         (True, 6, True), (True, 8, False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolation_equals_per_corner_formula(dim, hashed, log2, dense_when_fits, dtype):
    """Indices identical and weights bit-for-bit equal to the per-corner formula, with points on
    and outside the boundary."""
    torch.manual_seed(0)
    grid = Grid(dim, levels=6, base_resolution=3, finest_resolution=300, features_per_level=2,
                hashed=hashed, log2_table_size=log2, dense_when_fits=dense_when_fits)
    x = torch.rand(700, dim, dtype=dtype) * 2.2 - 1.1
    x[:4] = torch.tensor([-1.0, 1.0, 0.0, 0.5], dtype=dtype)[:, None]
    idx, w = grid.interpolation(x)
    ref_idx, ref_w = _reference_interpolation(grid, x)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(w, ref_w)
    # under torch.func transforms (no out= ops): the same
    v_idx, v_w = torch.func.vmap(grid.interpolation)(x.view(7, 100, dim))
    assert torch.equal(v_idx.reshape(idx.shape), idx) and torch.equal(v_w.reshape(w.shape), w)


@pytest.mark.parametrize("f", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_gather_and_add_equal_reference_ops(f, dtype):
    """gather_rows = the einsum of the reference gather, add_rows = index_add_ over (T, F) rows
    (same sums in the same order: exactly equal), for even (complex view) and odd F."""
    from inrlab.models.encodings import add_rows, gather_rows

    torch.manual_seed(0)
    table = torch.randn(50, f, dtype=dtype)
    idx = torch.randint(50, (30, 3, 4))
    w = torch.rand(30, 3, 4, dtype=dtype)
    corner = table.index_select(0, idx.reshape(-1)).view(30, 3, 4, f)
    torch.testing.assert_close(gather_rows(table, idx, w),
                               torch.einsum("nlcf,nlc->nlf", corner, w), rtol=0, atol=0)
    src = torch.randn(idx.numel(), f, dtype=dtype)
    ref = torch.zeros(50, f, dtype=dtype).index_add_(0, idx.reshape(-1), src)
    torch.testing.assert_close(add_rows(50, idx.reshape(-1), src), ref, rtol=0, atol=0)


def test_sparse_product_ignores_its_uninitialized_output():
    """_spmm writes the product into an uninitialized tensor with addmm β = 0, whose contract is
    that the input is ignored (NaN/inf not propagated)."""
    torch.manual_seed(0)
    dense = torch.randn(6, 40)
    dense[dense.abs() < 1] = 0
    a, b = dense.to_sparse_csr(), torch.randn(40, 2)
    out = torch.full((6, 2), float("nan"))
    torch.testing.assert_close(torch.addmm(out, a, b, beta=0, out=out), dense @ b)


def test_sparse_interpolation_keeps_coordinate_gradients():
    grid = Grid(2, levels=2, base_resolution=2, finest_resolution=4, features_per_level=2,
                hashed=False, init_scale=1.0)
    x = (torch.rand(20, 2) * 2 - 1).requires_grad_()
    grid(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _short_run(name, adam, fast, fresh=False, dim=2):
    """A few seeded steps, full batch or (``fresh``) new points each step; ``fast=False``
    forces the eager/gather reference paths."""
    cfg = preset(name)
    cfg.model.width, cfg.model.depth = 32, 2
    if dim == 3 and cfg.model.encoding.kind in ("hash", "multigrid"):  # small 3-D tables
        cfg.model.encoding.finest_resolution = 32
        if cfg.model.encoding.kind == "hash":
            cfg.model.encoding.log2_table_size = 12
    torch.manual_seed(0)
    model = build_model(cfg.model, dim, 3)
    opt = build_adam(model.parameters(), cfg.train.lr, cfg.train.adam_eps, adam)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(400, dim) * 2 - 1
    grid = model.encoding if isinstance(model.encoding, Grid) else None
    for _ in range(5):
        if fresh:
            x = torch.rand(400, dim, generator=gen) * 2 - 1
        y = torch.sin(3 * x).sum(1, keepdim=True).repeat(1, 3)
        if grid is not None and not fast:
            feats = grid._gather(*grid.interpolation(x)).reshape(x.shape[0], -1)
            h = torch.cat([x, feats], 1) if grid.include_input else feats
            for lin, norm, act in zip(model.linears, model.norms, model.acts, strict=True):
                h = act(norm(lin(h)))
            pred = model.head(h)
        else:
            pred = model(x)
        loss = torch.mean((pred - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name,dim", [("hash", 2), ("mpe", 2), ("siren", 2), ("wire", 2),
                                      ("hash", 3)])
def test_seeded_training_equal_within_tolerance(name, dim):
    """Fused Adam + sparse grid path (2-D) or C++ grid kernel (3-D) vs looped Adam + gather
    path: same parameters after five seeded steps, up to float32 rounding."""
    fast = _short_run(name, "fused", fast=True, dim=dim)
    ref = _short_run(name, "loop", fast=False, dim=dim)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,dim", [("hash", 2), ("hash", 3), ("mpe", 3)])
def test_seeded_minibatch_training_equal_within_tolerance(name, dim):
    """New coordinates every step (2-D: GatherInterpolation, no CSR; 3-D: the C++ grid kernel)
    vs the reference gather path."""
    fast = _short_run(name, "fused", fast=True, fresh=True, dim=dim)
    ref = _short_run(name, "loop", fast=False, fresh=True, dim=dim)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_model_with_fused_activation_under_vmap_and_jvp():
    """The eNTK engine's transforms (vmap of jacrev, jvp) see the eager formula."""
    cfg = ModelConfig(activation=ActivationConfig(kind="wire"), width=16, depth=2)
    model = build_model(cfg, 2, 1).double()
    params = dict(model.named_parameters())
    x = torch.rand(5, 2, dtype=torch.float64)

    def f(p, xi):
        return torch.func.functional_call(model, p, (xi[None],))[0, 0]

    jac = torch.func.vmap(torch.func.jacrev(f), in_dims=(None, 0))(params, x)
    tangent = {k: torch.ones_like(v) for k, v in params.items()}
    _, jv = torch.func.jvp(lambda p: torch.func.functional_call(model, p, (x,)), (params,),
                           (tangent,))
    ref = sum(j.reshape(5, -1).sum(1) for j in jac.values())
    torch.testing.assert_close(jv[:, 0], ref)


def _fit_small(small_image, name, compile_):
    from inrlab.train.trainer import Trainer

    cfg = preset(name)
    cfg.model.width, cfg.model.depth = 16, 2
    cfg.train.steps, cfg.train.eval_every, cfg.train.compile = 4, 2, compile_
    cfg.train.device = "cpu"
    tr = Trainer(cfg, small_image, progress=False)
    res = tr.train()
    return res, torch.cat([p.detach().flatten() for p in res.model.parameters()])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hash", "siren"])
def test_train_compile_matches_eager(small_image, name):
    res, params = _fit_small(small_image, name, True)
    _, ref = _fit_small(small_image, name, False)
    assert res.metrics["compile_seconds"] > 0
    torch.testing.assert_close(params, ref, rtol=1e-3, atol=1e-4)


def test_train_compile_falls_back_to_eager(small_image, monkeypatch):
    """Where torch.compile fails (no compiler), training runs eager after one warning."""
    from inrlab.train import compile as compile_mod

    def broken(model, **kwargs):
        def fail(x):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(compile_mod.torch, "compile", broken)
    with pytest.warns(UserWarning, match="train.compile unavailable"):
        _, params = _fit_small(small_image, "hash", True)
    _, ref = _fit_small(small_image, "hash", False)
    torch.testing.assert_close(params, ref, rtol=0, atol=0)


def test_step_time_fresh_batches_and_breakdown(tmp_path):
    """``bench step-time --fresh`` draws new coordinates every step (so the grid cannot reuse an
    interpolation); ``--breakdown`` times the parts of a grid step."""
    import json

    from inrlab.benchmarks.step_time import batches
    from inrlab.cli import main

    x, y = torch.rand(16, 3), torch.rand(16, 3)
    draw = batches(x, y, 3, fresh=True)
    (a, _), (b, _) = draw(), draw()
    assert a.shape == x.shape and not torch.equal(a, b)
    assert batches(x, y, 3, fresh=False)()[0] is x
    out = tmp_path / "st.json"
    assert main(["bench", "step-time", "--presets", "hash", "--dim", "3", "--size", "8",
                 "--finest", "16", "--repeats", "1", "--fresh", "--breakdown",
                 "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["batch"] == "fresh" and row["finest"] == "16"
    assert all(row[f"{k}_s"] > 0 for k in ("encode", "mlp", "adam", "table_copy",
                                           "gather_floor"))
