"""IGA paper, 1-D experiment 2 (Figs. 2–3): band errors Δ_k of plain vs IGA training.

Target y = Σ_k sin(2π k x) on ``samples`` points; Δ_k = |F[y]_k − F[f]_k| / |F[y]_k| at the target's
rfft bins (``inrlab.train.metrics.band_error_1d``), recorded every ``eval_every`` steps. IGA runs
are (p, end) pairs: groups of p consecutive samples, eigenvalues 0 … end−1 balanced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..config import preset, set_field  # noqa: E402
from ..problems import Function1D  # noqa: E402
from ..train.trainer import run  # noqa: E402


def run_sines(spec: dict[str, Any], out: Path, progress: bool = False) -> dict[str, Any]:
    """Train plain and every IGA (p, end) of ``spec`` for each arch; write curves, plots, table."""
    results: dict[str, Any] = {}
    samples, steps = int(spec["samples"]), int(spec["steps"])
    for arch, aspec in spec["archs"].items():
        sig = Function1D.sines(aspec["freqs"], samples=samples)
        runs = [("plain", {"train.technique": "mse"})]
        runs += [(f"IGA p={p} end={e}", {"train.technique": "iga", "train.iga.group": p,
                                         "train.iga.end": e}) for p, e in spec["iga"]]
        curves = {}
        for label, extra in runs:
            cfg = preset(aspec.get("preset", arch))
            cfg.signal = sig.config
            over = {**spec.get("common", {}), **aspec.get("overrides", {}), **extra,
                    "train.steps": steps, "train.eval_every": spec["eval_every"]}
            for k, v in over.items():
                set_field(cfg, k, v)
            name = label.replace(" ", "_").replace("=", "")
            res = run(cfg, out / f"{arch}-{name}", problem=sig, resume=True, progress=progress)
            curves[label] = {"step": [h["step"] for h in res.history],
                             "band_error": [h["band_error"] for h in res.history],
                             "seconds": res.metrics.get("seconds")}
            final = " ".join(f"{v:.3f}" for v in curves[label]["band_error"][-1])
            print(f"{arch} {label:18s} final Δ_k {final} ({curves[label]['seconds']:.0f} s)",
                  flush=True)
        results[arch] = {"freqs": aspec["freqs"], "curves": curves}
        plot_curves(arch, aspec["freqs"], curves, out / f"band_error_{arch}.png")
    (out / "results.json").write_text(json.dumps({"spec": spec, "results": results}, indent=1))
    text = markdown(results)
    (out / "table.md").write_text(text)
    print(text)
    return results


def plot_curves(arch: str, freqs: list[float], curves: dict[str, Any], path: Path) -> None:
    """One panel per target frequency: Δ_k against the step, one line per run."""
    fig, axes = plt.subplots(1, len(freqs), figsize=(3 * len(freqs), 3), sharey=True)
    for j, (ax, k) in enumerate(zip(axes, freqs, strict=True)):
        for label, c in curves.items():
            ax.plot(c["step"], [b[j] for b in c["band_error"]], label=label,
                    lw=2 if label == "plain" else 1, color="k" if label == "plain" else None)
        ax.set_title(f"{arch}: k = {k:g}")
        ax.set_xlabel("step")
        ax.set_ylim(0, 1.1)
    axes[0].set_ylabel("Δ_k")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    """Final Δ_k per run and frequency, one table per arch."""
    lines = []
    for arch, r in results.items():
        lines.append(f"\n{arch}: final Δ_k\n")
        lines.append("| run | " + " | ".join(f"k={k:g}" for k in r["freqs"]) + " | s |")
        lines.append("|---|" + "---|" * (len(r["freqs"]) + 1))
        for label, c in r["curves"].items():
            vals = " | ".join(f"{v:.3f}" for v in c["band_error"][-1])
            lines.append(f"| {label} | {vals} | {c['seconds']:.0f} |")
    return "\n".join(lines) + "\n"
