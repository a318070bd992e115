"""``inrlab bench iga``: each timed IGA step takes the eNTK route it is labelled with."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from inrlab.benchmarks import iga_step
from inrlab.problems import Image


def test_bench_iga_times_each_route_with_its_own_config(monkeypatch):
    """The structured and Jacobian techniques once shared one config object, so the structured
    column timed the Jacobian route (a 5-6× "IGA overhead" that was the bench's own bug)."""
    seen: list[str] = []
    real = Image.kernel

    def spy(self, model, idx, method="auto", **kw):
        seen.append(method)
        return real(self, model, idx, method=method, **kw)

    monkeypatch.setattr(Image, "kernel", spy)
    sig = Image(np.random.default_rng(0).random((16, 24, 3)), heldout=0.0)
    args = argparse.Namespace(side=2, kernel="representative", repeats=1, no_jacobian=False)
    row = iga_step.bench_preset("relu", sig, torch.device("cpu"), args)
    n_structured = seen.index("jacobian")  # the structured steps come first, then the Jacobian's
    assert n_structured >= 2 and set(seen[:n_structured]) == {"structured"}
    assert set(seen[n_structured:]) == {"jacobian"}
    assert row["ratio"] > 0 and row["ratio_jacobian"] > 0
