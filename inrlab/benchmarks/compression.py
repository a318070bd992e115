"""``inrlab bench compression``: rate–distortion of the latent codec on Kodak (and scikit-image
photos) against Pillow's JPEG and WebP on the same images and the published Kodak points.

Each (image, λ) point trains the codec, writes its ``.inrc`` file, decodes the file and scores
the 8-bit output: bpp = 8 × file bytes / pixels. JPEG / WebP: Pillow at qualities 1 … 95 of the
same pixels, interpolated at each codec point's bpp (linear in bpp; None outside the curve). The
results file is rewritten after every point; ``--resume`` keeps the points already in it.

Tiers: ``quick`` the centred 256×256 crop of each image, 1000 steps; ``full`` the whole image
(Kodak 768×512), 2000 steps. Published points (Kodak at 768×512, mean over its 24 images) from
the C3 repository's ``baselines/kodak.py`` (google-deepmind/c3_neural_compression).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .common import print_table, write_results

PUBLISHED = {  # bpp, PSNR (dB) on Kodak, from C3's baselines/kodak.py
    "JPEG (published)": [(0.221, 23.78), (0.508, 29.04)],
    "COIN": [(0.307, 26.41), (0.611, 28.41)],
    "COIN++": [(0.398, 27.03)],
    "COOL-CHIC": [(0.246, 29.22)],
    "C3": [(0.232, 30.59), (0.514, 34.37)],
}
SOURCE = "published Kodak points: C3 repository, baselines/kodak.py (google-deepmind/c3_neural_compression)"
TIERS = {"quick": {"crop": 256, "steps": 1000}, "full": {"crop": None, "steps": 2000}}
QUALITIES = [1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]
TUNED = ["kodak:kodim01"]  # the image the settings (widths, upsampling, lr) were chosen on
HELDOUT = ["kodak:kodim04", "kodak:kodim05", "kodak:kodim07", "astronaut", "coffee"]
LAMBDAS = [4e-3, 1.2e-3, 4e-4, 1.2e-4, 4e-5]
BPP_GRID = [0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """latent codec rate–distortion vs JPEG / WebP (Pillow) and published Kodak points"""
    p.add_argument("--tier", choices=list(TIERS), default="quick")
    p.add_argument("--images", nargs="+", default=HELDOUT, help="images scored (held out)")
    p.add_argument("--lambdas", type=float, nargs="+", default=LAMBDAS)
    p.add_argument("--steps", type=int, help="training steps (default: the tier's)")
    p.add_argument("--crop", type=int, help="crop side (default: the tier's)")
    p.add_argument("--jobs", type=int, default=1, help="points trained at once (processes)")
    p.add_argument("--resume", action="store_true", help="keep the points already in --out")
    p.add_argument("--files", default="bench/results/compression_files",
                   help="folder for the .inrc files")
    p.add_argument("--out", help="JSON (default bench/results/compression_<tier>.json)")
    p.add_argument("--plot", help="PNG of the R–D plot (default: --out with .png)")


def _point(image: str, lmbda: float, crop: int | None, steps: int, files: str) -> dict[str, Any]:
    import torch

    from ..codec.image import compress_image

    torch.set_num_threads(1)
    name = image.split(":")[-1]
    out = Path(files) / f"{name}-{crop or 'full'}-l{lmbda:g}.inrc"
    r = compress_image(image, out, lmbda, steps=steps, crop=crop)
    return {"image": image, **{k: r[k] for k in ("lambda", "steps", "crop", "shape", "bytes",
                                                  "bpp", "psnr", "ssim", "ms_ssim", "encode_s",
                                                  "decode_s", "macs_per_pixel", "spec", "file")}}


def interp(curve: list[tuple[float, float]], bpp: float) -> float | None:
    """The PSNR of a (bpp, PSNR) curve at ``bpp`` (linear; None outside its range)."""
    pts = sorted(curve)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not pts or not xs[0] <= bpp <= xs[-1]:
        return None
    return float(np.interp(bpp, xs, ys))


def baselines(image: str, crop: int | None) -> dict[str, list[tuple[float, float]]]:
    """Pillow JPEG and WebP (bpp, PSNR) points of the image's coded pixels."""
    from ..codec.image import load_image
    from ..codec.weights import pillow_curve

    a = load_image(image, crop)
    return {fmt: [(p["bpp"], p["psnr"]) for p in pillow_curve(a, fmt.upper(), QUALITIES)]
            for fmt in ("jpeg", "webp")}


def summary(points: list[dict[str, Any]], base: dict[str, dict[str, list]]) -> list[dict[str, Any]]:
    """At each bpp of ``BPP_GRID``: the mean over images of each curve interpolated there (only
    where every image's curve reaches that rate)."""
    images = list(dict.fromkeys(p["image"] for p in points))
    rows = []
    for b in BPP_GRID:
        row: dict[str, Any] = {"bpp": b}
        curves = {"INR codec": {im: [(p["bpp"], p["psnr"]) for p in points if p["image"] == im]
                                for im in images},
                  "JPEG": {im: base[im]["jpeg"] for im in images},
                  "WebP": {im: base[im]["webp"] for im in images}}
        for label, per in curves.items():
            vals = [interp(c, b) for c in per.values()]
            row[label] = None if any(v is None for v in vals) else float(np.mean(vals))
        rows.append(row)
    return rows


def plot(points: list[dict[str, Any]], base: dict[str, dict[str, list]], path: Path,
         title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    grid = np.linspace(0.05, 2.0, 200)
    images = list(dict.fromkeys(p["image"] for p in points))
    for i, (label, key) in enumerate((("INR codec (ours)", None), ("JPEG (Pillow, ours)", "jpeg"),
                                      ("WebP (Pillow, ours)", "webp"))):
        per = [[(p["bpp"], p["psnr"]) for p in points if p["image"] == im] if key is None
               else base[im][key] for im in images]
        vals = np.array([[interp(c, b) if interp(c, b) is not None else np.nan for b in grid]
                         for c in per])
        mean = vals.mean(0)
        ax.plot(grid, mean, color=f"C{i}", lw=2, label=f"{label}, mean of {len(images)}")
        if key is None:  # each image's own curve (the mean exists only where all overlap)
            for c in per:
                c = sorted(c)
                ax.plot([q[0] for q in c], [q[1] for q in c], color="C0", lw=0.8, alpha=0.6,
                        marker=".")
    for j, (name, pts) in enumerate(PUBLISHED.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^DP"[j], ls=":", color="k",
                alpha=0.45 + 0.1 * j, label=f"{name} (Kodak 768×512, published)")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_xlim(0.05, 1.6)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.text(0.01, 0.005, SOURCE, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    tier = TIERS[args.tier]
    crop = tier["crop"] if args.crop is None else (args.crop or None)
    steps = args.steps or tier["steps"]
    out = Path(args.out or f"bench/results/compression_{args.tier}.json")
    points: list[dict[str, Any]] = []
    if args.resume and out.exists():
        points = [p for p in json.loads(out.read_text())["rows"]
                  if p["crop"] == crop and p["steps"] == steps]
    todo = [(im, lm) for im in args.images for lm in args.lambdas
            if not any(p["image"] == im and math.isclose(p["lambda"], lm) for p in points)]
    base = {im: baselines(im, crop) for im in args.images}

    def save() -> None:
        write_results(out, "compression", points, {
            "tier": args.tier, "crop": crop, "steps": steps, "published": PUBLISHED,
            "published_source": SOURCE, "baselines": base, "summary": summary(points, base)})

    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_point, im, lm, crop, steps, args.files) for im, lm in todo]
        for f in futures:
            p = f.result()
            for fmt in ("jpeg", "webp"):
                p[f"{fmt}_psnr"] = interp(base[p["image"]][fmt], p["bpp"])
            points.append(p)
            save()
            print(f"  {p['image']} λ={p['lambda']:g}: {p['bpp']:.3f} bpp, {p['psnr']:.2f} dB "
                  f"(JPEG {p['jpeg_psnr'] or float('nan'):.2f}), {p['encode_s']:.0f} s "
                  f"[{time.time() - t0:.0f} s]", flush=True)
    points = [p for p in points if p["image"] in args.images]
    points.sort(key=lambda p: (args.images.index(p["image"]), p["bpp"]))
    if not points:
        print("no points")
        return 0
    print_table([{**p, "Δ JPEG": None if p.get("jpeg_psnr") is None else p["psnr"] - p["jpeg_psnr"]}
                 for p in points], ["image", "lambda", "bpp", "psnr", "ssim", "jpeg_psnr",
                                    "webp_psnr", "Δ JPEG", "encode_s", "macs_per_pixel"])
    print()
    rows = summary(points, base)
    print_table(rows, ["bpp", "INR codec", "JPEG", "WebP"])
    print("published (Kodak 768×512): " + "; ".join(
        f"{k} " + ", ".join(f"{b}→{q}" for b, q in v) for k, v in PUBLISHED.items()))
    save()
    plot(points, base, Path(args.plot or out.with_suffix(".png")),
         f"Latent codec, {args.tier} tier ({f'{crop}×{crop} crops' if crop else 'full images'}, "
         f"{steps} steps): {', '.join(args.images)}")
    return 0
