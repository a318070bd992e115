"""Command-line interface: ``inrlab fit``, ``presets``, ``fields``, ``bench …``, ``sweep …``, ``report``.

Any config field can be set with ``--dotted.path VALUE`` (or ``--dotted.path=VALUE``); a unique
suffix is enough (``--lr 1e-3``, ``--encoding.sigma 5``, ``--norm cross``). Errors in user input
print one line (``inrlab: error: …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cli_config import add_config_arguments, build_config, parse_overrides
from .config import DEFAULT_PRESET, PRESETS, flatten, preset
from .errors import DivergedError, InrlabError
from .experiments.cli import repro_parser
from .fresh.cli import add_scoring_options, fresh_for_fit, fresh_parser, validate_parser
from .ntk.cli import ntk_parser
from .sweep.cli import report_parser, sweep_parser

# ---------------------------------------------------------------------------- commands


def _fit_parser(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit an INR to a signal", allow_abbrev=False,
                       description="Fit an INR. SIGNAL: an image path, an embedded image name "
                       "(astronaut, camera, …) or a 1-D spec (sines:5,10,15[@N]). Any config field "
                       "can be given as --dotted.path VALUE (see `inrlab fields`).")
    add_config_arguments(p)
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--out", help="run folder (default runs/SIGNAL-PRESET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--fresh", metavar="FIELD=START:STOP:STEP",
                   help="score these values with FreSh first, then train the best "
                   "(fresh.json is saved into the run folder)")
    add_scoring_options(p, prefix="fresh-")
    p.set_defaults(func=cmd_fit, overrides=True)


def cmd_fit(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .train.trainer import run

    if args.steps is not None:
        extra["train.steps"] = str(args.steps)
    cfg = build_config(args.signal, args.preset, args.config, extra)
    fresh = fresh_for_fit(cfg, args.fresh, args) if args.fresh else None
    out = args.out or f"runs/{Path(cfg.signal.name).stem.replace(':', '_')}-{cfg.preset}-" \
                      f"{time.strftime('%Y%m%d-%H%M%S')}"
    res = run(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if fresh is not None:
        fresh.save(out)
    m = res.metrics

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"

    print(f"{cfg.preset} on {res.signal.name}: PSNR {fmt(m.get('psnr'))} dB "
          f"(train {fmt(m.get('psnr_train'))}, held-out {fmt(m.get('psnr_heldout'))}), "
          f"SSIM {fmt(m.get('ssim'))}, {m.get('steps')} steps in {m.get('seconds', 0):.1f} s")
    print(f"run folder: {out}")
    return 0


def _presets_parser(sub: Any) -> None:
    p = sub.add_parser("presets", help="list model presets")
    p.set_defaults(func=cmd_presets, overrides=False)


def cmd_presets(args: argparse.Namespace, extra: dict[str, str]) -> int:
    for name in PRESETS:
        cfg = preset(name)
        m = cfg.model
        print(f"{name:6s} encoding={m.encoding.kind:10s} activation={m.activation.kind:6s} "
              f"{m.depth}x{m.width}  lr={cfg.train.lr:g}")
    return 0


def _fields_parser(sub: Any) -> None:
    p = sub.add_parser("fields", help="list every config field with its default")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    p.set_defaults(func=cmd_fields, overrides=False)


def cmd_fields(args: argparse.Namespace, extra: dict[str, str]) -> int:
    for k, v in flatten(preset(args.preset).to_dict()).items():
        print(f"{k} = {v!r}")
    return 0


def _bench_parser(sub: Any) -> None:
    from .benchmarks import BENCHMARKS

    p = sub.add_parser("bench", help="performance benchmarks (print a table, write JSON)")
    bsub = p.add_subparsers(dest="bench", required=True)
    for name, (add, _) in BENCHMARKS.items():
        add(bsub.add_parser(name, help=add.__doc__))
    p.set_defaults(func=cmd_bench, overrides=False)


def cmd_bench(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .benchmarks import BENCHMARKS

    return BENCHMARKS[args.bench][1](args)


def _compress_parser(sub: Any) -> None:
    p = sub.add_parser("compress", help="quantise and entropy-code a trained image run; score it",
                       description="Post-training quantisation of RUN's weights (uniform, per "
                       "tensor or per output channel), entropy coding, bits per pixel from the "
                       "file size, then decode and score (PSNR, SSIM, MS-SSIM).")
    p.add_argument("run", help="a finished image run folder")
    p.add_argument("--bits", type=int, default=8, help="bits per weight (1 … 16, default 8)")
    p.add_argument("--per-channel", action="store_true", help="one range per output channel")
    p.add_argument("--codec", default="lzma", choices=["lzma", "zlib"], help="entropy coder")
    p.add_argument("--out", help="file to write (default RUN/model-<bits>b[-pc]-<codec>.inrz)")
    p.set_defaults(func=cmd_compress, overrides=False)


def cmd_compress(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .compress import compress_run

    r = compress_run(args.run, args.bits, args.per_channel, args.codec, args.out)
    print(f"{r['file']}: {r['bytes']} bytes, {r['bpp']:.3f} bpp ({r['params']} weights at "
          f"{r['bits']} bits{', per channel' if r['per_channel'] else ''}, {r['codec']}); "
          f"PSNR {r['psnr']:.2f} dB (uncompressed {r['psnr_uncompressed']:.2f}), "
          f"SSIM {r['ssim']:.4f}")
    return 0


# Each command module contributes one parser builder; later features append here.
PARSERS: list[Callable[[Any], None]] = [_fit_parser, _presets_parser, _fields_parser, _bench_parser,
                                        ntk_parser, sweep_parser, report_parser, repro_parser,
                                        fresh_parser, validate_parser, _compress_parser]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inrlab", description="Implicit neural representations "
                                     "and their spectral bias.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    args, rest = parser.parse_known_args(argv)
    try:
        if rest and not getattr(args, "overrides", False):
            raise InrlabError(f"unrecognized arguments: {' '.join(rest)}")
        extra = parse_overrides(rest) if rest else {}
        return args.func(args, extra)
    except DivergedError as e:
        print(f"inrlab: error: {e}", file=sys.stderr)
        return 3
    except InrlabError as e:
        print(f"inrlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
