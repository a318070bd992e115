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
from .fresh.cli import add_scoring_options, fresh_for_fit, fresh_parser
from .ntk.cli import ntk_parser
from .problems.base import fmt_metric
from .problems.nerf.cli import render_parser, scene_parser
from .sweep.cli import removed_parser, report_parser, sweep_parser

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

    print(f"{cfg.preset} on {res.problem.name}: {res.problem.headline(m)}, {m.get('steps')} steps "
          f"in {m.get('seconds', 0):.1f} s")
    more = [f"{k[:-5]} {fmt_metric(v)}" for k, v in m.items() if k.endswith("_psnr") and isinstance(v, float)]
    if more:  # a problem's other PSNRs: measurements, baselines (FBP, SART, zero-filled, TV …)
        print(f"  other PSNRs (dB): {', '.join(more)}")
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

    check_bench_numbers(args)
    return BENCHMARKS[args.bench][1](args)


def check_bench_numbers(args: argparse.Namespace) -> None:
    """Every numeric benchmark option (repeats, sizes, points, …) must be a finite number > 0;
    only ``--start`` (the first FreSh candidate) may be any finite number."""
    import math

    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if not math.isfinite(v) or (v <= 0 and name != "start"):
                raise InrlabError(f"--{name.replace('_', '-')} {v} is impossible: give a finite "
                                  f"number{'' if name == 'start' else ' > 0'}")


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
                                        ntk_parser, sweep_parser, report_parser, removed_parser,
                                        fresh_parser, scene_parser, render_parser,
                                        _compress_parser]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inrlab", description="Implicit neural representations "
                                     "and their spectral bias.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    known, dotted = split_overrides(sub, argv)
    args, rest = parser.parse_known_args(known)
    try:
        if (rest or dotted) and not getattr(args, "overrides", False):
            raise InrlabError(f"unrecognized arguments: {' '.join(rest + dotted)}")
        if rest:
            raise InrlabError(f"unexpected argument {rest[0]!r}: options look like --train.lr 1e-3")
        extra = parse_overrides(dotted) if dotted else {}
        return args.func(args, extra)
    except DivergedError as e:
        print(f"inrlab: error: {e}", file=sys.stderr)
        return 3
    except InrlabError as e:
        print(f"inrlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inrlab: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"inrlab: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # torch reports failed allocations as RuntimeError
        if not is_out_of_memory(e):
            raise
        print(f"inrlab: error: {OUT_OF_MEMORY} ({str(e).strip().splitlines()[0][:160]})",
              file=sys.stderr)
        return 2
    except OSError as e:  # the environment, not inrlab: disk full, permissions, ...
        where = f" {e.filename!r}" if e.filename else ""
        print(f"inrlab: error: cannot access{where}: {e.strerror or e}: free disk space or fix the "
              f"permissions, then rerun (finished results are kept)", file=sys.stderr)
        return 2


OUT_OF_MEMORY = ("out of memory: lower signal.size, set train.batch_size, use a smaller model or "
                 "fewer points")


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is torch's (or the allocator's) report of a failed allocation."""
    text = str(e).lower()
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def split_overrides(sub: Any, argv: list[str]) -> tuple[list[str], list[str]]:
    """Take the ``--dotted.path VALUE`` config overrides out of ``argv`` before argparse sees it.

    argparse would otherwise hand an override's value to an optional positional (``fit --config
    f.toml --model.width 16`` made ``16`` the SIGNAL). Options the command declares keep their
    own arity; every other ``--name`` takes the next token as its value (even ``-1``)."""
    if not argv or argv[0] not in sub.choices:
        return argv, []
    declared = _declared_options(sub.choices[argv[0]])
    known, dotted = argv[:1], []
    i = 1
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if tok == "--":
            known += argv[i:]
            break
        if tok.startswith("--") and name not in declared:
            take = 1 if "=" in tok or i + 1 >= len(argv) else 2
            dotted += argv[i:i + take]
            i += take
            continue
        known.append(tok)
        nargs = declared.get(name, 0) if tok.startswith("-") and "=" not in tok else 0
        while nargs and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            i += 1
            known.append(argv[i])
            nargs -= 1
        i += 1
    return known, dotted


def _declared_options(p: argparse.ArgumentParser) -> dict[str, int]:
    """Option string → how many values it takes (a large number for ``+``/``*``), including the
    options of nested sub-commands (``sweep run``, ``bench step-time``)."""
    out: dict[str, int] = {}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out.update(_declared_options(child))
            continue
        n = action.nargs
        count = 0 if n == 0 else 1 if n in (None, "?") else 10**6 if n in ("+", "*") else int(n)
        for opt in action.option_strings:
            out[opt] = count
    return out


if __name__ == "__main__":
    sys.exit(main())
