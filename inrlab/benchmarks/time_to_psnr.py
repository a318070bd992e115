"""``inrlab bench time-to-psnr``: training wall time until a run reaches a target PSNR.

Cases (``--cases``):

* ``demo``: what ``make demo`` runs (preset ``hash``, astronaut 512², 10 % of pixels held out),
  target 30 dB held-out PSNR;
* ``siren``: preset ``siren`` on astronaut 256², all pixels trained, target 30 dB on the full grid.

The run is the ordinary trainer, evaluated every ``--eval-every`` steps; it stops at the first
evaluation that reaches the target. ``train_s`` is the wall time of training alone (everything
from the start of the loop, including one-time work such as kernel compilation and the grid's
sparse matrices, minus the evaluations); ``eval_s`` the evaluations. ``--set`` overrides config
fields (``train.lr=2e-2 train.schedule=cosine``), ``--signal`` swaps the image (``kodak:kodim01``)
so that a faster setting can be checked on more than one picture.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from ..config import preset, set_fields
from ..errors import InrlabError
from ..train import trainer as trainer_mod
from ..utils import resolve_device
from .common import print_table, write_results

CASES: dict[str, dict[str, Any]] = {
    "demo": {"preset": "hash", "signal": "astronaut", "size": None, "heldout": None,
             "metric": "psnr_heldout", "target": 30.0, "eval_every": 5, "max_steps": 600},
    "siren": {"preset": "siren", "signal": "astronaut", "size": 256, "heldout": 0.0,
              "metric": "psnr", "target": 30.0, "eval_every": 25, "max_steps": 5000},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """training wall time until held-out/full-grid PSNR reaches a target (demo, SIREN)"""
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--signal", default=None, help="image instead of the case's (kodak:kodim01)")
    p.add_argument("--target", type=float, default=None, help="PSNR target in dB (case default)")
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations")
    p.add_argument("--max-steps", type=int, default=None, help="give up after this many steps")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="config overrides, e.g. train.lr=2e-2 train.schedule=cosine")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/time_to_psnr.json")


class _Reached(Exception):
    """Raised by the timed trainer's evaluation once the target is met (stops the loop)."""


class TimedTrainer(trainer_mod.Trainer):
    """A Trainer that times its evaluations apart from training and stops at a PSNR target."""

    def __init__(self, *args: Any, metric: str, target: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.metric, self.target = metric, target
        self.eval_s = 0.0
        self.t0 = 0.0
        self.curve: list[tuple[int, float, float]] = []  # (step, train seconds, PSNR)

    def train(self) -> trainer_mod.FitResult:
        self.t0 = time.perf_counter()
        return super().train()

    def evaluate(self, structural: bool = False) -> dict[str, Any]:
        t = time.perf_counter()
        train_s = t - self.t0 - self.eval_s
        m = super().evaluate(structural)
        self.eval_s += time.perf_counter() - t
        if not structural:
            value = m[self.metric]
            self.curve.append((self.step, train_s, value))
            if value is not None and value >= self.target:
                raise _Reached
        return m


def run_case(name: str, args: argparse.Namespace, device: str) -> dict[str, Any]:
    """One time-to-PSNR measurement; returns its table row."""
    case = CASES[name]
    cfg = preset(case["preset"])
    cfg.signal.name = args.signal or case["signal"]
    cfg.signal.size, cfg.signal.heldout = case["size"], case["heldout"]
    cfg.train.steps = args.max_steps or case["max_steps"]
    cfg.train.eval_every = args.eval_every or case["eval_every"]
    cfg.train.checkpoint_every = cfg.train.steps + 1
    cfg.train.device = device
    bad = [item for item in args.set if "=" not in item]
    if bad:
        raise InrlabError(f"--set expects FIELD=VALUE, got {bad[0]!r}")
    set_fields(cfg, [item.split("=", 1) for item in args.set])  # kinds first
    target = args.target if args.target is not None else case["target"]
    tr = TimedTrainer(cfg, progress=False, metric=case["metric"], target=target)
    try:
        tr.train()
        reached = False
    except _Reached:
        reached = True
    step, train_s, value = tr.curve[-1] if tr.curve else (tr.step, 0.0, float("nan"))
    return {"case": name, "signal": cfg.signal.name, "preset": case["preset"],
            "overrides": " ".join(args.set), "metric": case["metric"], "target_db": target,
            "reached": reached, "steps": step, "train_s": train_s, "eval_s": tr.eval_s,
            "psnr_db": value, "s_per_step": train_s / max(step, 1),
            "curve": [list(c) for c in tr.curve]}


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    dev = str(resolve_device(args.device))
    rows = []
    for name in args.cases:
        row = run_case(name, args, dev)
        rows.append(row)
        print(f"  {name}: {row['train_s']:.1f} s, {row['steps']} steps, "
              f"{row['metric']} {row['psnr_db']:.2f} dB (reached: {row['reached']})", flush=True)
    print(f"\ntime to PSNR, {dev}, {torch.get_num_threads()} threads")
    print_table(rows, ["case", "signal", "overrides", "target_db", "reached", "steps", "train_s",
                       "s_per_step", "psnr_db", "eval_s"])
    write_results(args.out, "time-to-psnr", rows, {"device": dev})
    return 0
