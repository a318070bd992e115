"""``inrlab compress`` (an image → the latent codec; a finished run folder → weight quantisation)
and ``inrlab decompress`` (either file → PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InrlabError

LATENT_OPTIONS = ("lmbda", "steps", "lr", "crop", "levels", "hidden", "refine", "arm_hidden",
                  "upsample", "seed")
WEIGHT_OPTIONS = ("bits", "per_channel", "codec")


def compress_parser(sub: Any) -> None:
    """Add ``compress`` and ``decompress``."""
    p = sub.add_parser(
        "compress", help="compress an image (latent codec) or a trained image run (its weights)",
        description="SOURCE an image (path, embedded name, kodak:NAME): train the latent codec "
        "(multiresolution latent grids + small synthesis MLP + context entropy model, "
        "quantisation-aware) with loss MSE + λ·bpp and write a .inrc file. SOURCE a finished "
        "image run folder: quantise and entropy-code its weights into a .inrz file. Either way "
        "the file is read back, decoded and scored (bpp from its size, PSNR, SSIM, MS-SSIM).")
    p.add_argument("source", help="an image, or a finished image run folder")
    p.add_argument("--out", help="file to write (image: SOURCE-l<λ>.inrc; run: "
                   "RUN/model-<bits>b[-pc]-<codec>.inrz)")
    g = p.add_argument_group("latent codec (SOURCE an image)")
    g.add_argument("--lambda", dest="lmbda", type=float, metavar="LAMBDA",
                   help="rate weight λ (default 4e-4; larger: fewer bits)")
    g.add_argument("--steps", type=int, help="training steps (default 1000)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 2e-2)")
    g.add_argument("--crop", type=int, help="code the centred crop×crop window")
    g.add_argument("--levels", type=int, help="latent levels (default 7)")
    g.add_argument("--hidden", type=int, nargs="+", help="synthesis hidden widths (default 16)")
    g.add_argument("--refine", type=int, help="residual 3×3 refinement convolutions (default 1)")
    g.add_argument("--arm-hidden", type=int, help="context-model width (default 8)")
    g.add_argument("--upsample", choices=["bilinear", "bicubic"], help="default bilinear")
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g = p.add_argument_group("weight quantisation (SOURCE a run folder)")
    g.add_argument("--bits", type=int, help="bits per weight (1 … 16, default 8)")
    g.add_argument("--per-channel", action="store_true", default=None,
                   help="one range per output channel")
    g.add_argument("--codec", choices=["lzma", "zlib"], help="entropy coder (default lzma)")
    p.set_defaults(func=cmd_compress, overrides=False)

    d = sub.add_parser("decompress", help="decode a .inrc or .inrz file to a PNG",
                       description="Decode FILE (reading nothing else) and write the 8-bit image.")
    d.add_argument("file", help="a .inrc (latent codec) or .inrz (weight-quantised run) file")
    d.add_argument("--out", help="PNG to write (default FILE with .png)")
    d.set_defaults(func=cmd_decompress, overrides=False)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [f"--{n.replace('_', '-').replace('lmbda', 'lambda')}" for n in names
            if getattr(args, n) is not None]


def cmd_compress(args: argparse.Namespace, extra: dict[str, str]) -> int:
    if Path(args.source).is_dir():
        wrong = _given(args, LATENT_OPTIONS)
        if wrong:
            raise InrlabError(f"{' '.join(wrong)} apply to images; {args.source} is a run folder "
                              f"(its weights take --bits, --per-channel, --codec)")
        from .weights import compress_run

        r = compress_run(args.source, args.bits or 8, bool(args.per_channel),
                         args.codec or "lzma", args.out)
        print(f"{r['file']}: {r['bytes']} bytes, {r['bpp']:.3f} bpp ({r['params']} weights at "
              f"{r['bits']} bits{', per channel' if r['per_channel'] else ''}, {r['codec']}); "
              f"PSNR {r['psnr']:.2f} dB (uncompressed {r['psnr_uncompressed']:.2f}), "
              f"SSIM {r['ssim']:.4f}")
        return 0
    wrong = _given(args, WEIGHT_OPTIONS)
    if wrong:
        raise InrlabError(f"{' '.join(wrong)} apply to run folders; {args.source} is an image "
                          f"(the latent codec takes --lambda, --steps, …)")
    from .image import compress_image
    from .latent import CodecSpec

    spec = CodecSpec(**{k: v for k, v in (
        ("levels", args.levels), ("hidden", tuple(args.hidden) if args.hidden else None),
        ("refine", args.refine), ("arm_hidden", args.arm_hidden),
        ("upsample", args.upsample)) if v is not None})
    lmbda = 4e-4 if args.lmbda is None else args.lmbda
    out = args.out or f"{Path(args.source.split(':')[-1]).stem}-l{lmbda:g}.inrc"
    r = compress_image(args.source, out, lmbda, spec, steps=args.steps or 1000,
                       lr=args.lr or 2e-2, crop=args.crop, seed=args.seed or 0,
                       progress=not args.quiet)
    h, w, _ = r["shape"]
    print(f"{r['file']}: {r['bytes']} bytes, {r['bpp']:.4f} bpp ({h}×{w}); PSNR {r['psnr']:.2f} "
          f"dB, SSIM {r['ssim']:.4f}, MS-SSIM {r['ms_ssim']:.4f}; encode {r['encode_s']:.0f} s, "
          f"decode {r['decode_s']:.2f} s, {r['macs_per_pixel']:.0f} MACs/pixel")
    return 0


def cmd_decompress(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .image import decompress

    out = args.out or str(Path(args.file).with_suffix(".png"))
    r = decompress(args.file, out)
    h, w, c = r["shape"]
    print(f"{r['out']}: {h}×{w}×{c} from {r['bytes']} bytes ({r['bpp']:.4f} bpp) in "
          f"{r['decode_s']:.2f} s")
    return 0
