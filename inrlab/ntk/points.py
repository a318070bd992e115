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
    ``regular``: evenly spaced indices along every axis of the grid (1-D, 2-D images, 3-D volumes
    and videos): a sub-grid with about the grid's aspect ratio and at most n points (so n' may be
    slightly below n), see :func:`regular_subgrid`. ``pool`` is ignored (held-out points of the
    sub-grid are kept: the eNTK does not depend on targets).
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
    sub = regular_subgrid(problem.measurement_shape, n)
    axes = [np.linspace(0, s - 1, m).round().astype(np.int64)
            for s, m in zip(problem.measurement_shape, sub, strict=True)]
    flat = np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), problem.measurement_shape)
    return torch.from_numpy(flat.reshape(-1)), sub


def regular_subgrid(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    """Sides (m₁, …, m_d) of a regular sub-grid of ``shape`` with about its aspect ratio, each
    m_i ≤ shape_i, and ∏ m_i ≤ n: the first side is the rounded share of a uniform scaling, the
    rest fill n // m₁ recursively (1-D: n points; so 2-D gives h = round(√(n·H/W)), w = n // h)."""
    if len(shape) == 1:
        return (min(shape[0], n),)
    d = len(shape)
    share = n * shape[0] ** (d - 1) / math.prod(shape[1:])  # m₁^d at the grid's aspect ratio
    m = min(shape[0], max(1, round(math.sqrt(share) if d == 2 else share ** (1 / d))))
    return (m, *regular_subgrid(shape[1:], max(1, n // m)))
