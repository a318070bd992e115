"""SIREN / FINER with the norm after the sine (``model.norm_placement = post``) and the norm's γ
initialised to another value: BN with γ = 1/√2 (the output scale CN gives a sine's output, whose
per-point channel variance adds ≈ 0.5 to the per-channel one) and CN with γ = √2 (BN's scale).
Does the scale of the normalised sine explain why CN after the sine works and BN does not?

Setting of configs/sweeps/norm_placement.toml (quick tier): Kodak 01–03 at 96 px, 10 % held-out
pixels, 120 steps, lr 1e-3 × 0.1 at step 36. One JSON line per run.

    OMP_NUM_THREADS=1 python bench/norm_post_gamma.py     # ≈ 6 min on one core
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from inrlab.config import preset, set_fields
from inrlab.sweep.jobs import SubsetScores
from inrlab.train.trainer import Trainer, run


class InitGamma:
    """Trainer callback: set every norm's γ to ``gamma`` before the first step."""

    def __init__(self, gamma: float):
        self.gamma = gamma

    def on_step(self, trainer: Trainer, step: int) -> None:
        if step == 0:
            with torch.no_grad():
                for norm in trainer.model.norms:
                    norm.weight.fill_(self.gamma)

    def on_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        pass


def main() -> None:
    for arch in ("siren", "finer"):
        for image in ("kodim01", "kodim02", "kodim03"):
            for norm, gamma in (("batch", 1 / math.sqrt(2)), ("cross", math.sqrt(2))):
                cfg = preset(arch)
                set_fields(cfg, [("signal.name", f"kodak:{image}"), ("signal.size", 96),
                                 ("signal.heldout", 0.1), ("train.steps", 120),
                                 ("train.schedule", "step"), ("train.milestones", [36]),
                                 ("train.eval_every", 40), ("train.lr", 1e-3),
                                 ("model.norm", norm), ("model.norm_placement", "post")])
                res = run(cfg, None, progress=False, callbacks=[InitGamma(gamma), SubsetScores()])
                print(json.dumps({"arch": arch, "image": image, "norm": norm,
                                  "gamma": round(gamma, 3),
                                  "psnr_heldout": round(res.metrics["psnr_heldout"], 2),
                                  "psnr_train": round(res.metrics["psnr_train"], 2)}), flush=True)


if __name__ == "__main__":
    main()
