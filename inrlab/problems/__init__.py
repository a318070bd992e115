"""Problems: what is fitted and through which operator (spec/problems.md).

``load_problem(cfg)`` turns a name into a problem: ``sines:…`` → :class:`Function1D`, a
registered ``PREFIX:…`` → that kind, anything else → an :class:`Image` (a path, ``kodak:NAME`` or
an embedded scikit-image name). New kinds: :func:`register_problem`.
"""

from __future__ import annotations

from .base import PROBLEMS, Batch, GridData, Problem, load_problem, problem_prefix, register_problem
from .ct import CT, build_ct
from .function1d import Function1D, build_sines
from .grid import Signal
from .image import EMBEDDED, Image, build_image
from .mri import MRI, build_mri
from .nerf import NeRF, NeuS, build_nerf, build_neus
from .video import Video, build_video
from .volume import SDF, Occupancy, build_occupancy, build_sdf

register_problem("image", build_image, "an image file, an embedded scikit-image name or kodak:NAME")
register_problem("kodak", build_image, "kodak:kodimNN, a Kodak image from $INRLAB_DATA")
register_problem("sines", build_sines, "sines:K1,K2,…[@N], y = Σ sin(2π k x) on N samples")
register_problem("ct", build_ct, "ct:shepp_logan|dicom_ct|dicom_mr|PATH, parallel-beam CT from a "
                 "sinogram")
register_problem("mri", build_mri, "mri:shepp_logan|dicom_mr|dicom_ct|PATH, Cartesian MRI (k-space)")

register_problem("occ", build_occupancy, "occ:thai|bunny|sphere|PATH (.mat[.zip], .npy, mesh): "
                 "occupancy volume, BCE on logits")
register_problem("video", build_video, "video:bikes|carphone|bigbuckbunny|gif|PATH: a clip, "
                 "(t, y, x) → RGB, 10 % of each frame held out")
register_problem("sdf", build_sdf, "sdf:bunny|sphere|MESH: signed distance at surface, "
                 "near-surface and uniform points")

register_problem("nerf", build_nerf, "nerf:DIR, a Blender-format scene (transforms_*.json + RGBA PNGs)")
register_problem("neus", build_neus, "neus:DIR, NeuS-style surface reconstruction of a Blender scene")

__all__ = ["Problem", "Batch", "GridData", "PROBLEMS", "register_problem", "load_problem",
           "problem_prefix", "Signal", "Function1D", "Image", "EMBEDDED", "CT", "MRI", "Occupancy",
           "SDF", "Video", "NeRF", "NeuS"]
