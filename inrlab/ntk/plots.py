"""eNTK figures: overlaid log10 eigenvalue histograms (normalization paper Fig. 1), sorted
eigenvalue curves (multigrid paper Figs. 2, 4) and band-error heat-maps over training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plots import plt

EPS = np.finfo(np.float64).eps


def resolved(lam: np.ndarray) -> np.ndarray:
    """Eigenvalues clipped at their rounding floor N·ε·λ_max (below it nothing is resolved; a
    PSD kernel's rounding also leaves tiny negative values there)."""
    lam = np.asarray(lam, np.float64)
    return np.maximum(lam, len(lam) * EPS * max(float(lam.max()), np.finfo(np.float64).tiny))


def _log10(lam: np.ndarray) -> np.ndarray:
    return np.log10(resolved(lam))


def eigenvalue_histograms(spectra: dict[str, np.ndarray], path: Path, title: str = "",
                          bins: int = 40) -> None:
    """Overlaid histograms of log10 λ, one per model (``{label: eigenvalues}``)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    logs = {k: _log10(v) for k, v in spectra.items()}
    lo = min(v.min() for v in logs.values())
    hi = max(v.max() for v in logs.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for label, v in logs.items():
        ax.hist(v, bins=edges, alpha=0.45, label=label, histtype="stepfilled", edgecolor="k",
                linewidth=0.4)
    ax.set_xlabel("log10 eigenvalue")
    ax.set_ylabel("count")
    ax.set_title(title or "eNTK eigenvalue distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sorted_eigenvalue_curves(spectra: dict[str, np.ndarray], path: Path, title: str = "",
                             normalized: bool = False) -> None:
    """λ_i against i (descending, log y axis), one curve per label; ``normalized``: λ_i / λ_max.
    Values below a curve's rounding floor N·ε·λ_max are drawn at the floor."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, lam in spectra.items():
        lam = resolved(lam)
        y = lam / lam[0] if normalized else lam
        ax.semilogy(np.arange(1, len(y) + 1), y, label=label, lw=1.2)
    ax.set_xlabel("eigenvalue index i")
    ax.set_ylabel("λ_i / λ_max" if normalized else "λ_i")
    ax.set_title(title or "sorted eNTK eigenvalues")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def band_error_heatmap(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Δ_k over iterations: rows are bands (low frequency at the bottom), columns the recorded
    steps; ``records`` are ``{"step", "bands", "error"}`` dicts."""
    steps = [r["step"] for r in records]
    err = np.array([[np.nan if e is None else e for e in r["error"]] for r in records]).T
    fig, ax = plt.subplots(figsize=(8, 3.5))
    im = ax.imshow(err, aspect="auto", origin="lower", cmap="magma", vmin=0,
                   vmax=max(1.0, float(np.nanmax(err)) if np.isfinite(err).any() else 1.0),
                   extent=(min(steps), max(steps) if len(steps) > 1 else min(steps) + 1,
                           -0.5, err.shape[0] - 0.5), interpolation="nearest")
    ax.set_yticks(range(err.shape[0]))
    ax.set_yticklabels(records[0]["bands"], fontsize=7)
    ax.set_xlabel("step")
    ax.set_title(title or "relative error per frequency band Δ_k")
    fig.colorbar(im, ax=ax, label="Δ_k")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
