"""``inrlab bench operators``: what fitting through an operator costs.

1. Step time: one full-batch training step (forward, loss, backward, Adam) of a preset on
   ``ct:shepp_logan`` (Radon, ``--angles``) and ``mri:shepp_logan`` (masked FFT, R =
   ``--acceleration``) against the same model's direct fit of the N×N gray phantom (identity
   operator, the same N² query points). ``overhead`` = operator step / direct step (goal ≤ 1.5),
   the median over rounds that time one step of each in turn; ``operator_s`` the operator's own
   forward + backward.
2. Measurement eNTK on ``--kernel-points`` random measurements of an ``--kernel-size``² problem:
   the matrix-free A K Aᵀ route (:mod:`inrlab.ntk.operator`) against the Jacobian of A∘f
   (``jacobian``), with their relative difference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from ..config import PRESETS, SignalConfig, preset
from ..models import build_model
from ..problems import Image, Problem, load_problem
from ..utils import resolve_device, seed_everything
from .common import print_table, sync, time_call, write_results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """step time of CT/MRI problems vs direct image fitting; operator vs Jacobian eNTK"""
    p.add_argument("--presets", nargs="+", default=["relu", "pe", "siren"], choices=list(PRESETS))
    p.add_argument("--size", type=int, default=128, help="image side N of the step-time problems")
    p.add_argument("--width", type=int, default=None, help="MLP width (default: the preset's)")
    p.add_argument("--angles", type=int, default=60)
    p.add_argument("--acceleration", type=float, default=4.0)
    p.add_argument("--kernel-size", type=int, default=32, help="image side of the eNTK problems")
    p.add_argument("--kernel-points", type=int, default=64, help="measurements in the eNTK")
    p.add_argument("--parts", nargs="+", default=["steps", "kernels"], choices=["steps", "kernels"],
                   help="which measurements to run (default both)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/operators.json")


def _problems(size: int, angles: int, acceleration: float) -> dict[str, Problem]:
    ct, mri = SignalConfig("ct:shepp_logan", size), SignalConfig("mri:shepp_logan", size)
    ct.ct.angles, mri.mri.acceleration = angles, acceleration
    return {"ct": load_problem(ct), "mri": load_problem(mri)}


def _model(name: str, width: int | None, dev: torch.device) -> torch.nn.Module:
    cfg = preset(name).model
    if width is not None:
        cfg.width = width
    seed_everything(0)
    return build_model(cfg, 2, 1).to(dev)


def step_times(args: argparse.Namespace, dev: torch.device) -> list[dict[str, Any]]:
    """Rounds of (direct, CT, MRI) steps, one of each per round, so that a shared machine's load
    drifts hit all three alike; medians over rounds, ``overhead`` the median per-round ratio.
    ``operator_s``: the operator's own forward + backward on fixed field values."""
    direct = Image("phantom", size=args.size, gray=True, heldout=0.0)
    probs: dict[str, Problem] = {"direct": direct, **_problems(args.size, args.angles,
                                                                 args.acceleration)}
    rows = []
    for name in args.presets:
        steps: dict[str, Any] = {}
        for kind, prob in probs.items():
            model = _model(name, args.width, dev)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            b = prob.full_batch().to(dev)

            def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                     prob: Problem = prob, b: Any = b) -> None:
                loss = prob.loss(prob.forward(model(b.x), b), b.y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            step()  # warm-up
            steps[kind] = step
        times: dict[str, list[float]] = {k: [] for k in probs}
        for _ in range(args.repeats):
            for kind, fn in steps.items():
                times[kind].append(time_call(fn, dev, 1, warmup=0))
        for kind in ("ct", "mri"):
            prob = probs[kind]
            b = prob.full_batch().to(dev)
            vals = torch.randn(len(b.x), 1, device=dev, requires_grad=True)

            def op(prob: Problem = prob, b: Any = b, vals: torch.Tensor = vals) -> None:
                prob.loss(prob.forward(vals, b), b.y).backward()

            ratio = statistics.median(t / d for t, d in zip(times[kind], times["direct"], strict=True))
            rows.append({"preset": name, "problem": kind, "N": args.size,
                         "measurements": len(prob.train_idx),
                         "step_s": statistics.median(times[kind]),
                         "direct_s": statistics.median(times["direct"]),
                         "operator_s": time_call(op, dev, args.repeats), "overhead": ratio})
            print(f"  {name} {kind}: {rows[-1]['step_s']:.4f} s/step, direct "
                  f"{rows[-1]['direct_s']:.4f} s/step ({ratio:.2f}×)", flush=True)
    return rows


def _timed(prob: Problem, model: torch.nn.Module, idx: torch.Tensor, method: str,
           dev: torch.device) -> tuple[float, torch.Tensor]:
    """Seconds of one measurement-eNTK call and its kernel."""
    t = time.perf_counter()
    k = prob.kernel(model, idx, method=method)
    sync(dev)
    return time.perf_counter() - t, k


def kernel_times(args: argparse.Namespace, dev: torch.device) -> list[dict[str, Any]]:
    rows = []
    for kind, prob in _problems(args.kernel_size, args.angles, args.acceleration).items():
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(prob.train_idx), generator=g)[:args.kernel_points]
        idx = prob.train_idx[pick.sort().values]
        for name in args.presets:
            model = _model(name, args.width, dev)
            out: dict[str, Any] = {"preset": name, "problem": kind, "N": args.kernel_size,
                                   "n": len(idx), "route": prob.kernel_route(model)}
            prob.kernel(model, idx[:4])  # warm-up of both routes on a few measurements
            prob.kernel(model, idx[:4], method="jacobian")
            out["operator_s"], k_op = _timed(prob, model, idx, "auto", dev)
            out["jacobian_s"], k_jac = _timed(prob, model, idx, "jacobian", dev)
            out["speedup"] = out["jacobian_s"] / out["operator_s"]
            out["rel_err"] = float((k_op - k_jac).norm() / k_jac.norm())
            rows.append(out)
            print(f"  {name} {kind}: operator {out['operator_s']:.3f} s, jacobian "
                  f"{out['jacobian_s']:.3f} s ({out['speedup']:.1f}×), rel. diff "
                  f"{out['rel_err']:.1e}", flush=True)
    return rows


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    steps = step_times(args, dev) if "steps" in args.parts else []
    kernels = kernel_times(args, dev) if "kernels" in args.parts else []
    if steps:
        print(f"\nfull-batch step, {args.size}², {dev}, {torch.get_num_threads()} threads")
        print_table(steps, ["preset", "problem", "N", "measurements", "step_s", "direct_s",
                            "operator_s", "overhead"])
    if kernels:
        print(f"\nmeasurement eNTK, {args.kernel_size}², {args.kernel_points} measurements")
        print_table(kernels, ["preset", "problem", "n", "route", "operator_s", "jacobian_s",
                              "speedup", "rel_err"])
    write_results(args.out, "operators", steps + kernels,
                  {"size": args.size, "angles": args.angles, "acceleration": args.acceleration,
                   "width": args.width, "kernel_size": args.kernel_size,
                   "kernel_points": args.kernel_points})
    return 0
