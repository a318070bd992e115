"""Compress a trained image INR (COIN-style; normalization paper, Fig. 4): quantise its weights,
entropy-code them, and count bits per pixel from the file itself.

File layout (``.inrz``): the magic ``b"INRZ"``, one codec byte, then one compressed stream holding
a JSON header (model config fields that differ from the defaults, seed, bits, and per stored
tensor its index in the model's state dict and a per-channel flag; shapes come from the rebuilt
model) and the tensors' bytes in header order: float32 offsets and steps (one per output channel
with ``per_channel``, else one) and integer codes (uint8 up to 8 bits, uint16 above). Stored are
the parameters and the buffers the decoder cannot rebuild from the config and seed (e.g. frozen
batch-norm statistics), all quantised; rebuilt buffers (encoding frequencies, FFE's B) are not.

Quantisation: uniform affine, q = round((w − lo)/step), step = (hi − lo)/(2^bits − 1), per tensor
or per output channel (dim 0 of ≥ 2-D tensors). Entropy coding: ``lzma`` (default; the stdlib's
LZMA, a range coder with adaptive bit contexts that gets close to the codes' empirical entropy) or
``zlib`` (the stdlib's DEFLATE, Huffman codes of ≥ 1 bit per symbol). Both ship with CPython, so
no extra dependency; docs/compression.md compares them.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, flatten, set_fields
from ..errors import InrlabError
from ..models import build_model
from ..models.norms import set_norm_stats
from ..models.reparam import FourierLinear
from ..utils import seed_everything

MAGIC = b"INRZ"
CODECS = {"lzma": 1, "zlib": 2}


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=[
            {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    return zlib.compress(data, 9)


def _decompress(data: bytes, codec: str) -> bytes:
    if codec == "lzma":
        return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    return zlib.decompress(data)


def quantise(w: torch.Tensor, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Codes (w.shape, uint8/uint16), offsets lo and steps (c,) float32: w ≈ lo + q·step, with
    c = w.shape[0] for ``per_channel`` on a ≥ 2-D tensor, else c = 1."""
    a = w.detach().double().cpu().numpy()
    rows = a.reshape(a.shape[0], -1) if per_channel and a.ndim >= 2 else a.reshape(1, -1)
    lo, hi = rows.min(1), rows.max(1)
    step = np.where(hi > lo, (hi - lo) / (2**bits - 1), 1.0)
    q = np.rint((rows - lo[:, None]) / step[:, None])
    dtype = np.uint8 if bits <= 8 else np.uint16
    return (q.astype(dtype).reshape(a.shape), lo.astype(np.float32), step.astype(np.float32))


def dequantise(q: np.ndarray, lo: np.ndarray, step: np.ndarray) -> torch.Tensor:
    """The float32 tensor lo + q·step (row-wise when lo has one entry per row)."""
    rows = q.reshape(len(lo), -1).astype(np.float64) if len(lo) > 1 else q.reshape(1, -1)
    w = rows * step.astype(np.float64)[:, None] + lo.astype(np.float64)[:, None]
    return torch.tensor(w.reshape(q.shape), dtype=torch.float32)


def plain_copy(model: nn.Module) -> nn.Module:
    """The model with every FR layer folded into a plain linear (W = Λ·B), on the CPU."""
    import copy

    m = copy.deepcopy(model).cpu().float()
    for i, lin in enumerate(getattr(m, "linears", [])):
        if isinstance(lin, FourierLinear):
            flat = nn.Linear(lin.weight.shape[1], lin.weight.shape[0])
            with torch.no_grad():
                flat.weight.copy_(lin.weight)
                flat.bias.copy_(lin.bias)
            m.linears[i] = flat
    return m


def model_diff(model_cfg: ModelConfig) -> dict[str, Any]:
    """The dotted settings of ``model_cfg`` that differ from the defaults (kinds that differ from
    the default kinds, then each section's fields that differ from its kind's defaults)."""
    plain = flatten(asdict(ModelConfig()))
    kinds = {k: v for k, v in flatten(asdict(model_cfg)).items() if k.endswith(".kind")}
    base = ModelConfig()
    set_fields(base, kinds.items())
    default = flatten(asdict(base))
    return {k: v for k, v in flatten(asdict(model_cfg)).items()
            if default.get(k) != v or (k in kinds and plain.get(k) != v)}


def _fresh(model_cfg: dict[str, Any], seed: int, in_dim: int, out_dim: int) -> nn.Module:
    cfg = ModelConfig()
    set_fields(cfg, model_cfg.items())
    seed_everything(seed)
    return build_model(cfg, in_dim, out_dim)


def encode(model: nn.Module, model_cfg: ModelConfig, seed: int, bits: int = 8,
           per_channel: bool = False, codec: str = "lzma",
           image: tuple[int, int] | None = None) -> bytes:
    """The ``.inrz`` bytes of ``model`` (an INR built from ``model_cfg`` with ``seed``);
    ``image``: the (H, W) grid it renders on, stored so that ``render`` needs only the file."""
    if not 1 <= bits <= 16:
        raise InrlabError(f"--bits {bits} is out of range: give 1 … 16")
    if codec not in CODECS:
        raise InrlabError(f"unknown codec {codec!r}: choose one of {', '.join(CODECS)}")
    m = plain_copy(model)
    diff = model_diff(model_cfg)
    in_dim, out_dim = m.in_dim, m.out_dim
    rebuilt = _fresh(diff, seed, in_dim, out_dim).state_dict()
    keys = list(rebuilt)
    tensors, body = [], io.BytesIO()
    for name, t in m.state_dict().items():
        if name in rebuilt and torch.equal(rebuilt[name].float(), t.float()):
            continue  # rebuilt exactly from the config and seed (e.g. encoding frequencies)
        if name not in rebuilt or not t.is_floating_point():
            raise InrlabError(f"tensor {name} cannot be rebuilt from the config: this model "
                              f"cannot be compressed")
        if not torch.isfinite(t).all():
            raise InrlabError(f"tensor {name} holds NaN or inf (a diverged run): retrain it with "
                              f"a lower learning rate before compressing")
        q, lo, step = quantise(t, bits, per_channel)
        tensors.append([keys.index(name), 1 if len(lo) > 1 else 0])
        body.write(lo.tobytes() + step.tobytes() + q.tobytes())
    header = json.dumps({"model": diff, "seed": seed, "in": in_dim, "out": out_dim, "bits": bits,
                         "q": tensors, **({"image": list(image)} if image else {})},
                        separators=(",", ":")).encode()
    payload = len(header).to_bytes(4, "little") + header + body.getvalue()
    return MAGIC + bytes([CODECS[codec]]) + _compress(payload, codec)


def decode(data: bytes) -> tuple[nn.Module, dict[str, Any]]:
    """The eval-ready model (CPU, float32) and the header of ``.inrz`` bytes."""
    if data[:4] != MAGIC or len(data) < 5 or data[4] not in CODECS.values():
        raise InrlabError("not an inrlab .inrz file (bad magic or codec byte)")
    codec = {v: k for k, v in CODECS.items()}[data[4]]
    try:
        payload = _decompress(data[5:], codec)
        n = int.from_bytes(payload[:4], "little")
        head = json.loads(payload[4:4 + n])
    except (lzma.LZMAError, zlib.error, ValueError, EOFError):
        raise InrlabError(".inrz file is truncated or corrupt: compress the run again") from None
    model = _fresh(head["model"], head["seed"], head["in"], head["out"])
    state = model.state_dict()
    pos, bits = 4 + n, head["bits"]
    itemsize = 1 if bits <= 8 else 2
    keys = list(state)
    for i, per_channel in head["q"]:
        name = keys[i]
        shape = tuple(state[name].shape)
        count, c = math.prod(shape), shape[0] if per_channel else 1
        if pos + 8 * c + (1 if bits <= 8 else 2) * count > len(payload):
            raise InrlabError(".inrz file is truncated: compress the run again")
        lo = np.frombuffer(payload, np.float32, c, pos)
        step = np.frombuffer(payload, np.float32, c, pos + 4 * c)
        pos += 8 * c
        q = np.frombuffer(payload, np.uint8 if itemsize == 1 else np.uint16, count, pos)
        pos += itemsize * count
        state[name] = dequantise(q.reshape(shape), lo, step)
    model.load_state_dict(state)
    model.eval()
    set_norm_stats(model, "frozen")
    return model, head


def compress_run(run: str | Path, bits: int = 8, per_channel: bool = False, codec: str = "lzma",
                 out: str | Path | None = None) -> dict[str, Any]:
    """Compress a finished image run, write the file (default ``RUN/model-<bits>b.inrz``),
    decode it and score the decoded image: bpp from the file size, PSNR / SSIM / MS-SSIM."""
    from ..train.trainer import load_run

    res = load_run(run)
    sig = res.problem
    if not (sig.identity and len(sig.measurement_shape) == 2):
        raise InrlabError(f"{run} is not an image run: compression scores bits per pixel of images")
    data = encode(res.model, res.config.model, res.config.train.seed, bits, per_channel, codec,
                  tuple(sig.measurement_shape))
    path = Path(out) if out is not None else \
        Path(run) / f"model-{bits}b{'-pc' if per_channel else ''}-{codec}.inrz"
    path.write_bytes(data)
    model, _ = decode(path.read_bytes())
    scores = sig.evaluate(model, structural=True)
    size = path.stat().st_size
    return {"file": str(path), "bytes": size, "bpp": 8 * size / math.prod(sig.measurement_shape),
            "bits": bits, "per_channel": per_channel, "codec": codec,
            "params": sum(p.numel() for p in plain_copy(res.model).parameters()),
            "psnr": scores["psnr"], "ssim": scores.get("ssim"), "ms_ssim": scores.get("ms_ssim"),
            "psnr_uncompressed": res.metrics.get("psnr")}


def render(data: bytes, what: str = "the file") -> np.ndarray:
    """The image (H, W, C) float in [0, 1] that ``.inrz`` bytes decode to: the model evaluated
    on the image problem's grid (linspace(−1, 1) per axis, outputs in [−1, 1])."""
    from ..models import predict

    model, head = decode(data)
    if "image" not in head:
        raise InrlabError(f"{what} was written before .inrz files stored their image size: "
                          f"compress the run again")
    h, w = head["image"]
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        out = predict(model, coords).float().numpy()
    return np.clip((out.reshape(h, w, -1) + 1) / 2, 0, 1)


def pillow_curve(image: np.ndarray, fmt: str, qualities: list[int]) -> list[dict[str, float]]:
    """Rate–distortion points of Pillow's ``fmt`` (``JPEG`` or ``WEBP``) for ``image`` (H, W, C)
    in [0, 1]: bpp from the encoded size, PSNR / SSIM of the decoded image."""
    from PIL import Image as PILImage

    from ..train.metrics import psnr, ssim

    u8 = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    pil = PILImage.fromarray(u8.squeeze(-1) if u8.shape[-1] == 1 else u8)
    h, w = u8.shape[:2]
    points = []
    for q in qualities:
        buf = io.BytesIO()
        pil.save(buf, format=fmt, quality=q)
        dec = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert(pil.mode), np.float64)
        dec = dec.reshape(h, w, -1) / 255.0
        points.append({"quality": q, "bpp": 8 * len(buf.getvalue()) / (h * w),
                       "psnr": psnr(dec, image, 1.0), "ssim": ssim(dec, image)})
    return points
