"""The Problem interface: registry, unchanged seeded results of direct fitting, and a custom
operator problem (pairwise averages) through the trainer, the measurement eNTK and IGA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev

import inrlab
from inrlab.config import ModelConfig, RunConfig, SignalConfig, TrainConfig
from inrlab.errors import InrlabError
from inrlab.models import build_model, predict
from inrlab.ntk import kernel
from inrlab.problems import PROBLEMS, Batch, GridData, Problem, load_problem, register_problem
from inrlab.techniques import IGA
from inrlab.techniques.iga import balance

PINNED = json.loads((Path(__file__).parent / "data" / "pinned_runs.json").read_text())


@pytest.mark.parametrize("case", sorted(PINNED))
def test_direct_fitting_results_unchanged_by_the_problem_interface(case):
    """Seeded runs recorded before images and 1-D signals became identity-operator problems."""
    c = PINNED[case]
    res = inrlab.fit(c["signal"], c["preset"], steps=12, progress=False,
                     overrides={"train.eval_every": 6, **c["overrides"]})
    for k, v in c["metrics"].items():
        assert res.metrics[k] == pytest.approx(v, rel=1e-5), k
    assert [h["psnr"] for h in res.history] == pytest.approx(c["history_psnr"], rel=1e-5)


class PairAverage(Problem):
    """A 1-D field on 2M fine points seen only through averages of neighbouring pairs:
    m_i = (f(x_2i) + f(x_2i+1)) / 2, M measurements. ``pairs:M`` names it."""

    def __init__(self, m: int = 32):
        self.name, self.in_dim, self.out_dim = f"pairs{m}", 1, 1
        self.meta, self.config = {"kind": "pairs", "m": m}, SignalConfig(f"pairs:{m}")
        self.fine = torch.linspace(-1, 1, 2 * m)[:, None]
        self.truth = torch.sin(3 * torch.pi * self.fine)
        self.y = self.truth.view(m, 2, 1).mean(1)
        self.measurement_shape, self.train_idx, self.data_range = (m,), torch.arange(m), 2.0

    def batch(self, idx: torch.Tensor) -> Batch:
        pts = torch.stack([2 * idx, 2 * idx + 1], 1).reshape(-1)
        return Batch(idx, self.fine[pts], self.y[idx])

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return out.view(-1, 2, out.shape[1]).mean(1)

    def evaluate(self, model: torch.nn.Module, structural: bool = True) -> dict[str, Any]:
        p = predict(model, self.fine)
        return {"psnr": float(10 * torch.log10(4 / torch.mean((p - self.truth) ** 2)))}

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list) -> None:
        np.save(out / "reconstruction.npy", predict(model, self.fine).numpy())

    def reference(self) -> GridData:
        return GridData(self.fine, (len(self.fine),), self.truth)


@pytest.fixture
def pairs_kind():
    register_problem("pairs", lambda cfg: PairAverage(int(cfg.name.split(":")[1])), "test kind")
    yield
    PROBLEMS.pop("pairs")


def test_registry_names_kinds_and_rejects_unknown_ones(pairs_kind):
    assert isinstance(load_problem(SignalConfig("pairs:16")), PairAverage)
    assert load_problem(SignalConfig("sines:3@64")).identity
    with pytest.raises(InrlabError, match="unknown problem kind 'nosuch'.*pairs.*sines"):
        load_problem(SignalConfig("nosuch:thing"))


def test_custom_operator_problem_trains_end_to_end(pairs_kind, tmp_path):
    # a ReLU MLP's spectral bias fills the averaging operator's null space (pair differences)
    # smoothly; it reaches ~27 dB on the fine grid it never sees directly
    res = inrlab.fit("pairs:32", "relu", steps=150, out=tmp_path / "run", progress=False,
                     overrides={"model.width": 32, "train.lr": 3e-3, "train.eval_every": 50})
    assert res.metrics["psnr"] > 24 and res.metrics["psnr"] > res.history[0]["psnr"] + 10
    assert (tmp_path / "run" / "reconstruction.npy").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["signal_meta"]["kind"] == "pairs"


def _flat_jacobian(model: torch.nn.Module, prob: Problem, idx: torch.Tensor) -> torch.Tensor:
    """J_m (n, P): explicit Jacobian of the measurements of ``idx`` in all parameters."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    b = prob.batch(idx)

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return prob.forward(functional_call(model, p, (b.x.double(),)), b)[:, 0]

    jac = jacrev(f)(params)
    return torch.cat([jac[k].reshape(len(idx), -1) for k in params], 1)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(width=16, depth=2), 1, 1).double()


def test_measurement_kernel_equals_jacobian_oracle():
    prob, model = PairAverage(16), _model()
    idx = torch.tensor([0, 3, 4, 9, 15])
    j = _flat_jacobian(model, prob, idx)
    torch.testing.assert_close(prob.kernel(model, idx), j @ j.T, rtol=1e-10, atol=1e-12)
    # for this linear operator K_m = A K Aᵀ with K the eNTK on the fine points
    k_fine = kernel(model, prob.fine.double())
    a = torch.zeros(16, 32, dtype=torch.float64)
    a[torch.arange(16), 2 * torch.arange(16)] = a[torch.arange(16), 2 * torch.arange(16) + 1] = 0.5
    torch.testing.assert_close(prob.kernel(model, idx), (a @ k_fine @ a.T)[idx][:, idx])


def test_iga_gradient_through_an_operator_is_jt_s_r():
    prob, model = PairAverage(16), _model(1)
    cfg = TrainConfig()
    cfg.iga.group, cfg.iga.end = 2, 3
    tech = IGA(cfg)
    tech.setup(model, prob)
    b = prob.full_batch()
    pred = prob.forward(model(b.x.double()), b)
    got = torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        tech.loss(model, b, pred, 0), list(model.parameters()))])
    # independent: representatives (largest |r| per group of 2), S from J_m of the representatives
    r = (pred.detach() - b.y.double())[:, 0]
    groups = torch.arange(16).view(8, 2)
    rep = groups[torch.arange(8), r[groups].abs().argmax(1)]
    jr = _flat_jacobian(model, prob, rep)
    s = balance(jr @ jr.T, 0, 3).matrix(8)
    sr = (s @ r.view(8, 2)).reshape(-1)
    want = 2 / 16 * _flat_jacobian(model, prob, torch.arange(16)).T @ sr
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)


def test_fresh_and_diagnostics_use_the_reference_grid(pairs_kind, tmp_path):
    from inrlab.fresh.select import select

    cfg = RunConfig()
    cfg.model = ModelConfig(width=16, depth=2)
    res = select(PairAverage(32), cfg, "model.width", [8, 16], inits=2, bins=4)
    assert res.distances.shape == (2, 2)
    out = inrlab.fit("pairs:16", "relu", steps=4, out=tmp_path / "d", progress=False,
                     overrides={"model.width": 8, "train.diagnostics_every": 2,
                                "train.ntk_steps": "0,4", "train.ntk_points": 8})
    assert out.metrics["steps"] == 4
    lines = (tmp_path / "d" / "diagnostics" / "ntk.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["points"] == 8
