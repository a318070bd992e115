"""Figures written into run folders (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .signals import Image, Signal  # noqa: E402


def log_spectrum_2d(img: np.ndarray) -> np.ndarray:
    """Centred log10(1 + |DFT|) of the channel mean of an (H, W[, C]) image."""
    g = img.mean(-1) if img.ndim == 3 else img
    return np.log10(1 + np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))))


def summary_figure(signal: Signal, pred: np.ndarray, history: list[dict[str, Any]],
                   path: Path) -> None:
    """Target, prediction, error map and log-magnitude spectra side by side, plus PSNR curve."""
    if isinstance(signal, Image):
        y, p = signal.to_image(signal.targets), signal.to_image(pred)
        err = np.abs(p - y).mean(-1)
        sy, sp = log_spectrum_2d(y), log_spectrum_2d(p)
        fig, ax = plt.subplots(1, 6, figsize=(24, 4.4))
        show = (lambda a: a[..., 0]) if y.shape[-1] == 1 else (lambda a: a)
        ax[0].imshow(show(y), cmap="gray", vmin=0, vmax=1)
        ax[0].set_title("target")
        ax[1].imshow(show(p), cmap="gray", vmin=0, vmax=1)
        ax[1].set_title("prediction")
        im = ax[2].imshow(err, cmap="inferno", vmin=0, vmax=max(np.percentile(err, 99.5), 1e-6))
        ax[2].set_title("|error| (channel mean, 99.5% clip)")
        fig.colorbar(im, ax=ax[2], fraction=0.046)
        vmax = max(sy.max(), sp.max())
        ax[3].imshow(sy, cmap="viridis", vmin=0, vmax=vmax)
        ax[3].set_title("log10 |F| target")
        ax[4].imshow(sp, cmap="viridis", vmin=0, vmax=vmax)
        ax[4].set_title("log10 |F| prediction")
        for a in ax[:5]:
            a.axis("off")
        curve = ax[5]
    else:
        x = signal.coords[:, 0].numpy()
        y, p = signal.grid(signal.targets)[:, 0], signal.grid(pred)[:, 0]
        fig, ax = plt.subplots(1, 4, figsize=(20, 4))
        ax[0].plot(x, y, lw=1, label="target")
        ax[0].plot(x, p, lw=1, ls="--", label="prediction")
        ax[0].legend()
        ax[0].set_title("signal")
        ax[1].plot(x, p - y, lw=0.8, color="C3")
        ax[1].set_title("error")
        ax[2].semilogy(np.abs(np.fft.rfft(y)) + 1e-12, lw=1, label="target")
        ax[2].semilogy(np.abs(np.fft.rfft(p)) + 1e-12, lw=1, ls="--", label="prediction")
        ax[2].set_xlabel("rfft bin")
        ax[2].set_title("|F| (log)")
        ax[2].legend()
        curve = ax[3]
    steps = [h["step"] for h in history]
    for key in ("psnr_train", "psnr_heldout"):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            curve.plot(steps, [np.nan if v is None else v for v in vals], label=key)
    curve.set_xlabel("step")
    curve.set_ylabel("PSNR (dB)")
    curve.set_title("training")
    curve.grid(alpha=0.3)
    if steps:
        curve.legend()
    fig.suptitle(signal.name)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_reconstruction(signal: Signal, pred: np.ndarray, path: Path) -> None:
    """The prediction as a PNG: the image itself, or a plot of a 1-D signal against its target."""
    if isinstance(signal, Image):
        img = signal.to_image(pred)
        plt.imsave(path, img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        return
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(signal.coords[:, 0].numpy(), signal.grid(signal.targets)[:, 0], lw=1, label="target")
    ax.plot(signal.coords[:, 0].numpy(), signal.grid(pred)[:, 0], lw=1, ls="--", label="prediction")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fresh_figure(res: Any, path: Path) -> None:
    """FreSh: mean Wasserstein distance (± standard error) vs candidate value, and the target's
    spectrum vector beside the best candidate's (mean over initialisations). ``res``: a
    :class:`inrlab.fresh.FreshResult`."""
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    v = np.asarray(res.values, dtype=float)
    err = np.nan_to_num(res.stderr)
    ax[0].errorbar(v, res.mean, yerr=err, marker="o", ms=3, capsize=2)
    ax[0].axvline(res.best, color="C3", ls="--", lw=1, label=f"best {res.best:g}")
    if res.default is not None:
        ax[0].axvline(res.default, color="gray", ls=":", lw=1, label=f"default {res.default:g}")
    ax[0].set_xlabel(res.field)
    ax[0].set_ylabel("Wasserstein-1 to target spectrum")
    ax[0].set_title(f"FreSh on {res.signal} ({res.inits} inits)")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    k = np.arange(1, res.bins + 1)
    ax[1].semilogy(k, res.target_spectrum, label="target")
    ax[1].semilogy(k, res.spectra[res.best_index], ls="--", label=f"best ({res.best:g}), untrained")
    ax[1].set_xlabel(f"frequency bin ({res.binning})")
    ax[1].set_ylabel("normalised |F|")
    ax[1].set_title("spectrum vectors")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
