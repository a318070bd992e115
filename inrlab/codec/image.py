"""Compress an image with the latent codec, decompress a file: the entry points behind
``inrlab compress IMAGE`` and ``inrlab decompress FILE`` (docs/compression.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InrlabError
from . import bitstream
from .latent import CodecSpec, fit, level_shapes


def load_image(source: str, crop: int | None = None) -> np.ndarray:
    """``source`` (path, embedded name, ``kodak:NAME``) as (H, W, C) float64 in [0, 1], C = 1 or
    3; ``crop``: the centred crop×crop window (the quick tier's 256-px Kodak crops)."""
    from ..problems.image import load_array, to_unit

    a = to_unit(load_array(source))
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] not in (1, 3):
        raise InrlabError(f"{source}: {a.shape[2]} channels; the codec takes gray or RGB images")
    h, w = a.shape[:2]
    if crop is not None:
        if not 8 <= crop <= min(h, w):
            raise InrlabError(f"--crop {crop} is impossible for a {h}×{w} image: give 8 … "
                              f"{min(h, w)}")
        a = a[(h - crop) // 2:(h - crop) // 2 + crop, (w - crop) // 2:(w - crop) // 2 + crop]
    if max(a.shape[:2]) > 2**16 - 1 or min(a.shape[:2]) < 8:
        raise InrlabError(f"{source}: {h}×{w} pixels; the codec takes 8 … 65535 per side")
    return a


def macs_per_pixel(spec: CodecSpec, channels: int, h: int, w: int) -> dict[str, float]:
    """Multiply-accumulates per decoded pixel: synthesis (MLP + 3×3 refinements), upsampling
    (bilinear 4 / bicubic 16 taps per upsampled level), context model (per latent, times latents
    per pixel)."""
    widths = [spec.levels, *spec.hidden, channels]
    mlp = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    refine = spec.refine * 9 * channels * channels
    taps = 16 if spec.upsample == "bicubic" else 4
    up = taps * (spec.levels - 1)
    a = spec.arm_hidden
    arm = 10 * a + a * a + a * 2
    latents = sum(r * c for r, c in level_shapes(h, w, spec.levels)) / (h * w)
    return {"synthesis": mlp + refine, "upsampling": up, "context": arm * latents,
            "total": mlp + refine + up + arm * latents}


def check_out(out: Path, inputs: list[Path]) -> None:
    """Refuse to write ``out`` onto one of ``inputs`` or over a file that is not an inrlab
    codec file (one line each)."""
    for p in inputs:
        if p.exists() and out.exists() and out.resolve() == p.resolve():
            raise InrlabError(f"--out {out} is the input file: choose another --out")
    if out.is_dir():
        raise InrlabError(f"--out {out} is a folder: give a file name")
    if out.exists() and out.suffix not in (".inrc", ".png") and out.read_bytes()[:4] not in (
            bitstream.MAGIC, b"INRZ"):
        raise InrlabError(f"--out {out} exists and is not an inrlab file: choose another --out")


def score(decoded: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """PSNR / SSIM / MS-SSIM of the 8-bit decoded image (what a user gets) against ``target``."""
    from ..train.metrics import ms_ssim, psnr, ssim

    u8 = np.rint(np.clip(decoded, 0, 1) * 255) / 255
    return {"psnr": psnr(u8, target, 1.0), "ssim": ssim(u8, target) if min(u8.shape[:2]) >= 11
            else None, "ms_ssim": ms_ssim(u8, target)}


def compress_image(source: str, out: str | Path, lmbda: float, spec: CodecSpec | None = None,
                   steps: int = 1000, lr: float = 2e-2, crop: int | None = None, seed: int = 0,
                   progress: bool = False) -> dict[str, Any]:
    """Train the latent codec on ``source`` (loss MSE + λ·bpp), write the ``.inrc`` file, read it
    back, decode it and score it: bpp = 8 × file bytes / pixels, PSNR / SSIM / MS-SSIM of the
    decoded 8-bit image, encode and decode seconds, MACs per decoded pixel."""
    spec = spec or CodecSpec()
    spec.validate()
    out = Path(out)
    check_out(out, [Path(source)])
    image = load_image(source, crop)
    h, w, c = image.shape
    t0 = time.time()
    report = None
    if progress:
        def report(step: int, p: float, r: float) -> None:
            print(f"  step {step}/{steps}: {p:.2f} dB at {r:.3f} bpp (latents, estimated)",
                  flush=True)
    model = fit(image, lmbda, spec, steps, lr=lr, seed=seed, progress=report)
    target = torch.tensor(image.transpose(2, 0, 1)[None], dtype=torch.float32)
    nets = bitstream.quantise_networks(model, target, lmbda)
    data, expected = bitstream.encode(model, nets)
    encode_s = time.time() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    t1 = time.time()
    decoded = bitstream.decode(out.read_bytes(), str(out))
    decode_s = time.time() - t1
    if not np.array_equal(decoded, expected):
        raise InrlabError(f"{out}: the decoded image differs from the encoder's: report this bug")
    size = out.stat().st_size
    return {"file": str(out), "source": source, "crop": crop, "shape": [h, w, c],
            "lambda": lmbda, "steps": steps, "bytes": size, "bpp": 8 * size / (h * w),
            **score(decoded, image), "encode_s": encode_s, "decode_s": decode_s,
            "macs_per_pixel": macs_per_pixel(spec, c, h, w)["total"],
            "spec": {"levels": spec.levels, "hidden": list(spec.hidden), "refine": spec.refine,
                     "arm_hidden": spec.arm_hidden, "upsample": spec.upsample}}


def decompress(path: str | Path, out: str | Path) -> dict[str, Any]:
    """Decode a ``.inrc`` (latent codec) or ``.inrz`` (weight-quantised INR) file to an 8-bit PNG."""
    from PIL import Image

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise InrlabError(f"{path} not found: give a .inrc or .inrz file")
    data = path.read_bytes()
    if data[:4] not in (bitstream.MAGIC, b"INRZ"):
        raise InrlabError(f"{path} is not an inrlab .inrc or .inrz file (bad magic)")
    check_out(out, [path])
    if out.suffix.lower() != ".png":
        raise InrlabError(f"--out {out}: decompress writes PNG, name it *.png")
    t0 = time.time()
    if data[:4] == b"INRZ":
        from .weights import render

        image = render(data, str(path))
    else:
        image = bitstream.decode(data, str(path))
    seconds = time.time() - t0
    u8 = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(u8 if u8.shape[2] == 3 else u8[..., 0]).save(out, format="PNG")
    h, w = image.shape[:2]
    return {"file": str(path), "out": str(out), "shape": list(image.shape), "bytes": len(data),
            "bpp": 8 * len(data) / (h * w), "decode_s": seconds}
