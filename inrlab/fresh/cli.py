"""``inrlab fresh SIGNAL --preset P --sweep FIELD=START:STOP:STEP`` and the ``--fresh`` hook of
``inrlab fit`` (FreSh's pick against a real grid search: configs/papers/fresh_validation.toml)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..cli_config import add_config_arguments, build_config
from ..config import RunConfig, set_field
from ..utils import prepare_output_folder
from .select import FreshResult, parse_sweep, select
from .spectrum import BINNINGS


def add_scoring_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--inits, --bins, --binning (``prefix`` ``fresh-`` for ``inrlab fit``)."""
    p.add_argument(f"--{prefix}inits", type=int, default=10,
                   help="random initialisations per candidate (default 10)")
    p.add_argument(f"--{prefix}bins", type=int, default=64,
                   help="K, frequency bins of the spectrum vectors (default 64)")
    p.add_argument(f"--{prefix}binning", choices=BINNINGS, default="diagonal",
                   help="diagonal (reference, default) or radial")


def fresh_parser(sub: Any) -> None:
    p = sub.add_parser("fresh", help="FreSh: rank values of a model field before training",
                       description="Score candidate values of a numeric model field by the "
                       "Wasserstein distance between the spectrum of the untrained model's output "
                       "and the target's (FreSh). Prints the ranking, writes fresh.json and "
                       "fresh.png. Other config fields: --dotted.path VALUE.")
    add_config_arguments(p)
    p.add_argument("--sweep", required=True, metavar="FIELD=START:STOP:STEP",
                   help="field and inclusive range (or FIELD=V1,V2,…), e.g. omega0_first=10:200:10")
    p.add_argument("--out", help="folder for fresh.json and fresh.png (default runs/fresh-…)")
    p.add_argument("--overwrite", action="store_true", help="replace the results in --out")
    add_scoring_options(p)
    p.add_argument("--seed", type=int, default=0, help="initialisation r uses seed+r")
    p.set_defaults(func=cmd_fresh, overrides=True)


def cmd_fresh(args: argparse.Namespace, extra: dict[str, str]) -> int:
    cfg = build_config(args.signal, args.preset, args.config, extra)
    path, values = parse_sweep(args.sweep, cfg)
    out = args.out or (f"runs/fresh-{Path(cfg.signal.name).stem.replace(':', '_')}-{cfg.preset}-"
                       f"{time.strftime('%Y%m%d-%H%M%S')}")
    prepare_output_folder(Path(out), "fresh.json", "FreSh", args.overwrite)
    res = select(cfg.signal.name, cfg, path, values,
                 inits=args.inits, bins=args.bins, binning=args.binning, seed=args.seed,
                 device=cfg.train.device)
    print(res.table())
    saved = res.save(out)
    print(f"best {path} = {res.best:g}; wrote {saved} and {Path(out) / 'fresh.png'}")
    return 0


def fresh_for_fit(cfg: RunConfig, spec: str, args: argparse.Namespace) -> FreshResult:
    """The ``inrlab fit --fresh`` hook: score, print the ranking, set the best value in ``cfg``."""
    path, values = parse_sweep(spec, cfg)
    res = select(cfg.signal.name, cfg, path, values, inits=args.fresh_inits, bins=args.fresh_bins,
                 binning=args.fresh_binning, seed=cfg.train.seed, device=cfg.train.device)
    print(res.table())
    set_field(cfg, path, res.best)
    cfg.validate()
    print(f"training with {path} = {res.best:g}")
    return res


__all__ = ["add_scoring_options", "cmd_fresh", "fresh_for_fit"]
