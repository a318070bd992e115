"""``inrlab ntk SIGNAL --preset P [--compare P2 …]``: eNTK spectra of models on a signal."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_config import build_config
from ..config import PRESETS, has_field
from ..errors import InrlabError
from ..limits import check_memory
from ..problems import load_problem
from ..utils import prepare_output_folder
from .kernel import METHODS
from .parts import DEFINITIONS
from .points import SAMPLINGS, sample_points


def ntk_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ntk", help="eNTK spectra of one or more presets on a signal",
        description="Compute the empirical NTK of a preset (and --compare others) on N points of "
        "SIGNAL, write spectrum.json (eigenvalues, lambda_min, lambda_max, condition, mean, "
        "variance per model) and plots. Config fields (--model.width 64 …) apply to every model "
        "whose kinds have them (--model.encoding.sigma only to Fourier features).")
    p.add_argument("signal", help="problem: image path, embedded name, sines:5,10, ct:…, mri:…")
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--compare", nargs="+", default=[], choices=sorted(PRESETS), metavar="PRESET",
                   help="more presets on the same points")
    p.add_argument("--points", type=int, default=256, help="number of eNTK points (default 256)")
    p.add_argument("--sampling", choices=SAMPLINGS, default="regular",
                   help="regular sub-grid (eigenvector frequencies available) or seeded random")
    p.add_argument("--seed", type=int, default=0, help="seed of random point sampling")
    p.add_argument("--method", choices=METHODS, default="auto")
    p.add_argument("--definition", choices=list(DEFINITIONS), default="full",
                   help="which parameters form the kernel: full (default), hidden (not the "
                   "output layer), head (output layer only), no_affine (norm γ, β fixed), "
                   "ntk_param (weight shares ÷ fan-in, the NTK parameterization)")
    p.add_argument("--steps", type=int, default=0, help="train each model this many steps first")
    p.add_argument("--out", help="output folder (default ntk/SIGNAL)")
    p.add_argument("--overwrite", action="store_true", help="replace the results in --out")
    p.set_defaults(func=cmd_ntk, overrides=True)


def kernel_bytes(points: int) -> int:
    """Bytes of an eNTK on ``points`` points: the float64 N × N kernel, its eigenvectors and a
    working copy for the eigensolver."""
    return 3 * 8 * points**2


def cmd_ntk(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .compare import model_for, model_spectrum, print_summary, write_comparison

    names = [args.preset] + [c for c in args.compare if c != args.preset]
    # a field of one encoding/activation kind (--model.encoding.sigma) applies to the models whose
    # kind has it; a field no compared model has is still an error
    cfgs = {n: build_config(args.signal, n, None, extra, optional=extra) for n in names}
    for path in extra:
        if not any(has_field(c, path) for c in cfgs.values()):
            build_config(args.signal, args.preset, None, {path: extra[path]})  # raises, one line
    signal = load_problem(cfgs[args.preset].signal)
    if args.steps < 0:
        raise InrlabError(f"--steps {args.steps} is negative: give 0 (initialization) or more")
    out = Path(args.out or f"ntk/{Path(signal.name).stem.replace(':', '_')}")
    check_memory(f"the eNTK of {args.points:,} points", kernel_bytes(args.points),
                 "use fewer --points")
    prepare_output_folder(out, "spectrum.json", "ntk", args.overwrite)
    if args.definition != "full" and not getattr(signal, "identity", False):
        raise InrlabError(f"--definition {args.definition} needs a directly fitted signal: "
                          f"{signal.name!r} is measured through an operator (use full)")
    idx, grid_shape = sample_points(signal, args.points, args.sampling, args.seed)
    results = {}
    for name, cfg in cfgs.items():
        model, metrics = model_for(cfg, signal, args.steps)
        on = (signal, idx) if args.definition == "full" else signal.points(idx)
        results[name] = {"preset": name, **model_spectrum(model, on, grid_shape, args.method,
                                                          definition=args.definition),
                         **({"train_metrics": metrics} if metrics else {})}
    meta = {"signal": signal.name, "points": len(idx), "sampling": args.sampling,
            "grid_shape": grid_shape, "seed": args.seed, "steps": args.steps,
            "definition": args.definition,
            "overrides": extra}
    write_comparison(results, out, meta, f"{signal.name}, {len(idx)} points, step {args.steps}")
    print_summary(results)
    print(f"wrote {out / 'spectrum.json'} and plots")
    return 0
