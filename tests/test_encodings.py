import math

import pytest
import torch

from inrlab.config import EncodingConfig
from inrlab.models.encodings import Fourier, Grid, Positional

GRID = {"levels": 3, "base_resolution": 4, "finest_resolution": 16, "init_scale": 0.1}


@pytest.mark.parametrize("kind", ["identity", "positional", "fourier", "multigrid", "hash"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_shapes_and_gradients(kind, dim):
    extra = {**GRID, "log2_table_size": 8} if kind == "hash" else GRID if kind == "multigrid" else {}
    enc = EncodingConfig(kind=kind, **extra).setup(dim)
    x = (torch.rand(50, dim) * 2 - 1).requires_grad_()
    out = enc(x)
    assert out.shape == (50, enc.out_dim)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in enc.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_positional_matches_formula():
    enc = Positional(2, 3)
    x = torch.tensor([[0.3, -0.7]])
    out = enc(x)[0]
    expect = [0.3, -0.7]
    expect += [math.sin(2**i * math.pi * v) for v in (0.3, -0.7) for i in range(3)]
    expect += [math.cos(2**i * math.pi * v) for v in (0.3, -0.7) for i in range(3)]
    assert enc.out_dim == 2 * (2 * 3 + 1) == 14
    torch.testing.assert_close(out, torch.tensor(expect), atol=1e-6, rtol=0)


def test_fourier_frequency_scale():
    torch.manual_seed(0)
    enc = Fourier(2, sigma=5.0, n_features=4096)
    assert abs(enc.B.std().item() - 5.0) < 0.15
    x = torch.rand(10, 2)
    torch.testing.assert_close(enc(x)[:, :4096], torch.sin(2 * math.pi * x @ enc.B.T))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_grid_interpolation_reproduces_linear_functions(dim):
    """Multilinear interpolation is exact for a function linear in each coordinate."""
    g = Grid(dim, levels=2, base_resolution=3, finest_resolution=7, features_per_level=1,
             hashed=False, include_input=False)
    coef = torch.tensor([0.5, -1.25, 2.0][:dim])
    with torch.no_grad():
        for l, r in enumerate(g.resolutions):
            axes = torch.meshgrid(*[torch.linspace(-1, 1, r + 1)] * dim, indexing="ij")
            # dense index = Σ v_i (r+1)^i: axis i varies with stride (r+1)^i → reverse axes order
            verts = torch.stack([a.reshape(-1) for a in axes[::-1]], -1)
            start, stop = int(g.offsets[l]), int(g.offsets[l + 1])
            g.table[start:stop, 0] = verts @ coef + 0.1
    x = torch.rand(200, dim) * 2 - 1
    expect = (x @ coef + 0.1)[:, None].expand(-1, 2)
    torch.testing.assert_close(g(x), expect, atol=1e-5, rtol=0)


def test_hash_grid_equals_dense_grid_without_collisions():
    dense = Grid(2, levels=3, base_resolution=4, finest_resolution=12, features_per_level=2,
                 hashed=False, include_input=True, init_scale=1.0)
    hashed = Grid(2, levels=3, base_resolution=4, finest_resolution=12, features_per_level=2,
                  hashed=True, log2_table_size=16, include_input=True, dense_when_fits=False)
    assert not hashed.dense.any()
    with torch.no_grad():
        for l, r in enumerate(dense.resolutions):
            iy, ix = torch.meshgrid(torch.arange(r + 1), torch.arange(r + 1), indexing="ij")
            v = torch.stack([ix.reshape(-1), iy.reshape(-1)], -1)
            h = ((v[:, 0] * 1) ^ (v[:, 1] * 2654435761)) % 2**16
            assert len(torch.unique(h)) == len(h), "test needs a collision-free level"
            d = v[:, 0] + v[:, 1] * (r + 1)
            hashed.table[int(hashed.offsets[l]) + h] = dense.table[int(dense.offsets[l]) + d]
    x = torch.rand(500, 2) * 2 - 1
    torch.testing.assert_close(hashed(x), dense(x), atol=1e-6, rtol=0)


def test_hash_table_is_bounded():
    g = Grid(3, levels=4, base_resolution=16, finest_resolution=128, features_per_level=2,
             hashed=True, log2_table_size=12)
    assert g.table.shape[0] <= 4 * 2**12
    x = torch.rand(100, 3) * 2 - 1
    idx, w = g.interpolation(x)
    assert idx.min() >= 0 and idx.max() < g.table.shape[0]
    torch.testing.assert_close(w.sum(-1), torch.ones(100, 4))


def test_full_batch_cache_is_invalidated_by_new_coordinates():
    g = Grid(2, levels=2, base_resolution=2, finest_resolution=8, features_per_level=2,
             hashed=False, init_scale=1.0)
    x = torch.rand(64, 2) * 2 - 1
    a = g(x)
    x.mul_(0.5)  # in-place change bumps the version counter
    torch.testing.assert_close(g(x), g(x.clone()))
    assert not torch.allclose(a, g(x))
