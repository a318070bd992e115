"""Performance benchmarks, run as ``inrlab bench NAME``: each prints a table and writes JSON.

``BENCHMARKS[name] = (add_arguments(parser), run(args) -> exit code)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import compression, entk, fresh, history, iga_step, nerf, operators, shapes, step_time, time_to_psnr

BENCHMARKS: dict[str, tuple[Callable[[Any], None], Callable[[Any], int]]] = {
    "step-time": (step_time.add_arguments, step_time.main),
    "compression": (compression.add_arguments, compression.main),
    "entk": (entk.add_arguments, entk.main),
    "iga": (iga_step.add_arguments, iga_step.main),
    "fresh": (fresh.add_arguments, fresh.main),
    "operators": (operators.add_arguments, operators.main),
    "shapes": (shapes.add_arguments, shapes.main),
    "nerf": (nerf.add_arguments, nerf.main),
    "time-to-psnr": (time_to_psnr.add_arguments, time_to_psnr.main),
    "all": (history.add_all_arguments, history.run_all),
    "plot": (history.add_plot_arguments, history.plot),
}
