"""The fused C++ grid kernel (models/grid_kernel.py) gives the reference path's values (up to
float rounding) and exactly its table gradient; where it cannot be built, grids fall back.

The kernel is built once per test session (on a clean machine ≈ 10 s; later sessions load it
from torch's extension cache).
"""

import pytest
import torch

from inrlab.errors import InrlabError
from inrlab.models import grid_kernel, kernels
from inrlab.models.encodings import Grid, add_rows


@pytest.fixture
def backend():
    """Set a kernel backend for one test; auto afterwards."""
    yield kernels.set_backend
    kernels.set_backend("auto")


def _grid(dim, kind, f=2, dtype=torch.float32):
    """Small grids: dense levels, dense then hashed levels, or every level hashed into a tiny
    table (2^4 entries) where corners collide."""
    log2 = {"dense": 19, "hashed": 8 if dim > 1 else 5, "colliding": 4}[kind]
    torch.manual_seed(0)
    grid = Grid(dim, levels=5, base_resolution=2, finest_resolution=40, features_per_level=f,
                hashed=kind != "dense", log2_table_size=log2, init_scale=1.0,
                dense_when_fits=kind != "colliding")
    return grid.to(dtype)


def _points(n, dim, dtype):
    x = torch.rand(n, dim, dtype=dtype) * 2.2 - 1.1  # some outside [-1, 1]
    x[:3] = torch.tensor([-1.0, 1.0, 0.0], dtype=dtype)[:, None]
    return x


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kind", ["dense", "hashed", "colliding"])
@pytest.mark.parametrize("dtype,f", [(torch.float32, 2), (torch.float64, 2), (torch.float32, 3),
                                     (torch.float64, 1)])
def test_kernel_matches_reference(dim, kind, dtype, f, backend):
    """Values: the reference gather and weighting up to rounding (the corner sum's order);
    table gradient: exactly the reference's index_add of g·w in sample order."""
    grid = _grid(dim, kind, f, dtype)
    grid.include_input = f != 3  # the output without the coordinates too
    grid.out_dim -= 0 if grid.include_input else dim
    assert kind == "dense" or grid._n_dense < grid.levels  # hashed levels present
    x = _points(300, dim, dtype)
    g = torch.randn(300, grid.out_dim, dtype=dtype)
    idx, w = grid.interpolation(x)
    ref = grid._gather(idx, w).reshape(300, -1)
    ref = torch.cat([x, ref], dim=1) if grid.include_input else ref
    (ref_grad,) = torch.autograd.grad(ref, grid.table, g)
    backend("compiled")  # the kernel for every dimension
    assert grid._use_kernel(x)
    out = grid(x)
    (grad,) = torch.autograd.grad(out, grid.table, g)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    src = g[:, grid.out_dim - grid.levels * f:].reshape(300, grid.levels, 1, f) * w[..., None]
    exact = add_rows(grid.table.shape[0], idx.reshape(-1), src.reshape(-1, f))
    torch.testing.assert_close(grad, exact, rtol=0, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)


def test_kernel_gradcheck_float64():
    grid = _grid(3, "colliding", 2, torch.float64)
    assert grid_kernel.available(strict=True)
    x = _points(40, 3, torch.float64)
    args = grid_kernel._grid_args(grid)
    table = grid.table.detach().clone().requires_grad_()
    memory: dict = {}  # the gradient's memory reused between calls
    assert torch.autograd.gradcheck(
        lambda t: grid_kernel.FusedInterpolation.apply(t, x, args, True, memory), (table,))
    assert "grad" in memory


def test_gradient_memory_reused_only_when_free():
    """The table gradient reuses the last one's memory once nothing holds it (set_to_none),
    never while ``.grad`` (or a view of it) is alive; values stay right either way."""
    grid = _grid(3, "hashed")
    x = _points(100, 3, torch.float32)

    def grad_ptr():
        grid(x).sum().backward()
        return grid.table.grad.data_ptr()

    first = grad_ptr()
    ref = grid.table.grad.clone()
    grid.table.grad = None
    assert grad_ptr() == first  # freed, then reused
    torch.testing.assert_close(grid.table.grad, ref, rtol=0, atol=0)
    kept = grid.table.grad
    grid.table.grad = None
    assert grad_ptr() != first  # still held by `kept`: new memory
    torch.testing.assert_close(kept, ref, rtol=0, atol=0)
    grid_ptr = grid.table.grad.data_ptr()
    grad_ptr()  # .grad kept (accumulated): 2 × the gradient, no aliasing
    torch.testing.assert_close(grid.table.grad, 2 * ref)
    assert grid.table.grad.data_ptr() == grid_ptr


def test_backends_choose_the_kernel(backend):
    """auto: the kernel for 3-D grids only (2-D keeps its sparse products); eager: never;
    coordinates that require grad and torch.func transforms: the differentiable formula."""
    g3, g2 = _grid(3, "hashed"), _grid(2, "hashed")
    x3, x2 = _points(50, 3, torch.float32), _points(50, 2, torch.float32)
    assert g3._use_kernel(x3) and not g2._use_kernel(x2)
    assert not g3._use_kernel(x3.double())  # coordinates and table in different dtypes
    backend("eager")
    assert not g3._use_kernel(x3)
    backend("auto")
    ref = g3(x3).detach()
    xg = x3.clone().requires_grad_()
    out = g3(xg)  # NeuS/SDF normals, eikonal: autograd through the interpolation
    (dx,) = torch.autograd.grad(out.sum(), xg)
    torch.testing.assert_close(out.detach(), ref, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(dx).all() and dx.abs().sum() > 0
    vm = torch.func.vmap(g3)(x3.view(5, 10, 3))
    torch.testing.assert_close(vm.reshape(50, -1), ref, rtol=1e-6, atol=1e-6)


def test_2d_grids_never_build_the_kernel(monkeypatch):
    """Backend auto: 2-D grids (the demo) train and evaluate without asking for the build."""
    def no_build(strict=False):
        raise AssertionError("2-D grid asked for the C++ kernel")

    monkeypatch.setattr(grid_kernel, "available", no_build)
    grid = _grid(2, "hashed")
    x = _points(50, 2, torch.float32)
    grid(x).sum().backward()
    with torch.no_grad():
        grid(x)


def test_kernel_survives_nan_and_empty_coordinates():
    """A NaN coordinate gives NaN features, never an out-of-bounds row; no points: (0, out_dim)
    and a zero gradient."""
    grid = _grid(3, "hashed")
    x = _points(10, 3, torch.float32)
    x[4, 1] = float("nan")
    out = grid(x)
    assert torch.isnan(out[4]).any() and torch.isfinite(out[:4]).all()
    out = grid(torch.empty(0, 3))
    assert out.shape == (0, grid.out_dim)
    (grad,) = torch.autograd.grad(out.sum(), grid.table)
    assert not grad.any()


def test_failed_build_falls_back_with_one_warning(monkeypatch, backend):
    """No compiler: one warning, then the torch paths (same values); backend compiled raises."""
    def broken():
        raise RuntimeError("g++: command not found")

    monkeypatch.setattr(grid_kernel, "_build", broken)
    monkeypatch.setitem(grid_kernel._state, "ops", None)
    monkeypatch.setitem(grid_kernel._state, "broken", False)
    grid = _grid(3, "hashed")
    x = _points(60, 3, torch.float32)
    ref = torch.cat([x, grid._gather(*grid.interpolation(x)).reshape(60, -1)], dim=1)
    with pytest.warns(UserWarning, match="C\\+\\+ grid kernel unavailable"):
        out = grid(x)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid(x)  # no second warning
    backend("compiled")
    with pytest.raises(InrlabError, match="grid kernel"):
        grid(x)


@pytest.mark.slow  # two cold builds of the kernel (~15 s)
def test_two_processes_building_the_kernel_at_once_both_get_it(tmp_path):
    """A sweep's local workers start together on a machine without the cached build: torch's
    build lock must let both load the same kernel (neither falls back, neither crashes)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "OMP_NUM_THREADS": "1"}
    code = "from inrlab.models import grid_kernel as gk; print(gk.available())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "True", err[-500:]


def test_gradient_memory_not_reused_under_a_view_or_numpy_alias():
    """Hostile: a logger keeps a view or a NumPy array of the table gradient and drops ``.grad``;
    the next step must not write into the memory they still show."""
    grid = _grid(3, "hashed")
    x = _points(100, 3, torch.float32)
    grid(x).sum().backward()
    ref = grid.table.grad.clone()
    view, arr = grid.table.grad[:7], grid.table.grad.numpy()
    grid.table.grad = None
    (2 * grid(x)).sum().backward()  # a different gradient, in new memory
    torch.testing.assert_close(view, ref[:7], rtol=0, atol=0)
    assert (arr == ref.numpy()).all()
    torch.testing.assert_close(grid.table.grad, 2 * ref)
