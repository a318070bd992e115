"""``inrlab bench step-time``: seconds per full-batch training step of every preset on a
256×256 RGB image (or N = size² random 3-D points), against a roofline made of the same matrix
multiplications timed alone.

The roofline of one step is Σ over linear layers of the three GEMMs a step needs (forward
A·Wᵀ, input gradient G·W, weight gradient Gᵀ·A) at the layer's shapes. ``ratio`` = step /
roofline: how far the step is from "only the matmuls", the median over repeats of step and
roofline timed back to back (robust to the load of a shared machine). ``top_op`` is the op with
the most self time in a profiled step (torch.profiler), i.e. what else limits the preset.
``--kernels eager auto`` times the reference paths and the fast ones in one process; ``--fresh``
draws new points every step (mini-batch training, where nothing derived from the coordinates is
reused); ``--breakdown`` times a grid step's parts alone against the same roofline.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import PRESETS, preset
from ..models import build_model, kernels
from ..models.encodings import Grid, _as_elements, _element_index
from ..problems import Image
from ..train.optim import build_adam
from ..utils import resolve_device, seed_everything
from .common import print_table, time_ratio, write_results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """seconds per training step of each preset vs a matmul roofline"""
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--size", type=int, default=256,
                   help="side: size² points (astronaut pixels in 2-D, random points in 3-D)")
    p.add_argument("--dim", type=int, default=2, choices=(2, 3), help="coordinate dimension")
    p.add_argument("--kernels", nargs="+", default=["auto"], choices=kernels.BACKENDS,
                   help="kernel backends to time; eager = the reference paths (eager activations, "
                   "grid gather, looped Adam): 'eager auto' gives before/after in one run")
    p.add_argument("--fresh", action="store_true",
                   help="new points every step (mini-batch training: size² pixels drawn with "
                   "replacement in 2-D, new uniform points in 3-D), so nothing derived from the "
                   "coordinates can be reused between steps")
    p.add_argument("--finest", type=int, default=None, metavar="R",
                   help="grid presets: finest resolution R instead of the preset's (e.g. 128 for "
                   "a dense 3-D grid)")
    p.add_argument("--breakdown", action="store_true",
                   help="grid presets: also time the step's parts alone, each against the "
                   "roofline: encoding forward + table gradient, MLP forward + backward (on "
                   "fixed features), the Adam step, one copy of the table, a plain gather of "
                   "the step's corner rows (index_select: the random-access floor)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", type=int, default=0, metavar="K",
                   help="print the K ops with the most self time of each step (torch.profiler)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/step_time.json")


def roofline_fn(model: torch.nn.Module, n: int, device: torch.device) -> Callable[[], None]:
    """The forward and two backward GEMMs of every linear layer at batch ``n``, as one call."""
    shapes = [(m.in_features, m.out_features) for m in model.modules()
              if isinstance(m, torch.nn.Linear)]
    mats = [(torch.randn(n, i, device=device), torch.randn(o, i, device=device),
             torch.randn(n, o, device=device)) for i, o in shapes]

    def gemms() -> None:
        for a, w, g in mats:
            a @ w.T
            g @ w
            g.T @ a

    return gemms


def top_ops(step: Any, device: torch.device, k: int = 1) -> list[tuple[str, float]]:
    """The ``k`` ops with the most self time in one profiled ``step()`` and their shares."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    avgs = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in avgs) or 1
    return [(e.key, getattr(e, key) / total) for e in avgs[:k]]


def _field(x: torch.Tensor) -> torch.Tensor:
    """The smooth RGB field (N, 3) the 3-D benchmark fits at points ``x`` (N, 3)."""
    return torch.stack([torch.sin(3 * x[:, 0] + x[:, 1]), torch.cos(2 * x[:, 1] * x[:, 2]),
                        torch.sin(4 * x[:, 2] - x[:, 0])], dim=1) * 0.5 + 0.5


def _points(size: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (N, dim) and RGB targets (N, 3), N = size²: the astronaut pixel grid in 2-D,
    seeded uniform points with a smooth colour field in 3-D."""
    if dim == 2:
        sig = Image("astronaut", size=size, heldout=0.0)
        return sig.coords.to(device), sig.targets.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(size * size, 3, generator=g) * 2 - 1
    return x.to(device), _field(x).to(device)


def batches(x: torch.Tensor, y: torch.Tensor, dim: int,
            fresh: bool) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A function returning each step's (coordinates, targets): always ``x, y`` (full batch), or
    with ``fresh`` new tensors every call: N seeded random rows of (x, y) in 2-D (with
    replacement), N new uniform points and their field values in 3-D."""
    if not fresh:
        return lambda: (x, y)
    g = torch.Generator().manual_seed(1)
    n = x.shape[0]

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        if dim == 2:
            i = torch.randint(n, (n,), generator=g).to(x.device)
            return x[i], y[i]
        p = (torch.rand(n, 3, generator=g) * 2 - 1).to(x.device)
        return p, _field(p)

    return draw


def breakdown(model: torch.nn.Module, opt: torch.optim.Optimizer, draw: Callable,
              roof: Callable[[], None], dev: torch.device, repeats: int) -> dict[str, float]:
    """Seconds of the parts of a grid model's training step, each timed alone back to back with
    the roofline (``<part>_s`` and ``<part>_ratio``): ``encode`` (the encoding's forward and its
    table gradient, coordinates from ``draw``), ``mlp`` (the layers' forward and backward on
    fixed features, MSE included), ``adam`` (the optimizer step, gradients in place),
    ``table_copy`` (one read and write of the table: a memory-traffic yardstick),
    ``gather_floor`` (a plain ``index_select`` of the step's N·L·2^d corner rows from the table,
    8-byte elements for F = 2: the random-access floor of a gather of that size)."""
    enc = model.encoding
    xb, yb = draw()
    feats = enc(xb).detach()
    layers = [m for m in model.children() if m is not enc]

    def encode() -> None:
        out = enc(draw()[0])
        torch.autograd.grad(out, enc.table, torch.ones_like(out))

    def mlp() -> None:
        h = feats
        for lin, norm, act in zip(model.linears, model.norms, model.acts, strict=True):
            h = act(norm(lin(h)))
        loss = torch.mean((model.head(h) - yb) ** 2)
        torch.autograd.grad(loss, [p for m in layers for p in m.parameters()])

    buf = torch.empty_like(enc.table)
    elems, k = _as_elements(enc.table.detach())
    rows = _element_index(enc.interpolation(xb)[0].reshape(-1), k)
    parts = {"encode": encode, "mlp": mlp, "adam": opt.step,
             "table_copy": lambda: buf.copy_(enc.table.detach()),
             "gather_floor": lambda: elems.index_select(0, rows)}
    out: dict[str, float] = {}
    for key, fn in parts.items():
        t, _, r = time_ratio(fn, roof, dev, repeats)
        out[f"{key}_s"], out[f"{key}_ratio"] = t, r
    return out


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    x, y = _points(args.size, args.dim, dev)
    rows = []
    for name in args.presets:
        for backend in args.kernels:
            kernels.set_backend(backend)
            cfg = preset(name)
            if args.finest is not None and cfg.model.encoding.kind in ("multigrid", "hash"):
                cfg.model.encoding.finest_resolution = args.finest
            seed_everything(0)
            model = build_model(cfg.model, args.dim, 3).to(dev)
            opt = build_adam(model.parameters(), cfg.train.lr, cfg.train.adam_eps)

            draw = batches(x, y, args.dim, args.fresh)

            def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                     draw: Callable = draw) -> None:
                xb, yb = draw()
                loss = torch.mean((model(xb) - yb) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            roof = roofline_fn(model, x.shape[0], dev)
            t_step, t_roof, ratio = time_ratio(step, roof, dev, args.repeats)
            ops = top_ops(step, dev, max(args.profile, 1))
            op, share = ops[0]
            if args.profile:
                print("    profile: " + ", ".join(f"{o} {100 * f:.0f}%" for o, f in ops))
            rows.append({"preset": name, "kernels": backend, "step_s": t_step,
                         "roofline_s": t_roof, "ratio": ratio, "top_op": op,
                         "top_op_share": share,
                         "params": sum(p.numel() for p in model.parameters())})
            # descriptive (string) fields only when set: they join the history key
            # (benchmarks.history) and leave the default runs' keys as they were
            if args.fresh:
                rows[-1]["batch"] = "fresh"
            if args.finest is not None:
                rows[-1]["finest"] = str(args.finest)
            if args.breakdown and isinstance(model.encoding, Grid):
                rows[-1].update(breakdown(model, opt, draw, roof, dev, args.repeats))
                print("    parts (× roofline): " + ", ".join(
                    f"{k[:-6]} {v:.2f}" for k, v in rows[-1].items() if k.endswith("_ratio")))
            print(f"  {name} ({backend} kernels): {t_step:.4f} s/step, {ratio:.2f}× roofline",
                  flush=True)
    kernels.set_backend("auto")
    batch = "new points each step" if args.fresh else "full batch"
    print(f"\nstep time, {args.size}² points, {args.dim}-D, {batch} ({x.shape[0]} points), "
          f"{dev}, {torch.get_num_threads()} threads")
    print_table(rows, ["preset", "kernels", "step_s", "roofline_s", "ratio", "top_op",
                       "top_op_share", "params"])
    write_results(args.out, "step-time", rows, {"size": args.size, "dim": args.dim,
                                                "fresh": args.fresh, "device": str(dev),
                                                "load_average": os.getloadavg()})
    return 0
