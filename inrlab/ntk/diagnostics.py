"""Training-dynamics diagnostics recorded by the trainer (off by default).

``train.diagnostics_every = k`` records the band error Δ_k of the full-grid prediction every k
steps (and at step 0); ``train.ntk_steps = [0, 500, 1000]`` records the eNTK spectrum on
``train.ntk_points`` seeded random training points at those steps. Files, in ``RUN/diagnostics/``:

    band_error.jsonl   {"step", "bands": [...], "error": [...]} per record
    ntk.jsonl          {"step", "method", "points", eigenvalues, lambda_min, lambda_max, ...}
    band_error.png     heat-map of Δ_k over iterations (IGA Fig. 1, normalization paper Fig. 3)
    ntk_spectra.png    sorted-eigenvalue curves at the recorded steps
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..models import predict
from ..problems import GridData, Problem
from ..train.metrics import band_error_1d, band_error_2d
from ..utils import to_jsonable
from .kernel import resolve_method
from .points import sample_points
from .spectrum import eigh, summary

N_BANDS = 8


def band_errors(ref: GridData, pred: np.ndarray,
                bins: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Band labels and relative errors Δ_k of a prediction (N, C) on the reference grid ``ref``.

    2-D grids: ``N_BANDS`` radial rings (``band_error_2d``); 1-D with ``bins`` (the IGA sines'
    ``band_bins``): those rfft bins; other 1-D grids: ``N_BANDS`` equal-width rfft bin ranges.
    """
    y = ref.values.detach().cpu().numpy().astype(np.float64).reshape(*ref.shape, -1)
    p = np.asarray(pred, np.float64).reshape(*ref.shape, -1)
    if y.ndim == 3:
        return [f"ring {k}" for k in range(N_BANDS)], band_error_2d(p, y, N_BANDS)
    bins = np.asarray(bins if bins is not None else (), dtype=int)
    if len(bins):
        return [f"bin {b}" for b in bins], band_error_1d(p, y, bins)
    fy = np.fft.rfft(y, axis=0)
    fd = np.fft.rfft(y - p, axis=0)
    edges = np.linspace(0, len(fy), N_BANDS + 1).round().astype(int)
    err = [np.linalg.norm(fd[a:b]) / max(np.linalg.norm(fy[a:b]), 1e-12)
           for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [f"bins {a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:], strict=True)], np.array(err)


class Diagnostics:
    """Records band errors and eNTK spectra of one training run into ``out / "diagnostics"``
    (a trainer callback, added by the trainer when ``train.diagnostics_every`` or
    ``train.ntk_steps`` is set)."""

    def __init__(self, problem: Problem, every: int, ntk_steps: list[int], ntk_points: int,
                 seed: int, out: Path | None):
        self.problem, self.every, self.ntk_steps = problem, every, set(ntk_steps)
        self.dir = out / "diagnostics" if out is not None else None
        self.bands: list[dict[str, Any]] = []
        self.spectra: list[dict[str, Any]] = []
        self.idx = None  # measurements the eNTK is computed on
        if self.ntk_steps:
            n = min(ntk_points, problem.n_train)
            self.idx, _ = sample_points(problem, n, "random", seed, pool=problem.train_idx)

    def due(self, step: int) -> bool:
        return (self.every > 0 and step % self.every == 0) or step in self.ntk_steps

    def on_step(self, trainer: Any, step: int) -> None:
        if self.due(step):
            self.record(trainer.model, step)

    def on_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.finish()

    def record(self, model: nn.Module, step: int) -> None:
        """Record what is due at ``step``: band errors of the field on the problem's reference
        grid, the measurement-space eNTK spectrum."""
        if self.every > 0 and step % self.every == 0:
            ref = self.problem.reference()
            pred = predict(model, ref.coords.to(next(model.parameters()).device))
            labels, err = band_errors(ref, pred.float().cpu().numpy(),
                                      self.problem.band_bins)
            self._write("band_error", {"step": step, "bands": labels, "error": err}, self.bands)
        if step in self.ntk_steps and self.idx is not None:
            lam = eigh(self.problem.kernel(model, self.idx))
            rec = {"step": step, "method": resolve_method(model, "auto"), "points": len(self.idx),
                   **summary(lam)}
            self._write("ntk", rec, self.spectra)

    def _write(self, name: str, rec: dict[str, Any], store: list[dict[str, Any]]) -> None:
        store.append(rec)
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / f"{name}.jsonl", "a") as f:
                f.write(json.dumps(to_jsonable(rec)) + "\n")

    def finish(self) -> None:
        """Draw the figures from everything recorded in the folder (a resumed run included)."""
        from .plots import band_error_heatmap, sorted_eigenvalue_curves

        if self.dir is None:
            return
        bands = _read(self.dir / "band_error.jsonl")
        if bands:
            band_error_heatmap(bands, self.dir / "band_error.png", title=self.problem.name)
        spectra = _read(self.dir / "ntk.jsonl")
        if spectra:
            curves = {f"step {r['step']}": np.asarray(r["eigenvalues"], float) for r in spectra}
            sorted_eigenvalue_curves(curves, self.dir / "ntk_spectra.png",
                                     title=f"eNTK on {spectra[-1]['points']} points")


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
