"""Command-line parts of rendering problems: ``inrlab scene render`` (make a Blender-format scene
from a mesh) and ``inrlab render RUN`` (render a trained radiance field from its checkpoint)."""

from __future__ import annotations

import argparse
from typing import Any

from ...errors import InrlabError
from .scene import SceneSettings


def scene_parser(sub: Any) -> None:
    p = sub.add_parser("scene", help="make multi-view datasets offline")
    ssub = p.add_subparsers(dest="scene_command", required=True)
    r = ssub.add_parser("render", help="ray-cast a textured, shaded mesh into a Blender-format scene",
                        description="Render MESH (OBJ, PLY, STL, OFF, GLB; .gz allowed) from cameras "
                        "on a sphere into DIR: transforms_{train,val,test}.json, RGBA PNGs, depth "
                        "and normal maps, the normalised mesh. Deterministic from --seed.")
    d = SceneSettings()
    r.add_argument("mesh", help="mesh file")
    r.add_argument("--out", required=True, help="scene folder to write")
    r.add_argument("--views", type=int, default=d.views, help="training views")
    r.add_argument("--val-views", type=int, default=d.val_views)
    r.add_argument("--test-views", type=int, default=d.test_views)
    r.add_argument("--size", type=int, default=d.size, help="image side in pixels")
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument("--spp", type=int, default=d.spp, help="spp×spp sub-pixel rays (antialiasing)")
    r.add_argument("--radius", type=float, default=d.radius, help="camera distance from the origin")
    r.add_argument("--fov", type=float, default=d.camera_angle_x, help="camera_angle_x (radians)")
    r.add_argument("--up", choices=("y", "z"), default=d.up, help="the mesh file's up axis")
    r.add_argument("--texture-frequency", type=float, default=d.texture_frequency,
                   help="checker cells per unit length of the procedural texture")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scene, overrides=False)


def cmd_scene(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .scene import render_scene

    st = SceneSettings(views=args.views, val_views=args.val_views, test_views=args.test_views,
                       size=args.size, seed=args.seed, spp=args.spp, radius=args.radius,
                       camera_angle_x=args.fov, up=args.up,
                       texture_frequency=args.texture_frequency)
    out = render_scene(args.mesh, args.out, st, progress=not args.quiet)
    print(f"wrote {st.views}/{st.val_views}/{st.test_views} train/val/test views of "
          f"{st.size}×{st.size} px to {out}; fit with `inrlab fit nerf:{out} --preset pe`")
    return 0


def render_parser(sub: Any) -> None:
    p = sub.add_parser("render", help="render a trained radiance field (nerf:… run) from its "
                       "checkpoint", description="Render camera paths of the radiance field of run "
                       "folder RUN: a turntable GIF (and its frames), or the test views.")
    p.add_argument("run", help="run folder of a nerf:… fit")
    p.add_argument("--path", choices=("turntable", "test"), default="turntable")
    p.add_argument("--frames", type=int, default=40, help="turntable frames")
    p.add_argument("--elevation", type=float, default=30.0, help="turntable elevation (degrees)")
    p.add_argument("--out", help="output folder (default RUN/render-PATH)")
    p.set_defaults(func=cmd_render, overrides=False)


def cmd_render(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from pathlib import Path

    from ...train.trainer import load_run
    from .problem import NeRF

    res = load_run(args.run)
    if not isinstance(res.problem, NeRF):
        kind = res.problem.meta.get("kind", type(res.problem).__name__)
        raise InrlabError(f"run {args.run!r} fitted a {kind} problem ({res.problem.name}), not a "
                          f"rendering problem: `inrlab render` needs a run of `inrlab fit nerf:DIR`")
    if args.frames < 1:
        raise InrlabError(f"--frames {args.frames} is impossible: give at least 1")
    out = Path(args.out) if args.out else Path(args.run) / f"render-{args.path}"
    files = res.problem.render_path(res.model, out, args.path, frames=args.frames,
                                    elevation=args.elevation)
    print(f"wrote {len(files)} files to {out} ({files[0].name}, …)")
    return 0
