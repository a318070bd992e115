"""Normalization paper's spectrum claim under each kernel definition, at initialization.

For ReLU and PE MLPs (4 × 64, PE 10 frequencies) with none / batch / layer / global / cross norm,
on the ntk_norms quick-tier points (64-px Kodak, N ≈ 256 regular points, seed 0), print per
(init, placement, model, definition): log10 λ_max, log10 mean, log10 variance, and relative to the
mean log10 λ_max/mean, log10 var/mean², and κ₂/κ₁ (mean off-diagonal / mean diagonal entry).

Inits: ``torch`` (PyTorch's default, what inrlab builds) and ``he`` (Kaiming normal, fan-in, gain
√2, zero biases: variance-preserving for ReLU, the setting of mean-field NTK analyses).
Placements: ``pre`` (Linear → norm → ReLU, the paper's) and ``post`` (Linear → ReLU → norm).

    OMP_NUM_THREADS=1 python bench/ntk_norm_definitions.py > results.tsv   # ≈ 5 min, 1 core
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from inrlab.config import preset, set_fields
from inrlab.ntk.parts import definition_kernel
from inrlab.ntk.points import sample_points
from inrlab.ntk.spectrum import eigh, kernel_moments, summary
from inrlab.problems import load_problem

IMAGES = ("kodak:kodim01", "kodak:kodim02")
NORMS = ("none", "batch", "layer", "global", "cross")
DEFINITIONS = ("full", "hidden", "ntk_param")


def build(arch: str, norm: str, placement: str, init: str, image: str):
    cfg = preset(arch)
    set_fields(cfg, [("signal.name", image), ("signal.size", 64), ("model.width", 64),
                     ("model.depth", 4), ("model.norm", norm),
                     ("model.norm_placement", placement)]
               + ([("model.encoding.n_frequencies", 10)] if arch == "pe" else []))
    sig = load_problem(cfg.signal)
    torch.manual_seed(0)
    model = sig.build_model(cfg.model)
    if init == "he":
        with torch.no_grad():
            for lin in [*model.linears, model.head]:
                torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                lin.bias.zero_()
    idx, _ = sample_points(sig, 256, "regular", 0)
    return model, sig.points(idx)


def main() -> None:
    print("init\tplacement\tmodel\tdefinition\tlog10 λmax\tlog10 mean\tlog10 var\t"
          "log10 λmax/mean\tlog10 var/mean²\tκ2/κ1")
    for init in ("torch", "he"):
        for placement in ("pre", "post"):
            for arch in ("relu", "pe"):
                for norm in NORMS:
                    if norm == "none" and placement == "post":
                        continue
                    rows = {d: [] for d in DEFINITIONS}
                    for image in IMAGES:
                        model, x = build(arch, norm, placement, init, image)
                        for d in DEFINITIONS:
                            k = definition_kernel(model, x, d)
                            s, m = summary(eigh(k)), kernel_moments(k)
                            rows[d].append([np.log10(s["lambda_max"]), np.log10(s["mean"]),
                                            np.log10(s["variance"]),
                                            np.log10(s["lambda_max"] / s["mean"]),
                                            np.log10(s["variance"] / s["mean"] ** 2),
                                            m["offdiag_mean"] / m["diag_mean"]])
                    for d, r in rows.items():
                        vals = "\t".join(f"{v:.2f}" for v in np.mean(r, 0))
                        print(f"{init}\t{placement}\t{arch}-{norm}\t{d}\t{vals}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
