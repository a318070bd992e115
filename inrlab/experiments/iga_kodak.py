"""IGA paper, image table: {ReLU, PE, SIREN, FINER} × {plain, FR, BN, IGA} on Kodak images.

Metrics on training and on held-out pixels. PSNR is over the pixel subset. SSIM / MS-SSIM of a
subset are computed on the composite image that takes the model's prediction at the subset's
pixels and the target elsewhere (so only that subset's errors count). Reported values are those
of the final step (the paper reports the best training PSNR over iterations).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import preset, set_field
from ..data import data_dir
from ..errors import InrlabError
from ..problems import Image
from ..train.metrics import ms_ssim, psnr, ssim
from ..train.trainer import run

# what each column of the table changes on top of the architecture's settings
TECHNIQUE_BASE = {"plain": {"train.technique": "mse"}, "fr": {"train.technique": "fr"},
                  "bn": {"model.norm": "batch"}, "iga": {"train.technique": "iga"}}
METRICS = ("psnr", "ssim", "ms_ssim")


def subset_scores(sig: Image, pred: np.ndarray) -> dict[str, float | None]:
    """PSNR, SSIM, MS-SSIM on the training and on the held-out pixels (see module doc)."""
    p = sig.to_image(pred).reshape(sig.n, -1)
    y = sig.to_image(sig.targets).reshape(sig.n, -1)
    out: dict[str, float | None] = {}
    for name, idx in (("train", sig.train_idx.numpy()), ("heldout", sig.heldout_idx.numpy())):
        comp = y.copy()
        comp[idx] = p[idx]
        img, ref = comp.reshape(*sig.grid_shape, -1), y.reshape(*sig.grid_shape, -1)
        out[f"psnr_{name}"] = psnr(p[idx], y[idx], 1.0)
        out[f"ssim_{name}"] = ssim(img, ref)
        out[f"ms_ssim_{name}"] = ms_ssim(img, ref)
    return out


def run_kodak(spec: dict[str, Any], out: Path, progress: bool = False) -> dict[str, Any]:
    """Train every (image, arch, technique) of ``spec`` into ``out``; return rows and the mean
    table. Finished runs found in ``out`` are reused (the command is resumable)."""
    root = data_dir(required=True) / "kodak"
    rows = []
    for image in spec["images"]:
        path = root / f"{image}.png"
        if not path.exists():
            raise InrlabError(f"Kodak image {path} not found: set INRLAB_DATA to the folder holding "
                              f"kodak/{image}.png")
        sig = Image(str(path), size=spec.get("size"), heldout=spec.get("heldout", 0.1))
        for arch in spec["archs"]:
            for tech in spec["techniques"]:
                cfg = preset(arch)
                cfg.signal = sig.config
                overrides = {**spec.get("common", {}), **TECHNIQUE_BASE[tech],
                             **spec.get("runs", {}).get(arch, {}).get("all", {}),
                             **spec.get("runs", {}).get(arch, {}).get(tech, {})}
                for k, v in overrides.items():
                    set_field(cfg, k, v)
                res = run(cfg, out / f"{image}-{arch}-{tech}", problem=sig, resume=True,
                          progress=progress)
                scores = subset_scores(sig, res.predict().numpy())
                row = {"image": image, "arch": arch, "technique": tech,
                       "seconds": res.metrics.get("seconds"), **scores}
                rows.append(row)
                print(f"{image} {arch:5s} {tech:5s} PSNR train {scores['psnr_train']:.2f} "
                      f"held-out {scores['psnr_heldout']:.2f} ({row['seconds']:.0f} s)", flush=True)
    table = mean_table(rows)
    (out / "results.json").write_text(json.dumps({"spec": spec, "rows": rows, "mean": table},
                                                 indent=1))
    (out / "table.md").write_text(markdown_table(table, spec))
    print(markdown_table(table, spec))
    return {"rows": rows, "mean": table}


def mean_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{arch: {technique: {metric_subset: mean over images}}}."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        cell = table.setdefault(r["arch"], {}).setdefault(r["technique"], {})
        for k, v in r.items():
            if k.startswith(METRICS) and v is not None:
                cell.setdefault(k, []).append(v)  # type: ignore[arg-type]
    return {a: {t: {k: float(np.mean(v)) for k, v in c.items()} for t, c in ts.items()}
            for a, ts in table.items()}


def markdown_table(table: dict[str, Any], spec: dict[str, Any]) -> str:
    """One markdown table: rows arch, columns technique, cells 'train / held-out' per metric."""
    techs = spec["techniques"]
    lines = []
    for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.3f}"), ("ms_ssim", "{:.3f}")):
        lines.append(f"\n{metric.upper().replace('_', '-')} (train / held-out)\n")
        lines.append("| arch | " + " | ".join(techs) + " |")
        lines.append("|---|" + "---|" * len(techs))
        for arch, cells in table.items():
            vals = []
            for t in techs:
                c = cells.get(t, {})
                a, b = c.get(f"{metric}_train"), c.get(f"{metric}_heldout")
                vals.append("n/a" if a is None else f"{fmt.format(a)} / {fmt.format(b)}")
            lines.append(f"| {arch} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
