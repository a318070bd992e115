"""``inrlab repro FILE [--out DIR]``: run the reproduction a TOML file in ``configs/`` describes."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..errors import InrlabError

# experiment kind → (module, function(spec, out, progress=...))
EXPERIMENTS = {"iga-kodak": ("iga_kodak", "run_kodak"), "iga-sines": ("iga_sines", "run_sines"),
               "iga-twolayer": ("iga_twolayer", "run_twolayer"),
               "iga-fidelity": ("iga_fidelity", "run_fidelity"),
               "compression-rd": ("compression_rd", "run_rd")}


def repro_parser(sub: Any) -> None:
    p = sub.add_parser("repro", help="run a paper reproduction described by a TOML file",
                       description="Run the experiment of a configs/*.toml file (key `experiment`); "
                       "finished runs in --out are reused, so an interrupted command can be rerun.")
    p.add_argument("config", help="experiment TOML, e.g. configs/iga/kodak_quick.toml")
    p.add_argument("--out", help="results folder (default results/<file stem>)")
    p.add_argument("--progress", action="store_true", help="show per-run progress bars")
    p.set_defaults(func=cmd_repro, overrides=False)


def cmd_repro(args: argparse.Namespace, extra: dict[str, str]) -> int:
    spec = load_toml(args.config)
    kind = spec.pop("experiment", None)
    if kind not in EXPERIMENTS:
        raise InrlabError(f"{args.config}: `experiment = {kind!r}` is not one of "
                          f"{', '.join(EXPERIMENTS)}")
    module, func = EXPERIMENTS[kind]
    out = Path(args.out or f"results/{Path(args.config).stem}")
    if out.exists() and not out.is_dir():
        raise InrlabError(f"output path {str(out)!r} is a file: choose a folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        getattr(importlib.import_module(f"{__package__}.{module}"), func)(spec, out,
                                                                          progress=args.progress)
    except KeyError as e:  # the experiment reads its keys straight from the file
        raise InrlabError(f"{args.config} lacks the key {e.args[0]!r} that experiment {kind!r} "
                          f"needs: start from the matching file in configs/") from None
    print(f"results in {out}")
    return 0
