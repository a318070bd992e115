"""Problems: what is fitted and through which operator (spec/problems.md).

``load_problem(cfg)`` turns a name into a problem: ``sines:…`` → :class:`Function1D`, a
registered ``PREFIX:…`` → that kind, anything else → an :class:`Image` (a path, ``kodak:NAME`` or
an embedded scikit-image name). New kinds: :func:`register_problem`.
"""

from __future__ import annotations

from .base import PROBLEMS, Batch, GridData, Problem, load_problem, problem_prefix, register_problem
from .function1d import Function1D, build_sines
from .grid import Signal
from .image import EMBEDDED, Image, build_image
from .nerf import NeRF, NeuS, build_nerf, build_neus

register_problem("image", build_image, "an image file, an embedded scikit-image name or kodak:NAME")
register_problem("kodak", build_image, "kodak:kodimNN, a Kodak image from $INRLAB_DATA")
register_problem("sines", build_sines, "sines:K1,K2,…[@N], y = Σ sin(2π k x) on N samples")
register_problem("nerf", build_nerf, "nerf:DIR, a Blender-format scene (transforms_*.json + RGBA PNGs)")
register_problem("neus", build_neus, "neus:DIR, NeuS-style surface reconstruction of a Blender scene")

__all__ = ["Problem", "Batch", "GridData", "PROBLEMS", "register_problem", "load_problem",
           "problem_prefix", "Signal", "Function1D", "Image", "EMBEDDED", "NeRF", "NeuS"]
