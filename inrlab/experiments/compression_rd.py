"""Rate–distortion of INR compression by normalization (normalization paper, Fig. 4): for each
Kodak image, norm and width, train an INR, compress it at several bit depths
(:func:`inrlab.compress.compress_run`) and score the decoded image; JPEG and WebP (Pillow) over a
quality range are the baselines, interpolated at each INR point's bpp ("matched bpp").

Spec keys: ``images``, ``size``, ``preset``, ``depth``, ``widths``, ``steps``, ``bits``,
``per_channel``, ``codec``, ``norms`` (table: norm → learning rate), ``qualities``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..compress import compress_run, pillow_curve
from ..config import preset, set_field
from ..signals import load_signal
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
        sig = load_signal(cfg.signal)
        target = sig.to_image(sig.targets)
        baselines[image] = {fmt: pillow_curve(target, fmt.upper(), spec["qualities"])
                            for fmt in ("jpeg", "webp")}
    for p in points:
        for fmt, curve in baselines[p["image"]].items():
            p[f"{fmt}_psnr"] = matched(curve, p["bpp"], "psnr")
            p[f"{fmt}_ssim"] = matched(curve, p["bpp"], "ssim")
    result = {"spec": spec, "points": points, "baselines": baselines}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "table.md").write_text(table(points, spec))
    _plot(points, baselines, out / "rd.png")
    print(table(points, spec))
    return result


def table(points: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """Markdown: per (width, bits) and norm, bpp / PSNR / SSIM averaged over images, with JPEG and
    WebP at the same bpp; the last row counts each norm's wins in PSNR over the (width, bits)."""
    norms = list(spec["norms"])
    lines = ["| width, bits | " + " | ".join(LABELS[n] for n in norms) + " |",
             "|---" * (len(norms) + 1) + "|"]
    wins = dict.fromkeys(norms, 0)
    for width in spec["widths"]:
        for bits in spec["bits"]:
            cells, mean_psnr = [], {}
            for n in norms:
                sel = [p for p in points if p["norm"] == n and p["width"] == width
                       and p["bits"] == bits]
                bpp, ps = np.mean([p["bpp"] for p in sel]), np.mean([p["psnr"] for p in sel])
                ss = np.mean([p["ssim"] for p in sel])
                jp = [p["jpeg_psnr"] for p in sel if p["jpeg_psnr"] is not None]
                wp = [p["webp_psnr"] for p in sel if p["webp_psnr"] is not None]
                ref = (f"; JPEG {np.mean(jp):.2f}" if len(jp) == len(sel) else "; JPEG n/a") + \
                      (f", WebP {np.mean(wp):.2f}" if len(wp) == len(sel) else ", WebP n/a")
                cells.append(f"{bpp:.2f} bpp: {ps:.2f} dB / {ss:.3f}{ref}")
                mean_psnr[n] = ps
            wins[max(mean_psnr, key=mean_psnr.get)] += 1
            lines.append(f"| {width}, {bits} | " + " | ".join(cells) + " |")
    lines.append("| PSNR wins | " + " | ".join(str(wins[n]) for n in norms) + " |")
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
