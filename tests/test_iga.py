"""IGA: grouping, representatives, the balanced transform S, and the gradient of the loss."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from inrlab import Image
from inrlab.config import ModelConfig, RunConfig, TrainConfig
from inrlab.errors import InrlabError
from inrlab.models import build_model
from inrlab.problems import Batch, Function1D
from inrlab.techniques import IGA, build_technique
from inrlab.techniques.iga import balance, centre_slot, check_groups, grid_groups
from inrlab.train.trainer import Trainer


def jacobian(model, x):
    """(B, C, P) per-point Jacobian of every output w.r.t. every parameter (test oracle)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return torch.cat([j.reshape(x.shape[0], -1, math.prod(params[k].shape))
                      for k, j in jac.items()], -1)


def oracle_kernel(model, x, method="auto", dtype=torch.float64, outputs="surrogate"):
    """Surrogate eNTK (1/√C Σ_c f_c) from the explicit Jacobian."""
    j = jacobian(model, x).to(dtype)
    js = j.sum(1) / math.sqrt(j.shape[1])
    return js @ js.T


def rotated(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T, q


# --------------------------------------------------------------------------- S


@pytest.mark.parametrize("variant,start,end,expect", [
    ("adam", 0, 2, [2 / 4, 2 / 3, 1, 1, 1]),          # top two clipped down to λ_2 = 2
    ("adam", 1, 3, [1, 1 / 3, 1 / 2, 1, 1]),          # λ_1, λ_2 clipped to λ_3 = 1
    ("sgd", 0, 3, [1, 4 / 3, 2, 1, 1]),               # λ_1, λ_2 raised to λ_0 = 4
    ("sgd", 0, 5, [1, 4 / 3, 2, 4, 8]),
])
def test_balance_against_hand_computed(variant, start, end, expect):
    k, q = rotated([4.0, 3.0, 2.0, 1.0, 0.5])
    s = balance(k, start, end, variant).matrix(5)
    want = q @ torch.diag(torch.tensor(expect, dtype=torch.float64)) @ q.T
    torch.testing.assert_close(s, want)
    lam = torch.linalg.eigvalsh(s @ k).flip(0)  # S K: balanced spectrum (S, K share eigenvectors)
    top = 2.0 if variant == "adam" and end == 2 else None
    if top is not None:
        torch.testing.assert_close(lam[:3], torch.full((3,), top, dtype=torch.float64))


def test_balance_stops_at_zero_eigenvalues():
    k = torch.diag(torch.tensor([3.0, 2.0, 0.0, -1e-17], dtype=torch.float64))
    s = balance(k, 0, 4, "sgd").matrix(4)
    torch.testing.assert_close(torch.diag(s), torch.tensor([1, 1.5, 1, 1], dtype=torch.float64))
    # Adam target λ_3 ≤ 0: the target becomes the last positive eigenvalue (λ_1 = 2)
    s = balance(k, 0, 3, "adam").matrix(4)
    torch.testing.assert_close(torch.diag(s), torch.tensor([2 / 3, 1, 1, 1], dtype=torch.float64))
    assert balance(torch.zeros(3, 3, dtype=torch.float64), 0, 2).vectors is None


@pytest.mark.parametrize("variant,end", [("adam", 8), ("sgd", 8), ("adam", 25)])
def test_balance_lanczos_route_equals_full_eigh(variant, end, monkeypatch):
    """n ≥ LANCZOS_MIN_N takes ARPACK's leading eigenpairs; S must equal the full-eigh S. The
    kernel is an eNTK-like one on a symmetric 1-D grid (even and odd eigenvectors, so a start
    vector of ones would miss half of them)."""
    from inrlab.techniques import iga as iga_mod
    x = torch.linspace(-1, 1, 512, dtype=torch.float64)[:, None]
    feats = torch.cat([torch.cos(torch.pi * f * x) / (1 + f) ** 1.5 for f in range(40)]
                      + [torch.sin(torch.pi * f * x) / (1 + f) ** 1.5 for f in range(1, 40)], 1)
    k = feats @ feats.T
    fast = balance(k, 0, end, variant)
    monkeypatch.setattr(iga_mod, "LANCZOS_MIN_N", 10**9)  # force the full eigh
    full = balance(k, 0, end, variant)
    torch.testing.assert_close(fast.eigenvalues, full.eigenvalues, rtol=1e-12,
                               atol=1e-12 * full.eigenvalues[0].item())
    torch.testing.assert_close(fast.matrix(512), full.matrix(512), rtol=0, atol=1e-8)
    assert fast.eigenvalues.shape == (end + 1,)


def test_balance_errors_and_fallback():
    k, _ = rotated([3.0, 2.0, 1.0])
    with pytest.raises(InrlabError, match="train.iga.end=3"):
        balance(k, 0, 3, "adam")
    balance(k, 0, 3, "sgd")  # sgd may balance all n
    bad = k.clone()
    bad[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="eigen-decomposition failed"):
        b = balance(bad, 0, 1)
    assert b.vectors is None and b.eigenvalues is None
    r = torch.randn(3, 4, 2)
    torch.testing.assert_close(b.apply(r), r)


def test_apply_is_inductive_mixing():
    k, _ = rotated([5.0, 3.0, 2.0, 1.0], seed=3)
    b = balance(k, 0, 2)
    r = torch.randn(4, 6, 3, dtype=torch.float64)
    want = torch.einsum("gh,hkc->gkc", b.matrix(4), r)
    torch.testing.assert_close(b.apply(r), want)


# --------------------------------------------------------------------------- grouping


def test_grid_groups_layouts():
    g = grid_groups((4, 6), 2)
    assert g.shape == (6, 4)
    assert g[0].tolist() == [0, 1, 6, 7] and g[1].tolist() == [2, 3, 8, 9]
    assert g[3].tolist() == [12, 13, 18, 19]
    assert centre_slot((9, 9), 3) == 4 and centre_slot((100,), 8) == 4
    assert grid_groups((12,), 4)[2].tolist() == [8, 9, 10, 11]
    v = grid_groups((2, 4, 4), 2)
    ids = torch.arange(32).view(2, 4, 4)
    assert v.shape == (4, 8) and v[1].tolist() == ids[0:2, 0:2, 2:4].reshape(-1).tolist()
    assert grid_groups((2, 4, 4), 8, "run")[1].tolist() == list(range(8, 16))
    with pytest.raises(InrlabError, match="does not divide"):
        grid_groups((10, 12), 4)
    with pytest.raises(InrlabError, match="divisor of 2047"):
        grid_groups((2047,), 8)


def test_user_groups_checked():
    with pytest.raises(InrlabError, match="unequal sizes"):
        check_groups([[0, 1], [2, 3, 4]], 5)
    with pytest.raises(InrlabError, match="overlap"):
        check_groups([[0, 1], [1, 2]], 5)
    with pytest.raises(InrlabError, match="lie in 0"):
        check_groups([[0, 9]], 5)
    assert check_groups([[3, 1], [0, 2]], 4).tolist() == [[3, 1], [0, 2]]


def test_bad_config():
    cfg = TrainConfig()
    cfg.iga.end = 0
    with pytest.raises(InrlabError, match="start < end"):
        cfg.validate()
    cfg = TrainConfig()
    cfg.iga.representative = "middle"
    with pytest.raises(InrlabError, match="representative"):
        cfg.validate()
    sig = Function1D.sines([2], samples=64)
    cfg = TrainConfig()
    cfg.iga.group, cfg.iga.end = 8, 8  # only 8 groups
    model = build_model(ModelConfig(width=8, depth=1), 1, 1)
    with pytest.raises(InrlabError, match="only 8 groups"):
        IGA(cfg).setup(model, sig)
    cfg.iga.representative = "9"
    cfg.iga.end = 2
    with pytest.raises(InrlabError, match="outside the group"):
        IGA(cfg).setup(model, sig)


# --------------------------------------------------------------------------- the loss


def _setup(rep="residual", variant="adam", end=3, channels=3):
    torch.manual_seed(0)
    sig = Image(np.random.default_rng(0).random((8, 8, channels)), heldout=0.2)
    model = build_model(ModelConfig(width=16, depth=2), 2, channels).double()
    cfg = TrainConfig()
    cfg.iga.group, cfg.iga.end, cfg.iga.variant, cfg.iga.representative = 2, end, variant, rep
    tech = IGA(cfg, kernel_fn=oracle_kernel)
    tech.setup(model, sig)
    return sig, model, tech


@pytest.mark.parametrize("rep,variant", [("residual", "adam"), ("centre", "sgd"), ("1", "adam")])
def test_loss_gradient_equals_adjusted_update(rep, variant):
    sig, model, tech = _setup(rep, variant)
    idx = sig.train_idx
    x, y = sig.coords[idx].double(), sig.targets[idx].double()
    pred = model(x)
    loss = tech.loss(model, Batch(idx, x, y), pred, 0)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    got = torch.cat([g.reshape(-1) for g in grads])

    # independent construction: full residual grid, representatives, S from the oracle kernel
    index = grid_groups((8, 8), 2)                     # (16, 4)
    n, p = index.shape
    r_full = torch.zeros(64, 3, dtype=torch.float64)
    r_full[idx] = (pred - y).detach()
    train = torch.zeros(64, dtype=torch.bool)
    train[idx] = True
    r = r_full[index]                                  # (n, p, C)
    if rep == "residual":
        score = torch.where(train[index], r.abs().sum(-1), torch.tensor(-1.0, dtype=torch.float64))
        slot = score.argmax(1)
    else:
        slot = torch.full((n,), 2 if rep == "centre" else 1)  # centre of a 2×2 patch: (1, 1) → 3?
        if rep == "centre":
            slot[:] = centre_slot((8, 8), 2)
    reps = index[torch.arange(n), slot]
    k = oracle_kernel(model, sig.coords[reps].double())
    lam, v = torch.linalg.eigh(k)
    lam, v = lam.flip(0), v.flip(1)
    s = torch.eye(n, dtype=torch.float64)
    t = 3 if variant == "adam" else 0
    for i in range(3):
        s -= (1 - lam[t] / lam[i]) * torch.outer(v[:, i], v[:, i])
    sr = torch.einsum("gh,hkc->gkc", s, r).reshape(-1, 3)
    sr_pts = torch.zeros(64, 3, dtype=torch.float64)
    sr_pts[index.reshape(-1)] = sr
    jac = jacobian(model, x)                           # (B, C, P)
    want = 2 / (len(idx) * 3) * torch.einsum("bc,bcp->p", sr_pts[idx], jac)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(got, 2 / (len(idx) * 3) * torch.einsum("bc,bcp->p", (pred - y).detach(),
                                                                       jac))


def test_eigh_failure_falls_back_to_mse_gradient():
    sig, model, tech = _setup()
    tech.kernel_fn = lambda *a, **k: torch.full((16, 16), float("nan"), dtype=torch.float64)
    idx = sig.train_idx
    x, y = sig.coords[idx].double(), sig.targets[idx].double()
    pred = model(x)
    with pytest.warns(RuntimeWarning, match="plain gradient"):
        loss = tech.loss(model, Batch(idx, x, y), pred, 0)
    g_iga = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    g_mse = torch.autograd.grad(torch.mean((pred - y) ** 2), list(model.parameters()))
    for a, b in zip(g_iga, g_mse, strict=True):
        torch.testing.assert_close(a, b)
    assert tech.fallbacks == 1


def test_representative_is_largest_residual_over_channels():
    sig, model, tech = _setup()
    res = torch.zeros(2, 4, 3, dtype=torch.float64)
    res[0, 1] = torch.tensor([0.5, -0.5, 0.1])   # Σ|r| = 1.1
    res[0, 2] = torch.tensor([-0.9, 0.0, 0.0])   # max single channel, smaller sum
    res[1, 3] = torch.tensor([5.0, 5.0, 5.0])    # largest but absent (held out)
    res[1, 0] = torch.tensor([0.0, 0.1, 0.0])
    present = torch.tensor([[True] * 4, [True, True, True, False]])
    assert tech.representatives(res, present).tolist() == [1, 0]


def test_recompute_every_k_steps():
    sig, model, tech = _setup()
    tech.icfg.every = 3
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return oracle_kernel(*a, **k)

    tech.kernel_fn = counting
    idx = sig.train_idx
    x, y = sig.coords[idx].double(), sig.targets[idx].double()
    for step in range(7):
        tech.loss(model, Batch(idx, x, y), model(x), step)
    assert len(calls) == 3  # steps 0, 3, 6


def test_minibatch_of_whole_groups_trains():
    sig = Function1D.sines([1, 3], samples=256)
    cfg = RunConfig()
    cfg.model = ModelConfig(width=32, depth=2)
    cfg.train.steps, cfg.train.lr, cfg.train.batch_size, cfg.train.eval_every = 60, 3e-3, 64, 60
    cfg.train.technique = "iga"
    cfg.train.iga.group, cfg.train.iga.end = 8, 4
    cfg.signal.name = "sines:1,3"
    tech = IGA(cfg.train, kernel_fn=oracle_kernel)
    tr = Trainer(cfg, sig, progress=False, technique=tech)
    idx = tech.sample_batch(sig, 64, torch.Generator().manual_seed(0))
    assert len(idx) == 64 and len(torch.unique(idx // 8)) == 8  # 8 whole groups
    before = torch.mean((tr.model(sig.coords) - sig.targets) ** 2).item()
    res = tr.train()
    assert res.metrics["mse"] < 0.85 * before
    assert tech.last is not None and tech.last.eigenvalues.shape[0] <= 8


def test_registry_builds_configured_iga():
    cfg = TrainConfig()
    cfg.iga.end = 7
    t = build_technique("iga", cfg)
    assert isinstance(t, IGA) and t.icfg.end == 7
    with pytest.raises(InrlabError, match="unknown technique"):
        build_technique("adamw", cfg)


@pytest.mark.parametrize("name", ["relu", "pe", "ffe", "siren", "finer", "gauss", "wire", "mpe",
                                  "hash"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_iga_runs_with_every_preset_and_norm(name, norm):
    """IGA with the package's eNTK (structured route, Jacobian for batch norm) on every preset."""
    from inrlab.config import preset

    cfg = preset(name)
    cfg.model.norm, cfg.model.width = norm, 16
    cfg.train.steps, cfg.train.eval_every, cfg.train.technique = 3, 3, "iga"
    cfg.train.iga.group, cfg.train.iga.end = 4, 3
    sig = Image(np.random.default_rng(1).random((16, 16, 3)))
    tr = Trainer(cfg, sig, progress=False)
    tr.train()
    assert tr.technique.last.vectors.shape == (16, 3) and tr.technique.fallbacks == 0


def test_package_kernel_matches_oracle_in_iga():
    sig, model, tech = _setup()
    tech.kernel_fn = None
    idx = sig.train_idx
    x, y = sig.coords[idx].double(), sig.targets[idx].double()
    pred = model(x)
    g_pkg = torch.autograd.grad(tech.loss(model, Batch(idx, x, y), pred, 0), list(model.parameters()),
                                retain_graph=True)
    tech.kernel_fn, tech._balance_groups = oracle_kernel, None
    g_ref = torch.autograd.grad(tech.loss(model, Batch(idx, x, y), pred, 0), list(model.parameters()))
    for a, b in zip(g_pkg, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_cli_iga_and_fr(tmp_path, capsys):
    from inrlab.cli import main

    for tech, extra in [("iga", ["--iga.group", "8", "--iga.end", "4", "--iga.variant", "sgd"]),
                        ("fr", ["--fr.low", "4", "--fr.high", "4", "--fr.phases", "2"])]:
        rc = main(["fit", "sines:2,4@256", "--preset", "relu", "--width", "16", "--steps", "5",
                   "--technique", tech, *extra, "--quiet", "--out", str(tmp_path / tech)])
        assert rc == 0
    assert main(["fit", "sines:2,4@250", "--technique", "iga", "--iga.group", "8",
                 "--quiet", "--out", str(tmp_path / "bad")]) == 2
    assert "divisor of 250" in capsys.readouterr().err


@pytest.mark.parametrize("norm", ["batch", "global", "cross"])
def test_frozen_coupled_kernel_is_the_per_point_kernel_at_the_batch_statistics(norm):
    """train.iga.coupled = frozen: the group rows' eNTK is that of every point alone through the
    norms frozen at the training batch's statistics (oracle: one autograd.grad per point), the
    live model (mode, running statistics) is untouched, and it differs from the batch route."""
    from inrlab.config import preset

    cfg = preset("pe")
    cfg.model.norm, cfg.model.width = norm, 16
    cfg.train.technique, cfg.train.iga.group, cfg.train.iga.end = "iga", 4, 3
    cfg.train.iga.coupled, cfg.train.iga.representative = "frozen", "centre"
    sig = Image(np.random.default_rng(2).random((16, 16, 3)))
    tr = Trainer(cfg, sig, progress=False)
    tech, model = tr.technique, tr.model.double()
    idx = sig.train_idx
    x = sig.coords[idx].double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kmodel = tech._kernel_model(model, x)
    assert model.training and kmodel is not model
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    groups = torch.arange(tech.index.shape[0])
    res = torch.ones(len(groups), tech.index.shape[1], 3, dtype=torch.float64)
    present = torch.ones(res.shape[:2], dtype=torch.bool)
    k = tech.group_kernel(kmodel, groups, res, present, torch.float64)
    reps = tech.index[groups, tech.centre]
    model.eval()
    from inrlab.models import freeze_statistics

    freeze_statistics(model, x)
    model.eval()
    rows = []
    for i in reps:
        out = model(sig.coords[i:i + 1].double())[0].sum() / math.sqrt(3)
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, list(
            model.parameters()))]))
    jac = torch.stack(rows)
    torch.testing.assert_close(k, jac @ jac.T, rtol=1e-9, atol=1e-12)
    tech.icfg.coupled = "batch"
    model.load_state_dict(before)
    model.train()
    assert tech._kernel_model(model, x) is model
    k_batch = tech.group_kernel(model, groups, res, present, torch.float64)
    assert not torch.allclose(k, k_batch)


def test_iga_coupled_choice_is_checked():
    from inrlab.config import preset, set_fields

    cfg = preset("pe")
    with pytest.raises(InrlabError, match="train.iga.coupled"):
        set_fields(cfg, {"train.iga.coupled": "sometimes"}.items())
        cfg.validate()


def test_frozen_coupled_kernel_model_keeps_a_model_already_evaluating_per_point():
    """A model whose norms already evaluate with frozen statistics (eval) is its own kernel
    model: re-freezing a copy at the batch's statistics would not be what its forward used."""
    from inrlab.config import preset
    from inrlab.models import freeze_statistics

    cfg = preset("pe")
    cfg.model.norm, cfg.model.width = "batch", 16
    cfg.train.technique, cfg.train.iga.group, cfg.train.iga.end = "iga", 4, 3
    sig = Image(np.random.default_rng(2).random((16, 16, 3)))
    tr = Trainer(cfg, sig, progress=False)
    x = sig.coords[sig.train_idx[:64]]
    assert tr.technique._kernel_model(tr.model, x) is not tr.model  # training: batch statistics
    freeze_statistics(tr.model, sig.coords)
    tr.model.eval()
    assert tr.technique._kernel_model(tr.model, x) is tr.model
