"""The latent codec's model (COOL-CHIC / C3 recipe): multiresolution latent grids, a small
synthesis network, and a context model of the quantised latents; quantisation-aware training.

Image x (C, H, W) in [0, 1]. Latent level k (k = 0 … L−1) is one grid of ⌈H/2^k⌉ × ⌈W/2^k⌉
values, quantised to integers (step 1) and entropy-coded. Decoding: upsample every level to
H × W (bicubic or bilinear, ``torch.nn.functional.interpolate``), concatenate to (L, H, W), run a
per-pixel MLP (1×1 layers, GELU) to C channels, add 0.5, then ``refine`` residual 3×3 convolutions
(C → C), clamp to [0, 1].

Entropy model (a context model, decodable in 2L vectorised passes): levels are coded coarse to
fine; inside a level, the checkerboard "anchors" ((i + j) even) first, then the rest. A latent's
Laplace distribution (mean μ, scale b) is predicted by a small MLP (ReLU) from 10 numbers: its
4 same-level neighbours N, S, W, E (zero for anchors, whose neighbours are not decoded yet; the
non-anchors' neighbours are all anchors), its parent at level k+1 and the parent's 4 neighbours
(zero at the coarsest level), and a phase flag (1 for non-anchors); log b gets a per-level bias.
The rate of a latent is −log2 P, P = F(ŷ + ½) − F(ŷ − ½) with F the Laplace CDF.

Training (quantisation-aware): loss = MSE + λ · bpp. Phase 1 adds uniform noise U(−½, ½) to the
latents (the rate and the synthesis see ŷ = y + u); phase 2 rounds with a straight-through
gradient (forward round(y), backward identity) at a lower learning rate. The network weights are
quantised afterwards (``bitstream.quantise_networks``) and their bits counted in the file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InrlabError

N_CONTEXT = 10  # N, S, W, E, parent and its N, S, W, E, phase flag
LOG_SCALE_MIN, LOG_SCALE_MAX, N_SCALES = math.log(0.02), math.log(256.0), 96
UPSAMPLE = ("bicubic", "bilinear")


@dataclass(frozen=True)
class CodecSpec:
    """The decoder's architecture (stored in the file header)."""

    levels: int = 7  # latent grids at 1, 1/2, …, 1/2^(levels−1) of the image's resolution
    hidden: tuple[int, ...] = (16,)  # widths of the synthesis MLP's hidden 1×1 layers
    refine: int = 1  # residual 3×3 convolutions C → C after the MLP
    arm_hidden: int = 8  # width of the context model's two hidden layers
    upsample: str = "bilinear"  # how latents are brought to full resolution: bicubic or bilinear

    def validate(self) -> None:
        """One-line errors for impossible architectures."""
        if not 1 <= self.levels <= 12:
            raise InrlabError(f"levels={self.levels} is impossible: give 1 … 12")
        if not all(1 <= h <= 255 for h in self.hidden) or len(self.hidden) > 8:
            raise InrlabError(f"hidden={self.hidden} is impossible: give at most 8 widths 1 … 255")
        if not 0 <= self.refine <= 8:
            raise InrlabError(f"refine={self.refine} is impossible: give 0 … 8")
        if not 1 <= self.arm_hidden <= 255:
            raise InrlabError(f"arm_hidden={self.arm_hidden} is impossible: give 1 … 255")
        if self.upsample not in UPSAMPLE:
            raise InrlabError(f"upsample={self.upsample!r} is unknown: choose {' or '.join(UPSAMPLE)}")


def level_shapes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """(rows, cols) of each latent level: ⌈h/2^k⌉ × ⌈w/2^k⌉."""
    return [(-(-h // 2**k), -(-w // 2**k)) for k in range(levels)]


class Synthesis(nn.Module):
    """Latents upsampled and stacked (1, L, H, W) → image (1, C, H, W)."""

    def __init__(self, spec: CodecSpec, channels: int):
        super().__init__()
        widths = [spec.levels, *spec.hidden, channels]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:],
                                                                 strict=True))
        self.refine = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate")
                                    for _ in range(spec.refine))
        for conv in self.refine:  # residual refinement starts as the identity
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _, l, h, w = z.shape
        t = z[0].reshape(l, h * w).T  # (H·W, L)
        for i, lin in enumerate(self.mlp):
            t = lin(t)
            if i < len(self.mlp) - 1:
                t = F.gelu(t)
        x = (t.T.reshape(1, -1, h, w) + 0.5)
        for conv in self.refine:
            x = x + conv(x)
        return x


def upsample(latents: list[torch.Tensor], h: int, w: int, mode: str) -> torch.Tensor:
    """Latent levels (h_k, w_k) → (1, L, h, w): each interpolated to h × w (level 0 as it is)."""
    ups = [y[None, None] if y.shape == (h, w) else
           F.interpolate(y[None, None], size=(h, w), mode=mode, align_corners=False)
           for y in latents]
    return torch.cat(ups, dim=1)


def context(y: torch.Tensor, parent: torch.Tensor | None) -> torch.Tensor:
    """Context features (h, w, 10) of level ``y`` (h, w) given its coarser ``parent`` (⌈h/2⌉,
    ⌈w/2⌉) or None: N, S, W, E (zero at anchors, (i + j) even), the parent and its N, S, W, E,
    the phase flag. Row (i, j) reads only anchors of ``y`` and the parent, so a decoder that has
    decoded those gets the same row."""
    h, w = y.shape
    p = F.pad(y, (1, 1, 1, 1))
    odd = ((torch.arange(h, device=y.device)[:, None] + torch.arange(w, device=y.device)) % 2
           ).to(y.dtype)
    same = [p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]
    same = [s * odd for s in same]
    if parent is None:
        par = [torch.zeros_like(y)] * 5
    else:
        q = F.pad(parent, (1, 1, 1, 1))
        ii = torch.arange(h, device=y.device) // 2 + 1
        jj = torch.arange(w, device=y.device) // 2 + 1
        par = [q[ii + di][:, jj + dj] for di, dj in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
    return torch.stack(same + par + [odd], dim=-1)


class ContextModel(nn.Module):
    """Context features (M, 10) → Laplace mean μ (M,) and log-scale (M,), plus a per-level bias
    on the log-scale."""

    def __init__(self, hidden: int, levels: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(N_CONTEXT, hidden), nn.Linear(hidden, hidden),
                                     nn.Linear(hidden, 2)])
        self.level_bias = nn.Parameter(torch.zeros(levels))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, c: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = c
        for i, lin in enumerate(self.layers):
            t = lin(t)
            if i < len(self.layers) - 1:
                t = torch.relu(t)
        return t[..., 0], t[..., 1] + self.level_bias[level]


def laplace_bits(y: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """−log2 P(ŷ) elementwise, P = F(ŷ + ½) − F(ŷ − ½) under Laplace(μ, b = exp(log_scale)),
    computed on the side of the mode where the CDF difference does not cancel."""
    b = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
    d = (y - mu).abs()
    # for d ≥ ½: P = ½ (e^{−(d−½)/b} − e^{−(d+½)/b}); for d < ½: P = 1 − ½ (e^{−(½−d)/b} + e^{−(½+d)/b})
    lo, hi = torch.exp(-(d - 0.5).clamp_min(0) / b), torch.exp(-(d + 0.5) / b)
    tail = 0.5 * (lo - hi)
    centre = 1 - 0.5 * (torch.exp(-(0.5 - d).clamp_min(0) / b) + hi)
    p = torch.where(d >= 0.5, tail, centre)
    return -torch.log2(p.clamp_min(2**-30))


class LatentCodec(nn.Module):
    """Latent grids, synthesis and context model of one image (C, H, W)."""

    def __init__(self, spec: CodecSpec, channels: int, h: int, w: int):
        super().__init__()
        spec.validate()
        self.spec, self.channels, self.h, self.w = spec, channels, h, w
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(s))
                                        for s in level_shapes(h, w, spec.levels))
        self.synthesis = Synthesis(spec, channels)
        self.arm = ContextModel(spec.arm_hidden, spec.levels)

    def decode(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """The image (1, C, H, W) from (quantised) latents."""
        return self.synthesis(upsample(latents, self.h, self.w, self.spec.upsample))

    def rate_bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Total bits of the latents under the context model (a differentiable estimate)."""
        total = latents[0].new_zeros(())
        for k, y in enumerate(latents):
            parent = latents[k + 1] if k + 1 < len(latents) else None
            mu, s = self.arm(context(y, parent), k)
            total = total + laplace_bits(y, mu, s).sum()
        return total


def quantised(latents: nn.ParameterList, mode: str) -> list[torch.Tensor]:
    """ŷ: ``noise`` y + U(−½, ½); ``ste`` round(y) forward, identity gradient; ``round``."""
    if mode == "noise":
        return [y + torch.rand_like(y) - 0.5 for y in latents]
    if mode == "ste":
        return [y + (torch.round(y) - y).detach() for y in latents]
    return [torch.round(y) for y in latents]


def fit(image: np.ndarray, lmbda: float, spec: CodecSpec, steps: int, lr: float = 2e-2,
        ste_fraction: float = 0.1, seed: int = 0,
        progress: Callable[[int, float, float], None] | None = None) -> LatentCodec:
    """Train a codec of ``image`` (H, W, C) in [0, 1]: Adam on MSE + λ·bpp, cosine learning rate;
    the first (1 − ste_fraction) of the steps with noise, the rest straight-through rounding at
    lr/10. Returns the model (CPU, float32) with the lowest loss at rounded latents among the
    checks (every 100 steps and the last)."""
    if not (math.isfinite(lmbda) and lmbda > 0):
        raise InrlabError(f"lambda {lmbda} is impossible: give a finite number > 0 (larger: fewer bits)")
    if steps < 1:
        raise InrlabError(f"steps={steps} is impossible: give at least 1")
    if not np.all(np.isfinite(image)):
        raise InrlabError("the image has NaN or inf pixels: clean it first")
    torch.manual_seed(seed)
    h, w, c = image.shape
    target = torch.tensor(image.transpose(2, 0, 1)[None], dtype=torch.float32)
    model = LatentCodec(spec, c, h, w)
    pixels = h * w
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_noise = steps - int(round(steps * ste_fraction))
    best, best_loss = None, math.inf
    t0 = time.time()
    for step in range(steps):
        phase = "noise" if step < n_noise else "ste"
        frac = step / n_noise if phase == "noise" else (step - n_noise) / max(steps - n_noise, 1)
        base = lr if phase == "noise" else lr / 10
        for g in opt.param_groups:
            g["lr"] = base * 0.5 * (1 + math.cos(math.pi * frac))
        yq = quantised(model.latents, phase)
        mse = F.mse_loss(model.decode(yq), target)
        bpp = model.rate_bits(yq) / pixels
        loss = mse + lmbda * bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0 or step == steps - 1:
            with torch.no_grad():
                yr = quantised(model.latents, "round")
                m = F.mse_loss(model.decode(yr).clamp(0, 1), target).item()
                r = model.rate_bits(yr).item() / pixels
            if step >= n_noise - 1 and m + lmbda * r < best_loss:
                best_loss = m + lmbda * r
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress is not None:
                progress(step + 1, -10 * math.log10(max(m, 1e-12)), r)
    if best is not None:
        model.load_state_dict(best)
    model.train_seconds = time.time() - t0  # type: ignore[attr-defined]
    return model
