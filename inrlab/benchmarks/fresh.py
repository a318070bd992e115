"""``inrlab bench fresh``: seconds for FreSh to score 20 candidates × 10 initialisations on a
512×512 RGB image, against one default training run of the same preset, in one process.

* FreSh: one :func:`inrlab.fresh.select` call (SIREN ω₀ = 10, 20, … 200 by default), wall time
  including the target's spectrum, model construction, forwards and spectra.
* Training run: the median seconds of a full-batch training step (forward, loss, backward, Adam
  on the 90 % training pixels, timed after a warm-up step) × the preset's ``train.steps``, plus
  the run's periodic full-grid evaluations (one timed ``Trainer.evaluate`` × steps / eval_every).
  Timing a few steps and multiplying is exact up to noise because every full-batch step does the
  same work. ``ratio`` = FreSh / training run; also given against the paper's 15 000 steps.
* vmap vs loop: one candidate's 10 initialisations as one vmapped forward vs 10 separate forwards.
"""

from __future__ import annotations

import argparse
import time

import torch

from ..config import PRESETS, preset, set_field
from ..fresh.select import _build, batched_outputs, select
from ..problems import Image
from ..train.trainer import Trainer
from ..utils import resolve_device
from .common import print_table, sync, time_call, write_results

PAPER_STEPS = 15000


def add_arguments(p: argparse.ArgumentParser) -> None:
    """FreSh scoring time (20 candidates × 10 inits, 512×512) vs one default training run"""
    p.add_argument("--preset", default="siren", choices=list(PRESETS))
    p.add_argument("--field", default="model.activation.omega0_first")
    p.add_argument("--start", type=float, default=10.0, help="first candidate value")
    p.add_argument("--step", type=float, default=10.0, help="spacing of the candidates")
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--inits", type=int, default=10)
    p.add_argument("--bins", type=int, default=64)
    p.add_argument("--size", type=int, default=512, help="image side (astronaut, RGB)")
    p.add_argument("--timed-steps", type=int, default=3, help="training steps timed (median)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/fresh.json")


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    sig = Image("astronaut", size=args.size)
    cfg = preset(args.preset)
    cfg.train.device = str(dev)
    values = [args.start + i * args.step for i in range(args.candidates)]
    set_field(cfg, args.field, values[0])  # checks the field before the long part

    # one default training run: timed steps × the preset's step count + its evaluations
    cfg_default = preset(args.preset)
    cfg_default.train.device = str(dev)
    trainer = Trainer(cfg_default, sig, None, progress=False)
    x = sig.coords[sig.train_idx].to(dev)
    y = sig.targets[sig.train_idx].to(dev)
    model, opt = trainer.model, trainer.opt

    def step() -> None:
        loss = torch.mean((model(x) - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_step = time_call(step, dev, repeats=args.timed_steps, warmup=1)
    t_eval = time_call(trainer.evaluate, dev, repeats=1, warmup=0)
    steps, every = cfg_default.train.steps, cfg_default.train.eval_every
    t_train = t_step * steps + t_eval * (steps // every)
    print(f"  training step {t_step:.3f} s, evaluation {t_eval:.3f} s", flush=True)

    # vmap vs loop on one candidate
    models = _build(cfg, sig, args.inits, seed=0)
    t_vmap = time_call(lambda: batched_outputs(models, sig.coords.to(dev)), dev, 1, 0)

    @torch.no_grad()
    def loop() -> None:
        for m in models:
            torch.cat([m(c) for c in sig.coords.to(dev).split(2**16)])

    t_loop = time_call(loop, dev, 1, 0)
    print(f"  one candidate: vmap {t_vmap:.2f} s, loop {t_loop:.2f} s", flush=True)

    sync(dev)
    t0 = time.perf_counter()
    res = select(sig, cfg, args.field, values, inits=args.inits, bins=args.bins, device=str(dev))
    sync(dev)
    t_fresh = time.perf_counter() - t0
    rows = [
        {"what": f"FreSh {args.candidates} cand × {args.inits} inits", "seconds": t_fresh,
         "per_forward_s": t_fresh / (args.candidates * args.inits)},
        {"what": "training step (full batch)", "seconds": t_step},
        {"what": "evaluation (full grid + metrics)", "seconds": t_eval},
        {"what": f"training run ({steps} steps, {steps // every} evals)", "seconds": t_train},
        {"what": f"training run, paper ({PAPER_STEPS} steps)", "seconds": t_step * PAPER_STEPS},
        {"what": f"1 candidate × {args.inits} inits, vmapped", "seconds": t_vmap},
        {"what": f"1 candidate × {args.inits} inits, loop", "seconds": t_loop},
    ]
    ratio = t_fresh / t_train
    ratio_paper = t_fresh / (t_step * PAPER_STEPS)
    print(f"\nFreSh vs one training run, {args.preset}, {args.size}x{args.size} RGB, {dev}")
    print_table(rows, ["what", "seconds", "per_forward_s"])
    print(f"\nratio FreSh / training run ({steps} steps): {100 * ratio:.2f} % (goal ≤ 5 %); "
          f"vs {PAPER_STEPS} steps: {100 * ratio_paper:.2f} %; vmap speed-up "
          f"{t_loop / t_vmap:.2f}×; FreSh pick {args.field}={res.best:g}")
    write_results(args.out, "fresh", rows,
                  {"preset": args.preset, "size": args.size, "device": str(dev),
                   "candidates": args.candidates, "inits": args.inits, "bins": args.bins,
                   "train_steps": steps, "ratio": ratio, "ratio_paper_steps": ratio_paper,
                   "vmap_speedup": t_loop / t_vmap, "best": res.best,
                   "ranking": res.ranking()})
    return 0
