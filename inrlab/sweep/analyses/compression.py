"""Rate–distortion of INR compression by normalization (normalization paper, Fig. 4): the
``train_compress`` job's points against JPEG and WebP (Pillow) at matched bits per pixel."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import ANALYSES, Context, Result  # noqa: E402


def matched(curve: list[dict[str, float]], bpp: float, metric: str) -> float | None:
    """A baseline's ``metric`` at ``bpp`` by linear interpolation over its points (None outside
    the curve's bpp range)."""
    pts = sorted(curve, key=lambda p: p["bpp"])
    xs, ys = [p["bpp"] for p in pts], [p[metric] for p in pts]
    if not xs[0] <= bpp <= xs[-1]:
        return None
    return float(np.interp(bpp, xs, ys))


def frontier(points: list[dict[str, Any]], bpp: float, metric: str) -> float | None:
    """The best ``metric`` among ``points`` whose bpp is at most ``bpp`` (None if there is none):
    the operational rate–distortion curve of a family of compressed models."""
    vals = [p[metric] for p in points if p["bpp"] <= bpp]
    return max(vals) if vals else None


def baselines(row: dict[str, Any], qualities: list[int]) -> dict[str, list[dict[str, float]]]:
    """JPEG and WebP rate–distortion curves of the run's target image."""
    from ...codec.weights import pillow_curve
    from ...config import SignalConfig, from_dict
    from ...problems import load_problem

    sig = load_problem(from_dict(SignalConfig, row["config"]["signal"]))
    target = sig.to_image(sig.targets)
    return {fmt: pillow_curve(target, fmt.upper(), qualities) for fmt in ("jpeg", "webp")}


@ANALYSES.register("compression_rd")
def compression_rd(ctx: Context) -> Result:
    """At each bpp of ``bpp_grid``: each norm's best PSNR / SSIM within that rate (over widths and
    bit depths; mean over images) and JPEG / WebP interpolated there; the R–D plot."""
    qualities = ctx.params.get("qualities", [5, 10, 20, 30, 50, 70, 90, 95])
    points, base = [], {}
    for r in ctx.finished():
        image = r["axes"]["signal"]
        points += [{"image": image, "norm": r["axes"]["norm"], **p} for p in r["metrics"]["points"]]
        if image not in base:
            base[image] = baselines(r, qualities)
    if not points:
        return Result(notes=["no finished runs yet"])
    norms = list(dict.fromkeys(p["norm"] for p in points))
    rows = []
    for b in ctx.params.get("bpp_grid", [0.7, 1.0, 1.5, 2.0, 3.0]):
        row: dict[str, Any] = {"bpp ≤": b}
        for n in norms:
            per = [(frontier([p for p in points if p["norm"] == n and p["image"] == im], b, "psnr"),
                    frontier([p for p in points if p["norm"] == n and p["image"] == im], b, "ssim"))
                   for im in base]
            row[n] = None if any(v is None for v, _ in per) else \
                f"{np.mean([v for v, _ in per]):.2f} / {np.mean([s for _, s in per]):.3f}"
        for fmt in ("jpeg", "webp"):
            per = [(matched(base[im][fmt], b, "psnr"), matched(base[im][fmt], b, "ssim"))
                   for im in base]
            row[fmt.upper()] = None if any(v is None for v, _ in per) else \
                f"{np.mean([v for v, _ in per]):.2f} / {np.mean([s for _, s in per]):.3f}"
        scored = {n: float(row[n].split(" / ")[0]) for n in norms if row[n]}
        row["best INR"] = max(scored, key=scored.get) if scored else None
        rows.append(row)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("psnr", "ssim"), strict=True):
        for i, n in enumerate(norms):
            sel = [p for p in points if p["norm"] == n]
            ax.scatter([p["bpp"] for p in sel], [p[metric] for p in sel], color=f"C{i}", label=n,
                       s=18)
        for j, fmt in enumerate(("jpeg", "webp")):
            for k, curves in enumerate(base.values()):
                c = sorted(curves[fmt], key=lambda p: p["bpp"])
                ax.plot([p["bpp"] for p in c], [p[metric] for p in c], color="k",
                        ls=("-", "--")[j], lw=1, label=fmt.upper() if k == 0 else None)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(metric.upper())
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = ctx.figure("rd.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Result(tables=[("PSNR / SSIM at matched bpp (best over widths and bit depths, mean over "
                           "images)", pd.DataFrame(rows))], figures=[path],
                  notes=["Paper (Fig. 4): normalized INRs reach a better rate–distortion than the "
                         "plain one; no published table."])
