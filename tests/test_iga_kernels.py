"""IGA's patch-level eNTK rows (``train.iga.kernel``) against an explicit per-point Jacobian."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from inrlab import Image
from inrlab.config import ModelConfig, TrainConfig, preset
from inrlab.errors import InrlabError
from inrlab.models import build_model
from inrlab.ntk import patch_kernel
from inrlab.problems import Batch
from inrlab.techniques import IGA
from inrlab.techniques.iga import grid_groups
from inrlab.train.trainer import Trainer


def surrogate_jacobian(model, x):
    """(N, P): gradient of (1/√C) Σ_c f_c at each point w.r.t. every trainable parameter."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}

    def f(p, xi):
        out = functional_call(model, p, (xi[None],))[0]
        return out.sum() / math.sqrt(out.shape[0])

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], 1)


def oracle(model, x, w):
    """K of the weighted group sums from the explicit per-point Jacobian: x (n, p, d), w (n, p)."""
    n, p, d = x.shape
    j = surrogate_jacobian(model, x.reshape(n * p, d)).view(n, p, -1)
    rows = (j * w[..., None]).sum(1)
    return rows @ rows.T


@pytest.mark.parametrize("name,norm", [("pe", "none"), ("siren", "none"), ("relu", "layer"),
                                       ("finer", "none")])
@pytest.mark.parametrize("method", ["structured", "jacobian"])
def test_patch_kernel_matches_jacobian_of_patch_sums(name, norm, method):
    torch.manual_seed(0)
    cfg = preset(name)
    cfg.model.width, cfg.model.depth, cfg.model.norm = 12, 2, norm
    model = build_model(cfg.model, 2, 3).double()
    x = torch.rand(5, 4, 2, dtype=torch.float64) * 2 - 1
    w = torch.rand(5, 4, dtype=torch.float64)
    got = patch_kernel(model, x, w, method)
    torch.testing.assert_close(got, oracle(model, x, w), rtol=1e-10, atol=1e-10)


def test_patch_kernel_routes_and_errors():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, depth=1, norm="batch"), 2, 3).double()
    x = torch.rand(3, 4, 2, dtype=torch.float64)
    w = torch.ones(3, 4, dtype=torch.float64)
    with pytest.raises(InrlabError, match="structured patch eNTK cannot handle"):
        patch_kernel(model, x, w, "structured")
    assert patch_kernel(model, x, w).shape == (3, 3)  # auto: the Jacobian route
    with pytest.raises(InrlabError, match=r"\(n, p, d\)"):
        patch_kernel(model, x[0], w)
    with pytest.raises(InrlabError, match="must match"):
        patch_kernel(model, x, w[:, :2])
    with pytest.raises(InrlabError, match="one output direction"):
        patch_kernel(model, x, w, outputs="full")
    cfg = TrainConfig()
    cfg.iga.kernel = "patch"
    with pytest.raises(InrlabError, match="train.iga.kernel"):
        cfg.validate()


def _iga(kind, heldout):
    torch.manual_seed(0)
    sig = Image(np.random.default_rng(0).random((8, 8, 3)), heldout=heldout)
    model = build_model(ModelConfig(width=16, depth=2), 2, 3).double()
    cfg = TrainConfig()
    cfg.iga.group, cfg.iga.end, cfg.iga.kernel = 2, 3, kind
    tech = IGA(cfg)
    tech.setup(model, sig)
    return sig, model, tech


def _adjusted_gradient(sig, model, tech):
    idx = sig.train_idx
    x, y = sig.coords[idx].double(), sig.targets[idx].double()
    pred = model(x)
    loss = tech.loss(model, Batch(idx, x, y), pred, 0)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])


@pytest.mark.parametrize("kind,heldout", [("patch_sum", 0.0), ("patch_sum", 0.25),
                                          ("reference", 0.0)])
def test_iga_loss_gradient_with_patch_kernels(kind, heldout):
    """Jᵀ S r with S from the oracle kernel built literally from the rule's definition."""
    sig, model, tech = _iga(kind, heldout)
    idx = sig.train_idx
    index = grid_groups((8, 8), 2)  # (16, 4)
    n, p = index.shape
    x = sig.coords.double()
    with torch.no_grad():
        r_full = torch.zeros(64, 3, dtype=torch.float64)
        r_full[idx] = model(x[idx]) - sig.targets[idx].double()
    train = torch.zeros(64, dtype=torch.bool)
    train[idx] = True
    r = r_full[index]  # (n, p, C)
    jac = surrogate_jacobian(model, x)  # (64, P)
    if kind == "patch_sum":  # row g: Σ over the group's training points
        rows = torch.stack([jac[index[g][train[index[g]]]].sum(0) for g in range(n)])
    else:  # the reference's indexing: row g = Σ_h ∇f(x[g, rep_h]), rep_h the argmax of group h
        rep = torch.where(train[index], r.abs().sum(-1), torch.tensor(-1.0, dtype=torch.float64)
                          ).argmax(1)
        rows = torch.stack([sum(jac[index[g, rep[h]]] for h in range(n)) for g in range(n)])
    lam, v = torch.linalg.eigh(rows @ rows.T)
    lam, v = lam.flip(0), v.flip(1)
    s = torch.eye(n, dtype=torch.float64)
    for i in range(3):
        s -= (1 - lam[3] / lam[i]) * torch.outer(v[:, i], v[:, i])
    sr = torch.zeros(64, 3, dtype=torch.float64)
    sr[index.reshape(-1)] = torch.einsum("gh,hkc->gkc", s, r).reshape(-1, 3)
    full = torch.cat([j.reshape(64, 3, -1) for j in vmap(jacrev(
        lambda pr, xi: functional_call(model, pr, (xi[None],))[0]), in_dims=(None, 0))(
        {k: w.detach() for k, w in model.named_parameters()}, x).values()], -1)
    want = 2 / (len(idx) * 3) * torch.einsum("bc,bcp->p", sr[idx], full[idx])
    torch.testing.assert_close(_adjusted_gradient(sig, model, tech), want, rtol=1e-8, atol=1e-11)


def test_patch_mean_gives_the_same_update_as_patch_sum():
    a = _adjusted_gradient(*_iga("patch_sum", 0.0))
    b = _adjusted_gradient(*_iga("patch_mean", 0.0))
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-11)
    c = _adjusted_gradient(*_iga("representative", 0.0))
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("kind", ["patch_sum", "reference"])
def test_patch_kernels_train_with_batch_norm_and_minibatches(kind):
    cfg = preset("pe")
    cfg.model.norm, cfg.model.width = "batch", 16
    cfg.train.steps, cfg.train.eval_every, cfg.train.technique = 2, 2, "iga"
    cfg.train.iga.group, cfg.train.iga.end, cfg.train.iga.kernel = 4, 3, kind
    cfg.train.batch_size = 128
    tr = Trainer(cfg, Image(np.random.default_rng(1).random((16, 16, 3))), progress=False)
    tr.train()
    assert tr.technique.last.vectors.shape == (8, 3) and tr.technique.fallbacks == 0
