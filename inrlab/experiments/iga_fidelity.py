"""IGA fidelity: plain vs IGA with each eNTK row rule (``train.iga.kernel``) on the official
code's image setting (the fidelity issue): a Kodak image LANCZOS-resized, every pixel trained,
full-image PSNR, final and max over the evaluated steps, over seeds.

Spec keys: ``image`` (Kodak name), ``width``, ``height``, ``preset``, ``seeds``, ``kernels``
(``plain`` and ``train.iga.kernel`` values), ``lr_plain``, ``lr_iga``, and ``common`` (dotted
config overrides for every run, e.g. steps, group, end, eval_every).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ..config import SignalConfig, preset, set_field
from ..data import data_dir
from ..errors import InrlabError
from ..problems import Image
from ..train.trainer import run


def load_resized(name: str, width: int, height: int) -> Image:
    """Kodak image ``name`` resized with LANCZOS to width × height, no held-out pixels."""
    path = data_dir(required=True) / "kodak" / f"{name}.png"
    if not path.exists():
        raise InrlabError(f"Kodak image {path} not found: set INRLAB_DATA to the folder holding "
                          f"kodak/{name}.png")
    with PILImage.open(path) as im:
        arr = np.asarray(im.convert("RGB").resize((width, height), PILImage.LANCZOS), np.float32)
    return Image(arr / 255.0, heldout=0.0)


def run_fidelity(spec: dict[str, Any], out: Path, progress: bool = False) -> dict[str, Any]:
    """Train every (kernel, seed); write ``results.json`` (rows, mean ± std) and ``curves.png``.
    Finished runs in ``out`` are reused."""
    sig = load_resized(spec["image"], spec["width"], spec["height"])
    rows = []
    for kind in spec["kernels"]:
        for seed in spec["seeds"]:
            cfg = preset(spec.get("preset", "pe"))
            cfg.signal = SignalConfig(f"{spec['image']} LANCZOS {spec['width']}x{spec['height']}",
                                      heldout=0.0)
            set_field(cfg, "train.seed", seed)
            for key, val in spec.get("common", {}).items():
                set_field(cfg, key, val)
            if kind == "plain":
                set_field(cfg, "train.lr", spec["lr_plain"])
            else:
                set_field(cfg, "train.technique", "iga")
                set_field(cfg, "train.iga.kernel", kind)
                set_field(cfg, "train.lr", spec["lr_iga"])
            res = run(cfg, out / f"{kind}_s{seed}", problem=sig, resume=True, progress=progress)
            curve = [(h["step"], h["psnr"]) for h in res.history]
            rows.append({"kernel": kind, "seed": seed, "final": curve[-1][1],
                         "max": max(p for _, p in curve), "seconds": res.metrics.get("seconds"),
                         "curve": curve})
            print(f"  {kind} seed {seed}: final {rows[-1]['final']:.2f} dB, max "
                  f"{rows[-1]['max']:.2f} dB", flush=True)
    summary = {}
    for kind in spec["kernels"]:
        sel = [r for r in rows if r["kernel"] == kind]
        summary[kind] = {m: (statistics.mean(r[m] for r in sel),
                             statistics.stdev(r[m] for r in sel) if len(sel) > 1 else 0.0)
                         for m in ("final", "max")}
        print(f"{kind:>15}: final {summary[kind]['final'][0]:.2f} ± {summary[kind]['final'][1]:.2f}"
              f"  max {summary[kind]['max'][0]:.2f} ± {summary[kind]['max'][1]:.2f}  "
              f"({len(sel)} seeds)")
    result = {"spec": spec, "rows": rows, "summary": summary}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    _plot(rows, out / "curves.png")
    return result


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Full-image PSNR vs step, one colour per kernel, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    kinds = list(dict.fromkeys(r["kernel"] for r in rows))
    for i, kind in enumerate(kinds):
        for j, r in enumerate(x for x in rows if x["kernel"] == kind):
            steps, ps = zip(*r["curve"], strict=True)
            ax.plot(steps, ps, color=f"C{i}", alpha=0.8, label=kind if j == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("full-image PSNR (dB)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
