"""``inrlab bench shapes``: 3-D training throughput per preset and a whole-volume IoU evaluation.

1. Points per second of one occupancy training step (forward, BCE, backward, Adam) on a batch of
   ``--batch`` voxels of ``--signal``, for each preset; with ``--iga`` also the IGA step (runs of
   256 voxels, ``--iga-groups`` groups, end 7, the paper's 3-D setting at a smaller batch).
2. One full IoU evaluation of ``--eval-signal`` (default: the thai statue uncropped, 512³ = 134 M
   voxels) with the ``--eval-preset`` model (``--eval-width`` / ``--eval-depth`` change its MLP;
   e.g. relu 2 × 256 is the IGA paper's 3-D model) in chunks of ``--chunk`` points (default: the
   device's, ``problems.volume.eval_chunk``): seconds, voxels per second and the process's peak
   resident memory (``ru_maxrss``) before and after, so the evaluation's own peak is visible apart
   from loading the volume, and the CPU seconds (a fairer rate on a shared machine).
   ``--eval-slabs N`` evaluates only the central N axis-0 slabs (a measured fraction to extrapolate
   from). The model is at initialization: the time does not depend on the weights.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from ..config import SignalConfig, preset
from ..models import build_model
from ..problems import load_problem
from ..problems.volume import Occupancy, eval_chunk
from ..techniques import IGA
from ..utils import resolve_device, seed_everything
from .common import print_table, time_call, write_results

PRESETS = ("relu", "pe", "ffe", "siren", "mpe", "hash")
GRID_3D = {"model.encoding.finest_resolution": 128}  # dense 3-D grids: 129³ vertices a level


def add_arguments(p: argparse.ArgumentParser) -> None:
    """3-D step throughput per preset and a whole-volume (512³) IoU evaluation"""
    p.add_argument("--presets", nargs="*", default=list(PRESETS), choices=list(PRESETS),
                   help="none: only the evaluation")
    p.add_argument("--signal", default="occ:sphere", help="volume for the step timings")
    p.add_argument("--batch", type=int, default=16_384)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iga", action="store_true", help="also time the IGA step")
    p.add_argument("--iga-groups", type=int, default=64)
    p.add_argument("--eval-signal", default="occ:thai", help="'' skips the evaluation")
    p.add_argument("--eval-size", type=int, default=None,
                   help="resample the evaluation volume (default: full size, uncropped)")
    p.add_argument("--eval-slabs", type=int, default=None,
                   help="evaluate only the central N slabs (axis-0 planes) of the volume, to time "
                        "a fraction of it on a slow machine (default: all)")
    p.add_argument("--eval-preset", default="hash", choices=list(PRESETS))
    p.add_argument("--eval-width", type=int, default=None, help="MLP width (default: the preset's)")
    p.add_argument("--eval-depth", type=int, default=None, help="hidden layers (default: the preset's)")
    p.add_argument("--chunk", type=int, default=None,
                   help="points per forward pass (default: 4 096 on a CPU, 262 144 on a GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/shapes.json")


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_for(name: str, dev: torch.device, width: int | None = None,
              depth: int | None = None) -> tuple[torch.nn.Module, float]:
    """The preset's 3-D model (dense grids capped at 128 cells an axis), seeded, and its lr."""
    cfg = preset(name)
    cfg.model.width = width or cfg.model.width
    cfg.model.depth = depth or cfg.model.depth
    if cfg.model.encoding.kind == "multigrid":
        cfg.model.encoding.finest_resolution = GRID_3D["model.encoding.finest_resolution"]
    seed_everything(0)
    return build_model(cfg.model, 3, 1).to(dev), cfg.train.lr


def step_rows(args: argparse.Namespace, dev: torch.device) -> list[dict]:
    prob = load_problem(SignalConfig(args.signal))
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name in args.presets:
        model, lr = model_for(name, dev)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        batch = prob.batch(prob.sample(args.batch, gen)).to(dev)

        def plain(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                  batch: object = batch) -> None:
            loss = prob.loss(model(batch.x), batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = time_call(plain, dev, args.repeats)
        row = {"preset": name, "batch": args.batch, "step_s": t, "points_per_s": args.batch / t}
        if args.iga:
            cfg = preset(name).train
            cfg.iga.group, cfg.iga.layout, cfg.iga.end = 256, "run", 7
            cfg.batch_size = 256 * args.iga_groups
            tech = IGA(cfg)
            tech.setup(model, prob)
            ib = prob.batch(tech.sample_batch(prob, cfg.batch_size, gen)).to(dev)

            def iga_step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                         tech: IGA = tech, ib: object = ib) -> None:
                loss = tech.loss(model, ib, model(ib.x), 0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            ti = time_call(iga_step, dev, args.repeats)
            row.update(iga_batch=len(ib.idx), iga_step_s=ti, iga_points_per_s=len(ib.idx) / ti)
        rows.append(row)
    return rows


def eval_row(args: argparse.Namespace, dev: torch.device) -> dict:
    cfg = SignalConfig(args.eval_signal)
    cfg.volume.crop = args.eval_size is not None
    cfg.volume.size = args.eval_size
    cfg.volume.chunk = args.chunk
    cfg.volume.mesh_size = 0
    rss0 = peak_rss_mb()
    t = time.perf_counter()
    prob = load_problem(cfg)
    full = prob.measurement_shape
    if args.eval_slabs is not None and args.eval_slabs < full[0]:
        a = (full[0] - args.eval_slabs) // 2
        prob = Occupancy(prob.volume[a:a + args.eval_slabs].numpy(), prob.name, prob.heldout,
                         prob.split_seed, prob.vcfg)
    load_s = time.perf_counter() - t
    rss_loaded = peak_rss_mb()
    model, _ = model_for(args.eval_preset, dev, args.eval_width, args.eval_depth)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t, cpu = time.perf_counter(), time.process_time()
    m = prob.evaluate(model, structural=True)
    ev, cpu = time.perf_counter() - t, time.process_time() - cpu
    row = {"signal": args.eval_signal, "shape": "×".join(map(str, prob.measurement_shape)),
           "voxels": prob.n_measurements, "preset": args.eval_preset,
           "width": model.cfg.width, "depth": model.cfg.depth,
           "parameters": sum(p.numel() for p in model.parameters()),
           "chunk": eval_chunk(args.chunk, dev), "threads": torch.get_num_threads(),
           "of_shape": "×".join(map(str, full)), "load_s": load_s, "eval_s": ev,
           "voxels_per_s": prob.n_measurements / ev, "eval_cpu_s": cpu,
           "voxels_per_cpu_s": prob.n_measurements / cpu,
           "peak_rss_start_mb": rss0, "peak_rss_loaded_mb": rss_loaded,
           "peak_rss_end_mb": peak_rss_mb(), "iou_train": m["iou_train"]}
    if dev.type == "cuda":
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    return row


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    rows = step_rows(args, dev) if args.presets else []
    if rows:
        cols = ["preset", "batch", "step_s", "points_per_s"]
        print_table(rows, cols + (["iga_batch", "iga_step_s", "iga_points_per_s"] if args.iga else []))
    ev = eval_row(args, dev) if args.eval_signal else None
    if ev is not None:
        print()
        print_table([ev], list(ev))
    write_results(args.out, "shapes", rows, {"evaluation": ev})
    return 0
