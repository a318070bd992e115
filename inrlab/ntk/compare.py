"""Spectra of several models on the same points of one problem: what ``inrlab ntk`` and the
reproduction driver compute and write (``spectrum.json`` and the comparison plots)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..errors import InrlabError
from ..problems import Problem
from ..train.trainer import run
from ..utils import resolve_device, seed_everything, write_json
from .kernel import resolve_method
from .parts import definition_kernel
from .spectrum import eigenvector_frequencies, eigh, kernel_moments, summary


def model_for(cfg: RunConfig, problem: Problem, steps: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """The model of ``cfg`` at initialization (``steps=0``, seeded with ``train.seed``) or after
    ``steps`` training steps on ``problem``; and the training metrics ({} at initialization)."""
    if steps <= 0:
        seed_everything(cfg.train.seed)
        dev = resolve_device(cfg.train.device)
        return problem.build_model(cfg.model).to(dev), {}
    cfg.train.steps = steps
    res = run(cfg, None, problem=problem, progress=False)
    return res.model, res.metrics


def model_spectrum(model: nn.Module, x: torch.Tensor | tuple[Problem, torch.Tensor],
                   grid_shape: tuple[int, ...] | None = None, method: str = "auto",
                   n_vectors: int = 8, transform=None, definition: str = "full"
                   ) -> dict[str, Any]:
    """Summary of the eNTK spectrum of ``model`` on points ``x`` (N, d), or on the measurements
    of a problem (``x = (problem, idx)``: the measurement-space kernel), the route and seconds
    taken, and with ``grid_shape`` the frequency content of the ``n_vectors`` leading
    eigenvectors. ``transform(K) -> K`` edits the kernel before its eigen-decomposition;
    ``definition`` picks which parameters form the kernel (``inrlab.ntk.parts``; points only)."""
    t = time.perf_counter()
    if isinstance(x, tuple) and definition != "full":
        raise InrlabError(f"eNTK definition {definition!r} is for kernels on points: the "
                          f"measurement-space kernel uses every parameter (definition 'full')")
    if isinstance(x, tuple):
        k = x[0].kernel(model, x[1], method=method)
    else:
        k = definition_kernel(model, x.to(next(model.parameters()).device), definition, method)
    if transform is not None:
        k = transform(k)
    route = x[0].kernel_route(model, method) if isinstance(x, tuple) else resolve_method(model, method)
    out: dict[str, Any] = {"method": route}
    if grid_shape is not None:
        lam, vec = eigh(k, vectors=True)
        out |= summary(lam) | eigenvector_frequencies(vec[:, :n_vectors], grid_shape)
    else:
        out |= summary(eigh(k))
    out |= kernel_moments(k)
    out["seconds"] = round(time.perf_counter() - t, 3)
    out["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return out


def write_comparison(results: dict[str, dict[str, Any]], out: Path, meta: dict[str, Any],
                     title: str = "") -> None:
    """``out/spectrum.json`` ({**meta, "models": results}) and the histogram, sorted-curve and
    normalized-curve plots of every model's eigenvalues."""
    from .plots import eigenvalue_histograms, sorted_eigenvalue_curves

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "spectrum.json", {**meta, "models": results})
    lams = {k: np.asarray(v["eigenvalues"], np.float64) for k, v in results.items()}
    eigenvalue_histograms(lams, out / "eigenvalue_histogram.png", title)
    sorted_eigenvalue_curves(lams, out / "eigenvalues_sorted.png", title)
    sorted_eigenvalue_curves(lams, out / "eigenvalues_normalized.png", title, normalized=True)


def print_summary(results: dict[str, dict[str, Any]]) -> None:
    """One line per model: λ_max, λ_min, condition, mean, variance, route, seconds."""
    print(f"{'model':18s} {'lambda_max':>11s} {'lambda_min':>11s} {'condition':>10s} "
          f"{'mean':>10s} {'variance':>10s}  method      seconds")
    for name, r in results.items():
        print(f"{name:18s} {r['lambda_max']:11.4e} {r['lambda_min']:11.4e} {r['condition']:10.3e} "
              f"{r['mean']:10.4e} {r['variance']:10.4e}  {r['method']:10s} {r['seconds']:7.2f}")
