"""Sampling along rays, empty-space skipping and differentiable volume rendering.

Samples. The segment [near, far] of every ray is cut into S strata of width δ = (far − near)/S;
stratum k holds one sample at t_k = near + (k + u_k)·δ, u_k ~ U[0, 1) when training (stratified
sampling, an unbiased estimate of each stratum's optical depth) and u_k = ½ when rendering. Samples
outside the scene box [-bound, bound]³ and, with an occupancy grid, samples in empty cells are
skipped: the field is evaluated only at the kept ones, and a skipped sample has zero density.

Rendering. With σ_k ≥ 0 the density and c_k the colour of sample k, the operator is the
quadrature of the volume rendering integral

    α_k = 1 − exp(−σ_k δ),   T_k = exp(−Σ_{j<k} σ_j δ),   w_k = T_k α_k,
    C = Σ_k w_k c_k + (1 − Σ_k w_k)·background,   depth = Σ_k w_k t_k / Σ_k w_k

which is exact for piecewise-constant fields (a homogeneous slab of length L transmits e^{−σL}).

Importance sampling (coarse + fine, ``signal.nerf.fine_samples`` = F > 0). The coarse weights w_k
make a piecewise-constant PDF over the strata, p ∝ w_k + 10⁻⁵ on [near + kδ, near + (k+1)δ)
(the ε keeps it proper when a ray hits nothing); F fine distances are its inverse CDF at
u_j = (j + v_j)/F, v_j ~ U[0, 1) when training and ½ when rendering (:func:`sample_pdf`, sorted
by construction). The union of coarse and fine samples, sorted, is rendered with per-sample
widths δ_k: the sample's cell of the Voronoi partition of [near, far], from the midpoint to its
left neighbour to the midpoint to its right one (:func:`interval_widths`; Σδ_k = far − near, and
midpoint strata get δ_k = δ exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ...errors import InrlabError


@dataclass
class Samples:
    """Samples of B rays, S strata each.

    Attributes:
        t: (B, S) distances along the unit ray directions ((S,), shared by every ray, for the
            stratum midpoints of rendering).
        keep: (B, S) bool, the samples the field is evaluated at (P = keep.sum()).
        x: (P, 6) field inputs of the kept samples, row-major over (B, S): position / bound
            in [-1, 1]³ and the unit ray direction.
        delta: stratum width δ (a float), or per-sample widths (B, S) of a merged coarse + fine
            sample set (:func:`interval_widths`).
    """

    t: torch.Tensor
    keep: torch.Tensor
    x: torch.Tensor
    delta: float | torch.Tensor


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, bound: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances (B,), (B,) of rays (B, 3) + t·(B, 3) through the box
    [-bound, bound]³ (slab method); entry > exit means the ray misses the box."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    a, b = (-bound - origins) * inv, (bound - origins) * inv
    return torch.minimum(a, b).amax(-1), torch.maximum(a, b).amin(-1)


def occupied(grid: torch.Tensor, threshold: float, pos: torch.Tensor) -> torch.Tensor:
    """(N,) bool: is the cell of the occupancy ``grid`` (G, G, G) that holds each normalised
    position ``pos`` (N, 3) in [-1, 1]³ occupied. A cell is occupied when its running density
    exceeds min(threshold, mean over finite cells) (instant-NGP's rule)."""
    g = grid.shape[0]
    finite = grid[torch.isfinite(grid)]
    thr = min(threshold, float(finite.mean())) if finite.numel() else threshold
    cell = ((pos + 1) / 2 * g).long().clamp(0, g - 1)
    return grid[cell[:, 0], cell[:, 1], cell[:, 2]] > thr


def march(origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float, n_samples: int,
          bound: float, jitter: bool, grid: torch.Tensor | None = None,
          threshold: float = 0.01) -> Samples:
    """Samples of rays ``origins``, ``dirs`` (B, 3) (see the module docstring). ``jitter``:
    stratified random offsets from torch's global generator (else stratum midpoints)."""
    if origins.shape[0] == 0:
        raise InrlabError("a batch needs at least one ray: set train.batch_size > 0")
    b = origins.shape[0]
    delta = (far - near) / n_samples
    k = torch.arange(n_samples, device=origins.device, dtype=origins.dtype)
    u = torch.rand(b, n_samples, device=origins.device, dtype=origins.dtype) if jitter else 0.5
    t = near + (k + u) * delta
    return Samples(t, *kept_inputs(origins, dirs, t, bound, grid, threshold), delta)


def kept_inputs(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, bound: float,
                grid: torch.Tensor | None, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples at distances ``t`` (B, S) along rays ``origins``, ``dirs`` (B, 3) are kept —
    inside the box [-bound, bound]³ and, with an occupancy ``grid``, in an occupied cell — as
    ``keep`` (B, S) bool, and the field inputs (P, 6) of the kept ones (row-major over (B, S)).
    ``t`` may be (S,), shared by every ray (stratum midpoints)."""
    t_in, t_out = ray_box(origins, dirs, bound)
    keep = (t >= t_in[:, None]) & (t <= t_out[:, None])
    pos = (origins[:, None, :] + t[..., None] * dirs[:, None, :]) / bound  # (B, S, 3)
    if grid is not None and keep.any():
        sel = keep.clone()
        sel[keep] = occupied(grid, threshold, pos[keep])
        keep = sel
    x = torch.cat([pos[keep], dirs[:, None, :].expand(-1, keep.shape[1], -1)[keep]], 1)
    return keep, x


def sample_pdf(edges: torch.Tensor, weights: torch.Tensor, n: int, jitter: bool,
               eps: float = 1e-5) -> torch.Tensor:
    """Inverse-CDF samples (B, n), sorted, of the piecewise-constant PDF ∝ ``weights`` (B, S) + eps
    on the bins between ``edges`` (S + 1,) or (B, S + 1) (increasing). Quantiles u_j = (j + v_j)/n
    with v_j ~ U[0, 1) from torch's global generator when ``jitter`` (stratified), else ½."""
    b, s = weights.shape
    w = weights.detach() + eps
    cdf = torch.cumsum(w / w.sum(1, keepdim=True), 1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, :-1], torch.ones_like(cdf[:, :1])], 1)
    j = torch.arange(n, device=w.device, dtype=w.dtype)
    v = (torch.rand(b, n, device=w.device, dtype=w.dtype) if jitter
         else torch.full((b, n), 0.5, device=w.device, dtype=w.dtype))
    u = (j + v) / n
    hi = torch.searchsorted(cdf, u.contiguous(), right=True).clamp(1, s)  # cdf[hi-1] ≤ u < cdf[hi]
    lo = hi - 1
    c0, c1 = cdf.gather(1, lo), cdf.gather(1, hi)
    e = edges.to(w.dtype).expand(b, s + 1)
    e0, e1 = e.gather(1, lo), e.gather(1, hi)
    frac = ((u - c0) / (c1 - c0).clamp_min(1e-12)).clamp(0, 1)
    return e0 + frac * (e1 - e0)


def interval_widths(t: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Widths (B, S) of the cells of sorted samples ``t`` (B, S) in [near, far]: from the midpoint
    to the previous sample (``near`` for the first) to the midpoint to the next (``far`` for the
    last), so the widths tile [near, far]."""
    mid = (t[:, 1:] + t[:, :-1]) / 2
    lo = torch.cat([torch.full_like(t[:, :1], near), mid], 1)
    hi = torch.cat([mid, torch.full_like(t[:, :1], far)], 1)
    return hi - lo


def density_activation(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """σ ≥ 0 from raw density outputs: softplus(raw − 1) (Mip-NeRF's shifted softplus), relu,
    or exp (clamped at e^15 for stability)."""
    if kind == "softplus":
        return F.softplus(raw - 1)
    if kind == "relu":
        return F.relu(raw)
    return torch.exp(raw.clamp(max=15))


def composite(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor,
              delta: float | torch.Tensor, background: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Volume rendering of densities ``sigma`` (B, S) ≥ 0 and colours ``rgb`` (B, S, 3) at
    distances ``t`` (B, S) with stratum width ``delta`` (a float, or per-sample widths (B, S)) over
    a grey-level ``background``.

    Returns colour (B, 3), weights w (B, S), opacity Σw (B,) and expected depth (B,) (distance
    along the ray, normalised by the opacity; ``far``-independent: 0 where nothing is hit)."""
    a = sigma * delta
    excl = torch.cumsum(a, 1) - a  # Σ_{j<k} σ_j δ
    w = torch.exp(-excl) * -torch.expm1(-a)
    acc = w.sum(1)
    colour = (w[..., None] * rgb).sum(1) + (1 - acc)[:, None] * background
    depth = (w * t).sum(1) / acc.clamp_min(1e-10)
    return colour, w, acc, depth


def scatter(out: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw field outputs (P, 4) of the kept samples ``keep`` (B, S) → dense raw density (B, S)
    and raw RGB (B, S, 3), zeros where skipped. Differentiable in ``out``."""
    b, s = keep.shape
    rows = torch.nonzero(keep.reshape(-1)).squeeze(1)
    dense = out.new_zeros(b * s, out.shape[1]).index_copy(0, rows, out).view(b, s, -1)
    return dense[..., 0], dense[..., 1:]


def render_outputs(out: torch.Tensor, samples: Samples, activation: str, background: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour (B, 3), weights (B, S), opacity (B,) and depth (B,) of rays whose kept samples the
    field answered with raw outputs ``out`` (P, 4); skipped samples have zero density."""
    raw_sigma, raw_rgb = scatter(out, samples.keep)
    sigma = torch.where(samples.keep, density_activation(raw_sigma, activation), 0.0)
    return composite(sigma, torch.sigmoid(raw_rgb), samples.t, samples.delta, background)


def render_merged(out_c: torch.Tensor, coarse: Samples, out_f: torch.Tensor, fine: Samples,
                  near: float, far: float, activation: str, background: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour (B, 3), weights (B, S + F), opacity (B,) and depth (B,) of the union of ``coarse``
    (B, S; its ``t`` may be (S,)) and ``fine`` (B, F) samples, sorted by distance, with the
    field's raw outputs ``out_c`` (P_c, 4) and ``out_f`` (P_f, 4) at their kept samples and the
    widths of :func:`interval_widths`; skipped samples have zero density. Differentiable in both
    outputs."""
    sc, rc = scatter(out_c, coarse.keep)
    sf, rf = scatter(out_f, fine.keep)
    t, order = torch.sort(torch.cat([coarse.t.expand_as(coarse.keep), fine.t], 1), 1)
    keep = torch.cat([coarse.keep, fine.keep], 1).gather(1, order)
    raw_sigma = torch.cat([sc, sf], 1).gather(1, order)
    raw_rgb = torch.cat([rc, rf], 1).gather(1, order[..., None].expand(-1, -1, rc.shape[2]))
    sigma = torch.where(keep, density_activation(raw_sigma, activation), 0.0)
    return composite(sigma, torch.sigmoid(raw_rgb), t, interval_widths(t, near, far), background)


@torch.no_grad()
def update_occupancy(grid: torch.Tensor, density: Callable[[torch.Tensor], torch.Tensor],
                     decay: float, activation: str, chunk: int = 2**16) -> None:
    """One occupancy update in place: g ← max(decay·g, σ(p)) with p a uniformly jittered point in
    every cell (torch's global generator); cells still at +inf start from σ(p)."""
    g = grid.shape[0]
    ijk = torch.stack(torch.meshgrid(*[torch.arange(g, device=grid.device)] * 3, indexing="ij"),
                      -1).reshape(-1, 3)
    pos = (ijk + torch.rand(ijk.shape, device=grid.device)) / g * 2 - 1
    sig = torch.cat([density_activation(density(pos[i:i + chunk]), activation)
                     for i in range(0, len(pos), chunk)]).view(g, g, g).to(grid.dtype)
    old = torch.where(torch.isfinite(grid), grid * decay, torch.zeros_like(grid))
    grid.copy_(torch.maximum(old, sig))


def composite_alpha(alpha: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, background: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha compositing of opacities ``alpha`` (B, S) in [0, 1] and colours ``rgb`` (B, S, 3):
    w_k = α_k Π_{j<k} (1 − α_j); returns colour (B, 3), w (B, S), Σw (B,), depth (B,) as
    :func:`composite` does."""
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10],
                                    1), 1)
    w = trans * alpha
    acc = w.sum(1)
    colour = (w[..., None] * rgb).sum(1) + (1 - acc)[:, None] * background
    return colour, w, acc, (w * t).sum(1) / acc.clamp_min(1e-10)


def sdf_alpha(sdf: torch.Tensor, valid: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """NeuS's discrete opacity (Wang et al. 2021, eq. 13) of consecutive samples: with
    Φ_s = sigmoid(s·x), α_k = max((Φ_s(f_k) − Φ_s(f_{k+1})) / Φ_s(f_k), 0) for the section from
    sample k to k+1 (where ``valid`` (B, S−1) says both are kept), else 0. ``sdf`` (B, S);
    returns (B, S) (the last sample closes no section: α = 0)."""
    phi = torch.sigmoid(s * sdf)
    a = ((phi[:, :-1] - phi[:, 1:]) / (phi[:, :-1] + 1e-5)).clamp(0, 1)
    a = torch.where(valid, a, torch.zeros_like(a))
    return torch.cat([a, torch.zeros_like(a[:, :1])], 1)
