"""Figures written into run folders (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def log_spectrum_2d(img: np.ndarray) -> np.ndarray:
    """Centred log10(1 + |DFT|) of the channel mean of an (H, W[, C]) image."""
    g = img.mean(-1) if img.ndim == 3 else img
    return np.log10(1 + np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))))


def psnr_curve(ax: Any, history: list[dict[str, Any]], keys: tuple[str, ...] = ("psnr_train",
               "psnr_heldout")) -> None:
    """Plot the PSNR history (train and held-out) of a run into ``ax``."""
    steps = [h["step"] for h in history]
    for key in keys:
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            ax.plot(steps, [np.nan if v is None else v for v in vals], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("training")
    ax.grid(alpha=0.3)
    if steps:
        ax.legend()


def show_image(ax: Any, img: np.ndarray, title: str) -> None:
    """An (H, W, C) image in [0, 1] (gray when C = 1) without axes."""
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")


def image_panels(target: np.ndarray, pred: np.ndarray, history: list[dict[str, Any]], path: Path,
                 title: str, extra: list[tuple[str, np.ndarray]] = ()) -> None:
    """Target | prediction | error map | log spectra of both | (extra images) | PSNR curve, for
    (H, W, C) images in [0, 1]; ``extra`` adds (title, image) panels (baselines, measurements)."""
    err = np.abs(pred - target).mean(-1)
    sy, sp = log_spectrum_2d(target), log_spectrum_2d(pred)
    n = 6 + len(extra)
    fig, ax = plt.subplots(1, n, figsize=(4 * n, 4.4))
    show_image(ax[0], target, "target")
    show_image(ax[1], pred, "prediction")
    im = ax[2].imshow(err, cmap="inferno", vmin=0, vmax=max(np.percentile(err, 99.5), 1e-6))
    ax[2].set_title("|error| (channel mean, 99.5% clip)")
    ax[2].axis("off")
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    vmax = max(sy.max(), sp.max())
    for a, s, t in ((ax[3], sy, "log10 |F| target"), (ax[4], sp, "log10 |F| prediction")):
        a.imshow(s, cmap="viridis", vmin=0, vmax=vmax)
        a.set_title(t)
        a.axis("off")
    for a, (t, img) in zip(ax[5:-1], extra, strict=True):
        if img.ndim == 3 and img.shape[-1] in (1, 3):
            show_image(a, img, t)
        else:
            a.imshow(img, cmap="viridis", aspect="auto")
            a.set_title(t)
            a.axis("off")
    psnr_curve(ax[-1], history)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_image(img: np.ndarray, path: Path) -> None:
    """An (H, W, C) image in [0, 1] as a PNG (gray when C = 1)."""
    plt.imsave(path, img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)


def curve_panels(x: np.ndarray, target: np.ndarray, pred: np.ndarray,
                 history: list[dict[str, Any]], path: Path, title: str) -> None:
    """1-D summary: signal and prediction, error, |rfft| of both, PSNR curve; ``x``, ``target``
    and ``pred`` are (N,)."""
    fig, ax = plt.subplots(1, 4, figsize=(20, 4))
    ax[0].plot(x, target, lw=1, label="target")
    ax[0].plot(x, pred, lw=1, ls="--", label="prediction")
    ax[0].legend()
    ax[0].set_title("signal")
    ax[1].plot(x, pred - target, lw=0.8, color="C3")
    ax[1].set_title("error")
    ax[2].semilogy(np.abs(np.fft.rfft(target)) + 1e-12, lw=1, label="target")
    ax[2].semilogy(np.abs(np.fft.rfft(pred)) + 1e-12, lw=1, ls="--", label="prediction")
    ax[2].set_xlabel("rfft bin")
    ax[2].set_title("|F| (log)")
    ax[2].legend()
    psnr_curve(ax[3], history)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curve_plot(x: np.ndarray, target: np.ndarray, pred: np.ndarray, path: Path) -> None:
    """A 1-D prediction (N,) against its target as a PNG."""
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(x, target, lw=1, label="target")
    ax.plot(x, pred, lw=1, ls="--", label="prediction")
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
