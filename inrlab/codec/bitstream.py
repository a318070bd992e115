"""The latent codec's file (``.inrc``): network quantisation, range coding with the context
model, and a decoder that reads nothing but the file.

Layout (little endian): ``b"INRC"``, version byte (``VERSION``), image height and width (uint16),
channels (uint8), the architecture (levels, refine, arm_hidden, upsample index, the number of
hidden synthesis layers and their widths: uint8 each), the latents' symbol range lo, hi (int16),
one step exponent per network group (synthesis weights, synthesis biases, context weights, context
biases: uint8 e, step 2^−e), one Laplace scale index per network tensor (uint8), the payload's
byte count (uint32), then the payload: one range-coded stream (``constriction``'s RangeEncoder,
its 32-bit words little endian with trailing zero bytes dropped) holding the network tensors'
integer codes (each tensor under a zero-mean quantised Laplace of its header scale) and then the
latents, level L−1 down to 0, anchors before the rest, each under the Laplace the context model
predicts from what is already decoded. bits per pixel = 8 × file bytes / (H·W).

The decoder's distributions are computed from integers and power-of-two steps with elementwise
float64 operations in a fixed order (no BLAS reduction, no exp: the scale is an index into a
fixed table), so the encoder and decoder derive the same numbers. Why ``constriction``: a
maintained range/ANS coder (Rust, NumPy wheels on PyPI) with vectorised quantised-Laplace models
that take a mean and scale per symbol, which is what a context model needs; ``torchac`` wants a
CDF table per symbol and has no wheels.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InrlabError
from .latent import (
    LOG_SCALE_MAX,
    LOG_SCALE_MIN,
    N_SCALES,
    UPSAMPLE,
    CodecSpec,
    LatentCodec,
    Synthesis,
    context,
    laplace_bits,
    level_shapes,
    upsample,
)

MAGIC, VERSION = b"INRC", 1
GROUPS = ("synthesis.weight", "synthesis.bias", "arm.weight", "arm.bias")
STEP_EXPONENTS = range(0, 16)  # network steps 2^-e
MAX_CODE = 2**15 - 1  # network codes lie in [−MAX_CODE, MAX_CODE]
SCALES = np.array([math.exp(LOG_SCALE_MIN + i * (LOG_SCALE_MAX - LOG_SCALE_MIN) / (N_SCALES - 1))
                   for i in range(N_SCALES)])


def scale_index(log_scale: np.ndarray) -> np.ndarray:
    """Index into ``SCALES`` nearest to each log-scale (clipped to the table)."""
    t = (log_scale - LOG_SCALE_MIN) * ((N_SCALES - 1) / (LOG_SCALE_MAX - LOG_SCALE_MIN))
    return np.clip(np.rint(t), 0, N_SCALES - 1).astype(np.int64)


def group_of(name: str) -> int:
    """The network group (index into ``GROUPS``) of parameter ``name`` of a ``LatentCodec``."""
    module = "synthesis" if name.startswith("synthesis.") else "arm"
    return GROUPS.index(f"{module}.{'weight' if name.endswith('weight') else 'bias'}")


def network_names(model: LatentCodec) -> list[str]:
    """The network tensors in file order (every parameter but the latents)."""
    return [n for n, _ in model.named_parameters() if not n.startswith("latents.")]


def laplace_code_bits(q: np.ndarray) -> tuple[int, float]:
    """The best scale index for zero-mean integer codes ``q`` and their bits under it."""
    values, counts = np.unique(q, return_counts=True)
    v = torch.tensor(values, dtype=torch.float64)[None, :]
    s = torch.log(torch.tensor(SCALES))[:, None]
    bits = (laplace_bits(v, torch.zeros(()), s) * torch.tensor(counts)).sum(1)
    i = int(bits.argmin())
    return i, float(bits[i])


@dataclass
class Networks:
    """Quantised network tensors: codes per name (int64 arrays), step exponents per group."""

    codes: dict[str, np.ndarray]
    exponents: list[int]

    def value(self, name: str) -> torch.Tensor:
        """The dequantised tensor (float64; exact: codes times a power of two)."""
        e = self.exponents[group_of(name)]
        return torch.tensor(self.codes[name], dtype=torch.float64) * 2.0**-e


def _codes(w: torch.Tensor, e: int) -> np.ndarray | None:
    q = np.rint(w.detach().double().numpy() * 2.0**e)
    return None if np.abs(q).max(initial=0) > MAX_CODE else q.astype(np.int64)


def quantise_networks(model: LatentCodec, target: torch.Tensor, lmbda: float) -> Networks:
    """Per group, the step 2^−e minimising MSE + λ·bpp (the group's bits plus, for the context
    model, the latents' bits under its quantised weights), the other groups at full precision."""
    names = network_names(model)
    params = dict(model.named_parameters())
    if not all(torch.isfinite(p).all() for p in params.values()):
        raise InrlabError("the codec's latents or weights hold NaN or inf (the fit diverged): "
                          "lower --lr or --lambda")
    pixels = model.h * model.w
    y = [torch.round(p.detach()) for p in model.latents]
    chosen: list[int] = []
    for g in range(len(GROUPS)):
        members = [n for n in names if group_of(n) == g]
        best, best_e = math.inf, None
        for e in STEP_EXPONENTS:
            codes = {n: _codes(params[n], e) for n in members}
            if any(c is None for c in codes.values()):
                continue
            bits = sum(laplace_code_bits(c)[1] for c in codes.values())
            with torch.no_grad():
                saved = {n: params[n].detach().clone() for n in members}
                for n in members:
                    params[n].copy_(torch.tensor(codes[n] * 2.0**-e, dtype=torch.float32))
                if g < 2:
                    cost = F.mse_loss(model.decode(y).clamp(0, 1), target).item()
                else:
                    cost = lmbda * model.rate_bits(y).item() / pixels
                for n in members:
                    params[n].copy_(saved[n])
            cost += lmbda * bits / pixels
            if cost < best:
                best, best_e = cost, e
        if best_e is None:
            raise InrlabError("network weights too large to quantise: the fit diverged")
        chosen.append(best_e)
    codes = {n: _codes(params[n], chosen[group_of(n)]) for n in names}
    return Networks(codes, chosen)  # type: ignore[arg-type]


def arm_exact(c: torch.Tensor, arm: list[tuple[torch.Tensor, torch.Tensor]], level_bias: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """The context model on features ``c`` (M, 10) float64 in a fixed elementwise order:
    Laplace means (M,) and indices into ``SCALES`` (M,). ``arm``: (weight (out, in), bias) per
    layer, float64."""
    t = c
    for i, (wt, b) in enumerate(arm):
        acc = b.expand(t.shape[0], -1).clone()
        for j in range(wt.shape[1]):
            acc = acc + t[:, j:j + 1] * wt[:, j]
        t = acc.clamp_min(0) if i < len(arm) - 1 else acc
    mu = t[:, 0].numpy()
    return mu, scale_index((t[:, 1] + level_bias).numpy())


def _phases(h: int, w: int) -> list[np.ndarray]:
    odd = (np.arange(h)[:, None] + np.arange(w)) % 2 == 1
    return [~odd, odd]


class _Arm:
    """The dequantised context model of a ``Networks`` (float64 tensors)."""

    def __init__(self, nets: Networks, spec: CodecSpec):
        self.layers = [(nets.value(f"arm.layers.{i}.weight"), nets.value(f"arm.layers.{i}.bias"))
                       for i in range(3)]
        self.level_bias = nets.value("arm.level_bias").numpy()
        self.spec = spec

    def params(self, ys: list[torch.Tensor], k: int, sel: np.ndarray) -> tuple[np.ndarray,
                                                                               np.ndarray]:
        parent = ys[k + 1] if k + 1 < len(ys) else None
        c = context(ys[k], parent)[torch.from_numpy(sel)]
        mu, idx = arm_exact(c, self.layers, float(self.level_bias[k]))
        return mu, SCALES[idx]


def synthesise(spec: CodecSpec, channels: int, h: int, w: int, nets: Networks,
               latents: list[torch.Tensor]) -> np.ndarray:
    """The decoded image (H, W, C) float32 in [0, 1] from dequantised networks and integer
    latents (float32 arithmetic): the decoder's output, computed the same way on both sides."""
    syn = Synthesis(spec, channels)
    with torch.no_grad():
        for n, p in syn.named_parameters():
            p.copy_(nets.value(f"synthesis.{n}").float())
        z = upsample([y.float() for y in latents], h, w, spec.upsample)
        x = syn(z).clamp(0, 1)
    return x[0].permute(1, 2, 0).contiguous().numpy()


def _latent_range(latents: list[torch.Tensor]) -> tuple[int, int]:
    lo = min(int(y.min()) for y in latents)
    hi = max(int(y.max()) for y in latents)
    if lo < -(2**15) or hi > 2**15 - 1:
        raise InrlabError("latents outside the int16 range: the fit diverged")
    return lo, max(hi, lo + 1)  # the coder needs at least two symbols


def _header(spec: CodecSpec, channels: int, h: int, w: int, lo: int, hi: int,
            nets: Networks, scales: list[int]) -> bytes:
    return (MAGIC + struct.pack("<BHHBBBBBB", VERSION, h, w, channels, spec.levels, spec.refine,
                                spec.arm_hidden, UPSAMPLE.index(spec.upsample), len(spec.hidden))
            + bytes(spec.hidden) + struct.pack("<hh", lo, hi) + bytes(nets.exponents)
            + bytes(scales))


def encode(model: LatentCodec, nets: Networks) -> tuple[bytes, np.ndarray]:
    """The ``.inrc`` bytes of a trained codec with quantised networks, and the decoder's output
    (H, W, C) float32 for them."""
    import constriction

    spec, h, w, c = model.spec, model.h, model.w, model.channels
    ys = [torch.round(p.detach()).double() for p in model.latents]
    lo, hi = _latent_range(ys)
    enc = constriction.stream.queue.RangeEncoder()
    scales = []
    for n in network_names(model):
        q = nets.codes[n].reshape(-1)
        i, _ = laplace_code_bits(q)
        scales.append(i)
        m = constriction.stream.model.QuantizedLaplace(-MAX_CODE, MAX_CODE)
        enc.encode(q.astype(np.int32), m, np.zeros(q.size), np.full(q.size, SCALES[i]))
    arm = _Arm(nets, spec)
    lat = constriction.stream.model.QuantizedLaplace(lo, hi)
    for k in reversed(range(spec.levels)):
        for sel in _phases(*ys[k].shape):
            if not sel.any():
                continue
            mu, sc = arm.params(ys, k, sel)
            enc.encode(ys[k].numpy()[sel].astype(np.int32), lat, mu, sc)
    payload = enc.get_compressed().astype("<u4").tobytes().rstrip(b"\0")
    head = _header(spec, c, h, w, lo, hi, nets, scales)
    data = head + struct.pack("<I", len(payload)) + payload
    return data, synthesise(spec, c, h, w, nets, ys)


class _Reader:
    """Sequential reads from a file's bytes; running out is a one-line error."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, fmt: str) -> tuple:
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.data):
            raise InrlabError(f"{self.what} is truncated (header ends early): re-encode the image")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return out


def decode(data: bytes, what: str = "the bitstream") -> np.ndarray:
    """The decoded image (H, W, C) float32 of ``.inrc`` bytes (nothing else is read)."""
    import constriction

    if data[:4] != MAGIC:
        raise InrlabError(f"{what} is not an inrlab latent-codec file (bad magic)")
    r = _Reader(data, what)
    r.take("<4s")
    (version,) = r.take("<B")
    if version != VERSION:
        raise InrlabError(f"{what} is bitstream version {version}; this inrlab reads version "
                          f"{VERSION}: decode it with the inrlab that wrote it")
    h, w, c, levels, refine, arm_hidden, up, n_hidden = r.take("<HHBBBBBB")
    hidden = r.take(f"<{n_hidden}B")
    if up >= len(UPSAMPLE) or c not in (1, 3) or min(h, w) < 1:
        raise InrlabError(f"{what} has an invalid header: re-encode the image")
    spec = CodecSpec(levels, tuple(hidden), refine, arm_hidden, UPSAMPLE[up])
    spec.validate()
    lo, hi = r.take("<hh")
    exponents = list(r.take(f"<{len(GROUPS)}B"))
    model = LatentCodec(spec, c, h, w)  # shapes only: every value comes from the file
    names = network_names(model)
    scales = r.take(f"<{len(names)}B")
    (n,) = r.take("<I")
    payload = data[r.pos:]
    if len(payload) != n:
        raise InrlabError(f"{what} is truncated or padded ({len(payload)} payload bytes, the header "
                          f"says {n}): re-encode the image")
    if lo > hi or max(scales, default=0) >= N_SCALES or max(exponents) > max(STEP_EXPONENTS):
        raise InrlabError(f"{what} has an invalid header: re-encode the image")
    words = np.frombuffer(payload + b"\0" * (-n % 4), "<u4").astype(np.uint32)
    dec = constriction.stream.queue.RangeDecoder(words)
    shapes = dict((k, tuple(p.shape)) for k, p in model.named_parameters())
    codes = {}
    for name, i in zip(names, scales, strict=True):
        size = math.prod(shapes[name])
        m = constriction.stream.model.QuantizedLaplace(-MAX_CODE, MAX_CODE)
        q = dec.decode(m, np.zeros(size), np.full(size, SCALES[i]))
        codes[name] = np.asarray(q, np.int64).reshape(shapes[name])
    nets = Networks(codes, exponents)
    arm = _Arm(nets, spec)
    ys = [torch.zeros(s, dtype=torch.float64) for s in level_shapes(h, w, levels)]
    lat = constriction.stream.model.QuantizedLaplace(lo, hi)
    for k in reversed(range(levels)):
        for sel in _phases(*ys[k].shape):
            if not sel.any():
                continue
            mu, sc = arm.params(ys, k, sel)
            vals = dec.decode(lat, mu, sc)
            ys[k][torch.from_numpy(sel)] = torch.tensor(np.asarray(vals), dtype=torch.float64)
    return synthesise(spec, c, h, w, nets, ys)
