"""Reproduction driver: eNTK spectra of several models on several images, at initialization,
during and after training, plus the reconstruction quality they reach at equal steps.

    python -m inrlab.ntk.repro configs/ntk_multigrid_quick.toml [--out DIR]

The TOML file holds ``title``, ``images`` (embedded names or paths; ``@kodak/kodim01.png`` is
relative to the benchmark data folder), ``size``, ``points``, ``sampling``, ``steps``,
``spectra_at`` (steps, 0 = initialization), ``references`` (models the λ_min orders of magnitude
are measured against) and one ``[models.NAME]`` table per model: ``preset``, optional ``no_grid``
(also the kernel without the grid-table term) and a ``[models.NAME.set]`` table of dotted config
fields. Writes ``results.json``, ``summary.md`` and per-image plots into the output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import load_toml, preset, set_field
from ..data import data_dir
from ..errors import InrlabError
from ..problems import Image, Signal
from ..train.trainer import Trainer
from ..utils import write_json
from .compare import model_spectrum
from .kernel import float_copy
from .plots import eigenvalue_histograms, sorted_eigenvalue_curves
from .points import sample_points

KEYS = {"title", "images", "size", "points", "sampling", "steps", "spectra_at", "references",
        "seed", "models"}
STATS = ("lambda_max", "lambda_min", "mean", "variance", "condition")


class SpectrumRecorder:
    """Trainer diagnostics hook: the eNTK spectrum at the steps in ``at`` (and without the grid
    term when ``no_grid``)."""

    def __init__(self, x: torch.Tensor, grid_shape: tuple[int, ...] | None, at: list[int],
                 no_grid: bool):
        self.x, self.grid_shape, self.at, self.no_grid = x, grid_shape, set(at), no_grid
        self.spectra: dict[str, dict[str, Any]] = {}

    def due(self, step: int) -> bool:
        return step in self.at

    def record(self, model: nn.Module, step: int) -> None:
        self.spectra[f"step {step}"] = model_spectrum(model, self.x, self.grid_shape)
        if self.no_grid:
            frozen = float_copy(model)
            frozen.encoding.table.requires_grad_(False)
            self.spectra[f"step {step} no grid"] = model_spectrum(frozen, self.x, self.grid_shape)

    def finish(self) -> None:
        pass


def load_image(name: str, size: int) -> Image:
    if name.startswith("@"):
        name = str(data_dir(required=True) / name[1:])
    return Image(name, size=size)


def run_config(path: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Run the reproduction described by TOML ``path``; returns and writes the results."""
    cfg = load_toml(path)
    unknown = set(cfg) - KEYS
    if unknown:
        raise InrlabError(f"unknown keys {sorted(unknown)} in {path}: valid keys are {sorted(KEYS)}")
    if not cfg.get("models") or not cfg.get("images"):
        raise InrlabError(f"{path} needs 'images' and at least one [models.NAME] table")
    out_p = Path(out or Path("runs") / "repro" / Path(path).stem)
    out_p.mkdir(parents=True, exist_ok=True)
    steps, at = int(cfg.get("steps", 300)), [int(s) for s in cfg.get("spectra_at", [0])]
    results: dict[str, Any] = {"config": cfg, "images": {}}
    for image in cfg["images"]:
        sig = load_image(image, int(cfg.get("size", 64)))
        idx, shape = sample_points(sig, int(cfg.get("points", 256)), cfg.get("sampling", "regular"),
                                   int(cfg.get("seed", 0)))
        per_model = {name: _one_model(name, spec, sig, sig.coords[idx], shape, steps, at)
                     for name, spec in cfg["models"].items()}
        results["images"][sig.name] = per_model
        _plots(per_model, at, out_p / sig.name, f"{sig.name}, {len(idx)} points")
        print(f"done {sig.name}", flush=True)
    results["summary"] = summarize(results["images"], at, cfg.get("references", []))
    write_json(out_p / "results.json", results)
    table = markdown(results["summary"], cfg.get("title", Path(path).stem), steps)
    (out_p / "summary.md").write_text(table)
    print(table)
    return results


def _one_model(name: str, spec: dict[str, Any], sig: Signal, x: torch.Tensor,
               shape: tuple[int, ...] | None, steps: int, at: list[int]) -> dict[str, Any]:
    rc = preset(spec.get("preset", "relu"))
    rc.signal = sig.config
    for key, value in spec.get("set", {}).items():
        set_field(rc, key, value)
    rc.train.steps = steps
    rc.train.eval_every = steps
    trainer = Trainer(rc, sig, None, progress=False)
    rec = SpectrumRecorder(x, shape, at, bool(spec.get("no_grid", False)))
    trainer.diagnostics = rec
    res = trainer.train()
    return {"spectra": rec.spectra, "psnr": res.metrics.get("psnr"),
            "ms_ssim": res.metrics.get("ms_ssim"), "seconds": res.metrics.get("seconds")}


def _plots(per_model: dict[str, Any], at: list[int], folder: Path, title: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for step in (at[0], at[-1]):
        curves = {f"{m} {k.replace(f'step {step}', '').strip()}".strip(): v["eigenvalues"]
                  for m, r in per_model.items() for k, v in r["spectra"].items()
                  if k == f"step {step}" or k == f"step {step} no grid"}
        sorted_eigenvalue_curves(curves, folder / f"sorted_step{step}.png", f"{title}, step {step}")
        eigenvalue_histograms(curves, folder / f"histogram_step{step}.png", f"{title}, step {step}")


def _log10(v: float | np.ndarray, floor: float) -> Any:
    """log10 of eigenvalue statistics, clipped at the rounding floor N·ε·λ_max (below it a value
    is not resolved: reported as the floor)."""
    return np.log10(np.maximum(v, floor))


def summarize(images: dict[str, Any], at: list[int], references: list[str]) -> dict[str, Any]:
    """Per model and spectrum: statistics averaged over images (λ's geometrically, as mean
    log10, clipped at the rounding floor), mean log10 λ (the histogram's centre), how many images
    have a numerically singular kernel, λ_min orders of magnitude above each reference model,
    and the final PSNR / MS-SSIM."""
    models = next(iter(images.values())).keys()
    out: dict[str, Any] = {}
    for m in models:
        stages: dict[str, Any] = {}
        for key in images[next(iter(images))][m]["spectra"]:
            rows = [images[i][m]["spectra"][key] for i in images]
            st = {f"log10_{s}": float(np.mean([_log10(r[s], r["floor"]) for r in rows]))
                  for s in STATS}
            st["mean_log10_lambda"] = float(np.mean(
                [np.mean(_log10(np.asarray(r["eigenvalues"]), r["floor"])) for r in rows]))
            st["singular_images"] = sum(bool(r["singular"]) for r in rows)
            for ref in references:
                ref_key = key.replace(" no grid", "")
                if ref in images[next(iter(images))] and ref != m:
                    mine = [images[i][m]["spectra"][key] for i in images]
                    theirs = [images[i][ref]["spectra"][ref_key] for i in images]
                    st[f"orders_lambda_min_vs_{ref}"] = float(np.mean(
                        [_log10(a["lambda_min"], a["floor"]) - _log10(b["lambda_min"], b["floor"])
                         for a, b in zip(mine, theirs, strict=True)]))
            stages[key] = st
        out[m] = {"spectra": stages,
                  "psnr": float(np.mean([images[i][m]["psnr"] for i in images])),
                  "ms_ssim": _mean_or_none([images[i][m]["ms_ssim"] for i in images])}
    return out


def _mean_or_none(v: list[float | None]) -> float | None:
    vals = [x for x in v if x is not None]
    return float(np.mean(vals)) if vals else None


def markdown(summary: dict[str, Any], title: str, steps: int) -> str:
    """The summary as markdown tables: one per spectrum stage, plus final quality."""
    lines = [f"### {title}", ""]
    stages = sorted({k for r in summary.values() for k in r["spectra"]},
                    key=lambda k: (int(k.split()[1]), k))
    for stage in stages:
        refs = sorted({k for r in summary.values() for k in r["spectra"].get(stage, {})
                       if k.startswith("orders")})
        head = ["model", "log10 λ_max", "log10 λ_min", "log10 mean", "log10 var", "mean log10 λ",
                "log10 cond", "singular"] + [r.replace("orders_lambda_min_vs_", "λ_min orders vs ")
                                             for r in refs]
        lines += [f"**{stage}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, r in summary.items():
            st = r["spectra"].get(stage)
            if st is None:
                continue
            vals = [st["log10_lambda_max"], st["log10_lambda_min"], st["log10_mean"],
                    st["log10_variance"], st["mean_log10_lambda"], st["log10_condition"]]
            cells = [f"{v:.2f}" for v in vals] + [str(st["singular_images"])]
            cells += [f"{st[k]:.2f}" if k in st else "" for k in refs]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("(λ statistics are means of log10 over images, clipped at the rounding floor "
                     "N·ε·λ_max; 'singular': images whose λ_min is at that floor.)")
        lines.append("")
    lines += [f"**after {steps} steps**", "", "| model | PSNR (dB) | MS-SSIM |", "|---|---|---|"]
    for m, r in summary.items():
        ms = "n/a" if r["ms_ssim"] is None else f"{r['ms_ssim']:.3f}"
        lines.append(f"| {m} | {r['psnr']:.2f} | {ms} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inrlab.ntk.repro", description=__doc__.split("\n")[0])
    p.add_argument("config", help="TOML reproduction file (configs/ntk_*.toml)")
    p.add_argument("--out", help="output folder (default runs/repro/CONFIG)")
    args = p.parse_args(argv)
    try:
        run_config(args.config, args.out)
    except InrlabError as e:
        print(f"inrlab: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
