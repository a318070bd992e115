"""``inrlab bench step-time``: seconds per full-batch training step of every preset on a
256×256 RGB image, against a roofline made of the same matrix multiplications timed alone.

The roofline of one step is Σ over linear layers of the three GEMMs a step needs (forward
A·Wᵀ, input gradient G·W, weight gradient Gᵀ·A) at the layer's shapes. ``ratio`` = step /
roofline: how far the step is from "only the matmuls". ``top_op`` is the op with the most self
time in a profiled step (torch.profiler), i.e. what else limits the preset.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import PRESETS, preset
from ..models import build_model
from ..problems import Image
from ..utils import resolve_device, seed_everything
from .common import print_table, time_call, write_results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """seconds per training step of each preset vs a matmul roofline"""
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--size", type=int, default=256, help="image side (astronaut, RGB)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/step_time.json")


def roofline(model: torch.nn.Module, n: int, device: torch.device, repeats: int) -> float:
    """Seconds for the forward and two backward GEMMs of every linear layer at batch ``n``."""
    shapes = [(m.in_features, m.out_features) for m in model.modules()
              if isinstance(m, torch.nn.Linear)]
    mats = [(torch.randn(n, i, device=device), torch.randn(o, i, device=device),
             torch.randn(n, o, device=device)) for i, o in shapes]

    def gemms() -> None:
        for a, w, g in mats:
            a @ w.T
            g @ w
            g.T @ a

    return time_call(gemms, device, repeats)


def top_op(step: Any, device: torch.device) -> tuple[str, float]:
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    avgs = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in avgs) or 1
    return avgs[0].key, getattr(avgs[0], key) / total


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    sig = Image("astronaut", size=args.size, heldout=0.0)
    x, y = sig.coords.to(dev), sig.targets.to(dev)
    rows = []
    for name in args.presets:
        cfg = preset(name)
        seed_everything(0)
        model = build_model(cfg.model, 2, 3).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, eps=cfg.train.adam_eps)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            loss = torch.mean((model(x) - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t_step = time_call(step, dev, args.repeats)
        t_roof = roofline(model, x.shape[0], dev, args.repeats)
        op, share = top_op(step, dev)
        rows.append({"preset": name, "step_s": t_step, "roofline_s": t_roof,
                     "ratio": t_step / t_roof, "top_op": op, "top_op_share": share,
                     "params": sum(p.numel() for p in model.parameters())})
        print(f"  {name}: {t_step:.4f} s/step", flush=True)
    print(f"\nstep time, {args.size}x{args.size} RGB, full batch ({x.shape[0]} points), {dev}")
    print_table(rows, ["preset", "step_s", "roofline_s", "ratio", "top_op", "top_op_share",
                       "params"])
    write_results(args.out, "step-time", rows, {"size": args.size, "device": str(dev)})
    return 0
