"""FreSh scoring: batched initialisations vs one-by-one models, the pipeline vs a hand-built oracle,
ties, the hash-grid scoring init, and every bad input."""


import numpy as np
import pytest
import torch

from inrlab import Image, preset
from inrlab.config import set_field
from inrlab.errors import InrlabError
from inrlab.fresh import parse_sweep, select, spectrum_vector, wasserstein
from inrlab.fresh.select import _build, batched_outputs
from inrlab.models import build_model
from inrlab.problems import Function1D

SMALL = {"model.width": 32}


def small(name: str, **fields):
    cfg = preset(name)
    for k, v in {**SMALL, **fields}.items():
        set_field(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def img():
    return Image("astronaut", size=32)


@pytest.mark.parametrize("name,fields", [
    ("siren", {}), ("ffe", {}), ("finer", {"model.activation.first_bias_scale": 1.0}),
    ("hash", {"model.encoding.finest_resolution": 64, "model.encoding.log2_table_size": 10,
              "model.encoding.init_scale": 1e-2}),
    ("relu", {"model.norm": "batch"}), ("relu", {"model.norm": "cross"}),
])
def test_batched_outputs_equal_one_by_one(img, name, fields):
    cfg = small(name, **fields)
    models = _build(cfg, img, 4, seed=3)
    out, vmapped = batched_outputs(models, img.coords, chunk=300)  # chunking on non-coupled ones
    assert vmapped and out.shape == (4, img.n, 3)
    with torch.no_grad():
        for r, m in enumerate(models):
            torch.testing.assert_close(out[r], m.eval()(img.coords), rtol=1e-5, atol=1e-5)
    if name == "ffe":  # the random Fourier matrix differs per initialisation
        assert not torch.equal(out[0], out[1])


def test_select_matches_hand_built_oracle(img):
    cfg = small("siren")
    values = [10.0, 30.0, 90.0]
    res = select(img, cfg, "model.activation.omega0_first", values, inits=3, bins=8, seed=5)
    target = spectrum_vector(img.grid(img.targets), 8)
    for i, v in enumerate(values):
        for r in range(3):
            c = small("siren", **{"model.activation.omega0_first": v})
            torch.manual_seed(5 + r)
            m = build_model(c.model, 2, 3).eval()
            with torch.no_grad():
                pred = m(img.coords).numpy().reshape(32, 32, 3)
            d = float(wasserstein(spectrum_vector(pred, 8), target))
            assert res.distances[i, r] == pytest.approx(d, rel=1e-4)
    np.testing.assert_allclose(res.stderr, res.distances.std(1, ddof=1) / np.sqrt(3))
    assert res.best == values[int(np.argmin(res.distances.mean(1)))]
    ranking = res.ranking()
    assert [r["distance"] for r in ranking] == sorted(r["distance"] for r in ranking)
    assert res.default == 30.0 and res.vmapped


def test_fresh_prefers_the_matching_frequency_1d():
    # a 1-D signal of 12 cycles: a SIREN whose first-layer ω₀ is far too low (output smooth)
    # or far too high (output noise-like) must score worse than a moderate one
    sig = Function1D.sines([6], samples=256)
    res = select(sig, small("siren"), "model.activation.omega0_first", [1, 30, 3000], inits=4,
                 bins=32)
    assert res.best == 30


def test_ties_go_to_first_in_grid_order(img):
    # the norm momentum does not change an untrained model's eval output: every score ties
    res = select(img, small("relu"), "model.norm_momentum", [0.5, 0.1, 0.9], inits=2, bins=8)
    assert np.ptp(res.mean) == 0
    assert res.best == 0.5 and [r["value"] for r in res.ranking()] == [0.5, 0.1, 0.9]


def test_hash_tables_use_the_wide_init_while_scoring(img, monkeypatch):
    # FreSh builds its models through the problem (Problem.build_model)
    seen = []
    real = img.build_model

    def spy(cfg):
        seen.append(cfg.encoding.init_scale)
        return real(cfg)

    monkeypatch.setattr(img, "build_model", spy)
    cfg = small("hash", **{"model.encoding.log2_table_size": 10})
    select(img, cfg, "model.encoding.finest_resolution", [16, 32], inits=2, bins=8)
    assert seen and set(seen) == {1e-2}
    seen.clear()
    select(img, cfg, "model.encoding.finest_resolution", [32], inits=1, bins=8,
           grid_init_scale=None)
    assert set(seen) == {1e-4}


def test_constant_output_is_reported(img):
    cfg = small("hash", **{"model.encoding.log2_table_size": 10})
    with pytest.raises(InrlabError, match="constant"):
        select(img, cfg, "model.encoding.init_scale", [0.0, 0.01], inits=2, bins=8)


def test_parse_sweep():
    cfg = preset("finer")
    path, vals = parse_sweep("first_bias_scale=0:3:0.1", cfg)
    assert path == "model.activation.first_bias_scale" and len(vals) == 31
    assert vals[-1] == 3.0 and vals[3] == 0.3
    assert parse_sweep("model.activation.omega0_first=10:200:10", cfg)[1][-1] == 200
    path, vals = parse_sweep("finest_resolution=64:256:64", preset("hash"))
    assert vals == [64, 128, 192, 256] and all(isinstance(v, int) for v in vals)
    assert parse_sweep("encoding.sigma=1,5,10", preset("ffe"))[1] == [1.0, 5.0, 10.0]


@pytest.mark.parametrize("spec,msg", [
    ("model.encoding.nope=1:2:1", "unknown"),
    ("model.encoding.kind=1:2:1", "not numeric"),
    ("model.encoding.include_input=0:1:1", "set model.encoding.kind first"),  # siren: identity
    ("train.lr=1:2:1", "model fields"),
    ("model.activation.omega0_first=30:10:10", "reversed"),
    ("model.activation.omega0_first=10:30:0", "step"),
    ("model.activation.omega0_first=", "empty"),
    ("model.activation.omega0_first=a:b:c", "bad sweep"),
    ("omega0_first", "bad sweep"),
    ("model.width=16:64:0.5", "integer"),
])
def test_bad_sweeps(spec, msg):
    with pytest.raises(InrlabError, match=msg):
        parse_sweep(spec, preset("siren"))


def test_bad_select_inputs(img):
    with pytest.raises(InrlabError, match="fewer than --bins 64"):
        select(img, small("siren"), "model.activation.omega0_first", [30], inits=1)
    with pytest.raises(InrlabError, match="no candidate"):
        select(img, small("siren"), "model.activation.omega0_first", [], inits=1, bins=8)
    with pytest.raises(InrlabError, match="at least 1"):
        select(img, small("siren"), "model.activation.omega0_first", [30], inits=0, bins=8)
    with pytest.raises(InrlabError, match="impossible"):
        select(img, small("siren"), "model.activation.omega0_first", [-1], inits=1, bins=8)


class _Branchy(torch.nn.Module):
    """Data-dependent control flow: vmap cannot trace it, so the loop fallback must run."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 3)

    def forward(self, x):
        y = self.lin(x)
        return y if float(y.sum()) > 0 else -y


def test_loop_fallback_when_vmap_cannot_trace():
    torch.manual_seed(0)
    models = [_Branchy() for _ in range(3)]
    x = torch.rand(50, 2)
    out, vmapped = batched_outputs(models, x)
    assert not vmapped
    with torch.no_grad():
        for r, m in enumerate(models):
            torch.testing.assert_close(out[r], m(x))


def test_select_on_a_3d_volume():
    from inrlab.problems import Signal

    n = 16
    ax = torch.linspace(-1, 1, n)
    coords = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    vals = torch.sin(3 * torch.pi * coords).prod(1, keepdim=True)
    vol = Signal("vol", coords, vals, (n, n, n), torch.arange(n**3), torch.arange(0))
    res = select(vol, small("siren"), "model.activation.omega0_first", [5, 30], inits=2, bins=4)
    assert res.distances.shape == (2, 2) and res.spectra.shape == (2, 4)
    assert np.isfinite(res.distances).all()
