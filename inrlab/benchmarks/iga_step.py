"""``inrlab bench iga``: seconds per full-batch training step, plain MSE vs IGA, for the image
presets at n = 384 groups (paper: 768×512 image, 32×32 patches), and the same IGA step with the
eNTK from the Jacobian route (what the reference code does).

``--scale s`` divides the image sides and the patch side by s (n stays 384), for machines where a
full-resolution step is slow. ``--kernel`` chooses IGA's eNTK rows (``train.iga.kernel``); patch
kernels need the output gradient at every pixel, not at 384 representatives, so they cost more.
``ratio`` = IGA step / plain step; the goal is ≤ 1.15 with the structured eNTK. ``kernel_s`` and
``eigh_s`` time the two extra pieces alone.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from ..config import preset
from ..errors import InrlabError
from ..models import build_model
from ..ntk import kernel, patch_kernel
from ..problems import Image
from ..techniques import IGA
from ..techniques.iga import IGA_KERNELS
from ..utils import resolve_device, seed_everything
from .common import print_table, time_call, write_results

IMAGE_PRESETS = ("relu", "pe", "siren", "finer")
END = {"relu": 25, "pe": 20, "siren": 20, "finer": 15}  # the paper's balanced eigenvalues


def add_arguments(p: argparse.ArgumentParser) -> None:
    """step time of IGA (structured / Jacobian eNTK) vs a plain step, 384 groups"""
    p.add_argument("--presets", nargs="+", default=list(IMAGE_PRESETS), choices=list(IMAGE_PRESETS))
    p.add_argument("--scale", type=int, default=1, help="divide 768×512 and the 32×32 patch by this")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kernel", default="representative", choices=list(IGA_KERNELS),
                   help="IGA's eNTK rows (train.iga.kernel)")
    p.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian-route IGA step")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/iga.json")


def bench_preset(name: str, sig: Image, dev: torch.device, args: argparse.Namespace) -> dict:
    """Timings of one preset: plain step, IGA step (structured / Jacobian eNTK), kernel, eigh."""
    batch = sig.full_batch().to(dev)
    x, y = batch.x, batch.y
    cfg = preset(name)
    cfg.train.iga.group, cfg.train.iga.end = args.side, END[name]
    cfg.train.iga.kernel = args.kernel
    seed_everything(0)
    model = build_model(cfg.model, 2, 3).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    techs = {}
    for method in ("structured", "jacobian"):
        train = copy.deepcopy(cfg.train)  # a technique keeps its config: one copy per route
        train.iga.ntk_method = method
        techs[method] = IGA(train)
        techs[method].setup(model, sig)

    counter = iter(range(1 << 30))  # a new step number every call, so IGA recomputes K and S

    def step(tech: IGA | None) -> None:
        pred = model(x)
        loss = torch.mean((pred - y) ** 2) if tech is None else \
            tech.loss(model, batch, pred, next(counter))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    row = {"preset": name, "kernel": args.kernel, "points": x.shape[0],
           "groups": techs["structured"].index.shape[0]}
    row["plain_s"] = time_call(lambda: step(None), dev, args.repeats)
    row["iga_s"] = time_call(lambda: step(techs["structured"]), dev, args.repeats)
    row["ratio"] = row["iga_s"] / row["plain_s"]
    index = techs["structured"].index.to(dev)
    if args.kernel == "representative":
        xr = x[index[:, 0]]
        row["kernel_s"] = time_call(lambda: kernel(model, xr, "structured"), dev, args.repeats)
        k = kernel(model, xr, "structured")
    else:
        xp, ones = x[index], torch.ones(index.shape, device=dev)
        row["kernel_s"] = time_call(lambda: patch_kernel(model, xp, ones, "structured",
                                                         torch.float32), dev, args.repeats)
        k = patch_kernel(model, xp, ones, "structured", torch.float32).double()
    row["eigh_s"] = time_call(lambda: torch.linalg.eigh(k), dev, args.repeats)
    if not args.no_jacobian:
        row["iga_jacobian_s"] = time_call(lambda: step(techs["jacobian"]), dev,
                                          max(1, args.repeats // 2), warmup=0)
        row["ratio_jacobian"] = row["iga_jacobian_s"] / row["plain_s"]
    return row


def main(args: argparse.Namespace) -> int:
    if args.scale < 1 or 32 % args.scale:
        raise InrlabError(f"--scale {args.scale} must divide the 32-pixel patch side: 1, 2, 4, 8, 16")
    dev = resolve_device(args.device)
    h, w, side = 512 // args.scale, 768 // args.scale, 32 // args.scale
    sig = Image(np.random.default_rng(0).random((h, w, 3)), heldout=0.0)
    args.side = side
    rows = []
    for name in args.presets:
        row = bench_preset(name, sig, dev, args)
        rows.append(row)
        print(f"  {name}: plain {row['plain_s']:.3f} s, IGA {row['iga_s']:.3f} s "
              f"({row['ratio']:.2f}×)", flush=True)
    print(f"\nIGA step time, {h}×{w} RGB full batch, {side}×{side} patches (n = 384), {dev}")
    print_table(rows, ["preset", "plain_s", "iga_s", "ratio", "kernel_s", "eigh_s",
                       "iga_jacobian_s", "ratio_jacobian"])
    write_results(args.out, "iga", rows, {"height": h, "width": w, "patch": side,
                                          "kernel": args.kernel, "device": str(dev)})
    return 0
