"""Rate–distortion of INR compression by normalization (normalization paper, Fig. 4): for each
Kodak image, norm and width, train an INR, compress it at several bit depths
(:func:`inrlab.compress.compress_run`) and score the decoded image; JPEG and WebP (Pillow) over a
quality range are the baselines, interpolated at each INR point's bpp ("matched bpp").

Spec keys: ``images``, ``size``, ``preset``, ``depth``, ``widths``, ``steps``, ``bits``,
``per_channel``, ``codec``, ``norms`` (table: norm → learning rate), ``qualities`` (JPEG/WebP),
``bpp_grid`` (the rates the table compares at).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..compress import compress_run, pillow_curve
from ..config import preset, set_field
from ..problems import load_problem
from ..train.trainer import run

LABELS = {"none": "plain", "batch": "BN", "layer": "LN", "global": "GN", "cross": "CN"}


def matched(curve: list[dict[str, float]], bpp: float, metric: str) -> float | None:
    """A baseline's ``metric`` at ``bpp`` by linear interpolation over its points (None outside
    the curve's bpp range)."""
    pts = sorted(curve, key=lambda p: p["bpp"])
    xs, ys = [p["bpp"] for p in pts], [p[metric] for p in pts]
    if not xs[0] <= bpp <= xs[-1]:
        return None
    return float(np.interp(bpp, xs, ys))


def run_rd(spec: dict[str, Any], out: Path, progress: bool = False) -> dict[str, Any]:
    """Train, compress and score every (image, norm, width, bits); write ``results.json``,
    ``rd.png`` and ``table.md``. Finished runs in ``out`` are reused."""
    points, baselines = [], {}
    for image in spec["images"]:
        for norm, lr in spec["norms"].items():
            for width in spec["widths"]:
                cfg = preset(spec.get("preset", "pe"))
                for key, val in {"signal.name": f"kodak:{image}", "signal.size": spec["size"],
                                 "signal.heldout": 0.0, "model.norm": norm, "model.width": width,
                                 "model.depth": spec["depth"], "train.lr": lr,
                                 "train.steps": spec["steps"], "train.eval_every": spec["steps"],
                                 "train.checkpoint_every": spec["steps"]}.items():
                    set_field(cfg, key, val)
                folder = out / "runs" / f"{image}_{norm}_w{width}"
                run(cfg, folder, resume=True, progress=progress)
                for bits in spec["bits"]:
                    r = compress_run(folder, bits, spec.get("per_channel", False),
                                     spec.get("codec", "lzma"))
                    points.append({"image": image, "norm": norm, "width": width, **r})
                    print(f"  {image} {LABELS[norm]} w{width} {bits} b: {r['bpp']:.3f} bpp, "
                          f"PSNR {r['psnr']:.2f}, SSIM {r['ssim']:.4f}", flush=True)
        sig = load_problem(cfg.signal)
        target = sig.to_image(sig.targets)
        baselines[image] = {fmt: pillow_curve(target, fmt.upper(), spec["qualities"])
                            for fmt in ("jpeg", "webp")}
    for p in points:
        for fmt, curve in baselines[p["image"]].items():
            p[f"{fmt}_psnr"] = matched(curve, p["bpp"], "psnr")
            p[f"{fmt}_ssim"] = matched(curve, p["bpp"], "ssim")
    result = {"spec": spec, "points": points, "baselines": baselines}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "table.md").write_text(table(points, spec, baselines))
    _plot(points, baselines, out / "rd.png")
    print(table(points, spec, baselines))
    return result


def frontier(points: list[dict[str, Any]], bpp: float, metric: str) -> float | None:
    """The best ``metric`` among ``points`` whose bpp is at most ``bpp`` (None if there is none):
    the operational rate–distortion curve of a family of compressed models."""
    vals = [p[metric] for p in points if p["bpp"] <= bpp]
    return max(vals) if vals else None


def table(points: list[dict[str, Any]], spec: dict[str, Any], baselines: dict[str, Any]) -> str:
    """Markdown: at each bpp of ``spec["bpp_grid"]``, each norm's best PSNR / SSIM within that
    rate (over widths and bit depths; mean over images) and JPEG / WebP interpolated there."""
    norms, images = list(spec["norms"]), spec["images"]
    cols = [LABELS[n] for n in norms] + ["JPEG", "WebP"]
    lines = ["| bpp ≤ | " + " | ".join(cols) + " | best INR |", "|---" * (len(cols) + 2) + "|"]
    for b in spec["bpp_grid"]:
        cells, best = [], {}
        for n in norms:
            per = [(frontier([p for p in points if p["norm"] == n and p["image"] == im], b, "psnr"),
                    frontier([p for p in points if p["norm"] == n and p["image"] == im], b, "ssim"))
                   for im in images]
            if any(v is None for v, _ in per):
                cells.append("—")
                continue
            best[LABELS[n]] = float(np.mean([v for v, _ in per]))
            cells.append(f"{best[LABELS[n]]:.2f} / {np.mean([s for _, s in per]):.3f}")
        for fmt in ("jpeg", "webp"):
            per = [(matched(baselines[im][fmt], b, "psnr"), matched(baselines[im][fmt], b, "ssim"))
                   for im in images]
            cells.append("—" if any(v is None for v, _ in per) else
                         f"{np.mean([v for v, _ in per]):.2f} / {np.mean([s for _, s in per]):.3f}")
        winner = max(best, key=best.get) if best else "—"
        lines.append(f"| {b:g} | " + " | ".join(cells) + f" | {winner} |")
    return "\n".join(lines) + "\n"


def _plot(points: list[dict[str, Any]], baselines: dict[str, Any], path: Path) -> None:
    """PSNR and SSIM vs bpp: one marker series per norm (all images), JPEG/WebP curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("psnr", "ssim"), strict=True):
        for i, (norm, label) in enumerate(LABELS.items()):
            sel = [p for p in points if p["norm"] == norm]
            if sel:
                ax.scatter([p["bpp"] for p in sel], [p[metric] for p in sel], color=f"C{i}",
                           label=label, s=18)
        for j, fmt in enumerate(("jpeg", "webp")):
            for k, (_, curves) in enumerate(baselines.items()):
                c = sorted(curves[fmt], key=lambda p: p["bpp"])
                ax.plot([p["bpp"] for p in c], [p[metric] for p in c], color="k",
                        ls=("-", "--")[j], lw=1, label=fmt.upper() if k == 0 else None)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(metric.upper())
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
