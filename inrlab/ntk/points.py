"""Which measurements an eNTK is computed on: a seeded random or a regular subsample of a
problem's measurement grid (for direct fitting: grid points)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InrlabError
from ..problems import Problem

SAMPLINGS = ("random", "regular")


def sample_points(problem: Problem, n: int, how: str = "random", seed: int = 0,
                  pool: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """Measurement indices (n',) of ``problem`` (for direct fitting: grid points) and, for
    ``how="regular"``, the shape of the regular sub-grid they form (row-major, so eigenvector
    frequencies can be read); None for random.

    ``random``: n distinct points drawn with ``seed`` from ``pool`` (default: every point), sorted.
    ``regular``: evenly spaced rows/columns of the grid; in 2-D an h × w sub-grid with the grid's
    aspect ratio and h·w ≤ n (so n' may be slightly below n).
    """
    if how not in SAMPLINGS:
        raise InrlabError(f"unknown point sampling {how!r}: choose one of {', '.join(SAMPLINGS)}")
    total = problem.n_measurements if pool is None else len(pool)
    if not 1 <= n <= total:
        raise InrlabError(f"cannot take {n} eNTK points from a problem with {total} points: choose "
                          f"--points between 1 and {total}")
    if how == "random":
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(total, generator=g)[:n].sort().values
        return (pick if pool is None else pool[pick]), None
    shape = problem.measurement_shape
    if len(shape) == 1:
        return torch.from_numpy(np.linspace(0, shape[0] - 1, n).round().astype(np.int64)), (n,)
    if len(shape) != 2:
        raise InrlabError(f"regular point sampling supports 1-D and 2-D grids, not {shape}: use "
                          f"random sampling")
    h = min(shape[0], max(1, round(math.sqrt(n * shape[0] / shape[1]))))
    w = min(shape[1], max(1, n // h))
    rows = np.linspace(0, shape[0] - 1, h).round().astype(np.int64)
    cols = np.linspace(0, shape[1] - 1, w).round().astype(np.int64)
    return torch.from_numpy((rows[:, None] * shape[1] + cols[None, :]).ravel()), (h, w)
