"""``inrlab bench nerf``: rays per second of a NeRF training step and of rendering, per field,
with and without empty-space skipping.

A training step is what the trainer does: draw ``--rays`` training rays, march their samples,
evaluate the field, render, MSE, backward, Adam. Rendering is eval-mode marching and rendering of
one test view's rays (stratum midpoints). "Skipping on" uses an occupancy grid marked from the
scene's ground-truth mesh (``mesh.obj`` of a generated scene: the cells the surface passes
through, dilated by one cell — what a converged grid marks), so the figure does not depend on
how far some training got; "off" evaluates every sample inside the scene box. ``samples/ray`` is
the mean number of field evaluations per ray.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ..config import preset, set_fields
from ..data import data_dir
from ..errors import InrlabError
from ..utils import resolve_device, seed_everything
from .common import print_table, time_call, write_results

FIELDS = {  # preset and overrides of each benchmarked field (the quick-tier settings)
    "pe": ("pe", {"model.width": 128, "model.depth": 4, "model.encoding.n_frequencies": 10,
                  "model.view.dir_encoding": "positional"}),
    "hash": ("hash", {"model.encoding.finest_resolution": 256,
                      "model.encoding.log2_table_size": 16}),
    "siren": ("siren", {"model.width": 128, "model.depth": 4}),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """rays/s of NeRF training steps and rendering, with and without empty-space skipping"""
    p.add_argument("--scene", help="Blender-format scene made by `inrlab scene render` (default: "
                   "render the bunny at --size into a temporary folder)")
    p.add_argument("--size", type=int, default=64, help="image side of the default scene")
    p.add_argument("--fields", nargs="+", default=list(FIELDS), choices=list(FIELDS))
    p.add_argument("--rays", type=int, default=1024, help="rays per training step")
    p.add_argument("--samples", type=int, default=64, help="strata per ray (signal.nerf.ray_samples)")
    p.add_argument("--grid", type=int, default=32, help="occupancy grid cells per axis")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/nerf.json")


def mesh_occupancy(mesh_path: Path, grid: int, bound: float) -> torch.Tensor:
    """(G, G, G) float32 occupancy values from a mesh: 1 in the cells that surface samples fall
    in (dilated by one cell), 0 elsewhere."""
    import trimesh

    mesh = trimesh.load(mesh_path, force="mesh")
    pts, _ = trimesh.sample.sample_surface_even(mesh, 200_000, seed=0)
    cell = torch.from_numpy(((pts / bound + 1) / 2 * grid).astype("int64")).clamp(0, grid - 1)
    occ = torch.zeros(grid, grid, grid)
    occ[cell[:, 0], cell[:, 1], cell[:, 2]] = 1
    occ = torch.nn.functional.max_pool3d(occ[None, None], 3, stride=1, padding=1)[0, 0]
    return occ


def main(args: argparse.Namespace) -> int:
    from ..problems.nerf import NeRF, SceneSettings, render_scene
    from ..problems.nerf.cameras import camera_rays

    dev = resolve_device(args.device)
    tmp = None
    if args.scene is None:
        data = data_dir()
        mesh = data / "meshes" / "bunny.obj.gz" if data is not None else None
        if mesh is None or not mesh.exists():
            raise InrlabError("no --scene given and no bunny mesh under $INRLAB_DATA/meshes: "
                              "make a scene with `inrlab scene render MESH --out DIR`")
        tmp = tempfile.TemporaryDirectory()
        scene = render_scene(mesh, Path(tmp.name) / "bunny", SceneSettings(
            views=8, val_views=1, test_views=1, size=args.size), progress=False)
    else:
        scene = Path(args.scene)
    if not (scene / "mesh.obj").exists():
        raise InrlabError(f"{scene} has no mesh.obj (the ground truth the skipping grid is made "
                          f"from): use a scene made by `inrlab scene render`")
    rows = []
    try:
        for name in args.fields:
            pname, over = FIELDS[name]
            for skip in (False, True):
                cfg = preset(pname)
                cfg.signal.name = f"nerf:{scene}"
                set_fields(cfg, {**over, "signal.nerf.ray_samples": args.samples,
                                 "signal.nerf.grid": args.grid if skip else 0,
                                 "train.batch_size": args.rays}.items())
                cfg.validate()
                prob = NeRF(scene, cfg.signal)
                seed_everything(0)
                model = prob.build_model(cfg.model).to(dev)
                if skip:
                    model.occupancy.copy_(mesh_occupancy(scene / "mesh.obj", args.grid,
                                                         cfg.signal.nerf.bound))
                prob.step(model, 0)  # binds the grid (before grid_warmup: no update)
                opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr,
                                       eps=cfg.train.adam_eps)
                gen = torch.Generator().manual_seed(0)
                kept: list[float] = []

                def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                         prob: NeRF = prob, gen: torch.Generator = gen,
                         kept: list[float] = kept) -> None:
                    b = prob.batch(prob.sample(args.rays, gen)).to(dev)
                    kept.append(b.x.shape[0] / args.rays)
                    loss = prob.loss(prob.forward(model(b.x), b), b.y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                t_step = time_call(step, dev, args.repeats)
                tv = prob.test_views
                o, d = camera_rays(tv.c2w[:1], tv.height, tv.width, tv.focal)
                t_render = time_call(lambda prob=prob, model=model, o=o, d=d:
                                     prob.render_rays(model, o.reshape(-1, 3), d.reshape(-1, 3)),
                                     dev, max(1, args.repeats // 2))
                rows.append({"field": name, "skipping": "on" if skip else "off",
                             "train_rays_per_s": args.rays / t_step,
                             "render_rays_per_s": tv.height * tv.width / t_render,
                             "samples_per_ray": sum(kept) / len(kept), "step_s": t_step,
                             "params": sum(p.numel() for p in model.parameters())})
                print(f"  {name} skipping {'on' if skip else 'off'}: {t_step:.3f} s/step",
                      flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"\nNeRF rays/s, {args.rays} rays/step, {args.samples} strata, grid {args.grid}³, "
          f"{dev}, {torch.get_num_threads()} threads")
    print_table(rows, ["field", "skipping", "train_rays_per_s", "render_rays_per_s",
                       "samples_per_ray", "step_s", "params"])
    write_results(args.out, "nerf", rows, {"scene": str(scene), "rays": args.rays,
                                           "samples": args.samples, "grid": args.grid,
                                           "device": str(dev)})
    return 0
