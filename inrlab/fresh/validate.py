"""Validate FreSh against a real grid search: ``inrlab fresh-validate configs/fresh_validation.toml``.

For every image × experiment of the chosen tier, FreSh scores the sweep, then *every* candidate is
trained (and the default, when it is not one of them). Reported per row:

* ``rank``: where FreSh's pick lands among the trained candidates (1 = best final PSNR);
* ``gap_db``: grid's best PSNR − FreSh pick's PSNR (0 when FreSh found the best);
* ``gain_db``: FreSh pick's PSNR − the default value's PSNR;
* ``cost``: FreSh's seconds / seconds of one training run of the default (same machine, same
  signal, same step count);
* ``spearman``: rank correlation between −distance and PSNR over the grid.

The TOML file has one ``[tier.NAME]`` table per tier (images, size, bins, inits, ``set`` overrides
applied to every run) and a list ``[[tier.NAME.experiment]]`` (name, preset, sweep, optional
default, bins and ``set``). Image names are embedded scikit-image names or paths; a relative path
that is not a file is looked up under the data folder (``INRLAB_DATA``), and is skipped with a
note when absent.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from ..benchmarks.common import machine, print_table
from ..config import get_field, load_toml, preset, set_field
from ..data import data_dir
from ..errors import InrlabError
from ..problems import load_problem
from ..problems.image import EMBEDDED
from ..train.trainer import run
from ..utils import write_json
from .select import parse_sweep, select

COLUMNS = ["image", "experiment", "field", "default", "fresh_pick", "grid_best", "rank", "of",
           "psnr_pick", "psnr_best", "psnr_default", "gap_db", "gain_db", "spearman",
           "fresh_s", "train_s", "cost"]


def resolve_image(name: str) -> str | None:
    """An embedded name or an existing path as is; a data-relative path under ``data_dir()``."""
    if name in EMBEDDED or Path(name).is_file():
        return name
    d = data_dir()
    if d is not None and (d / name).is_file():
        return str(d / name)
    return None


def _tier(config: str, tier: str) -> dict[str, Any]:
    data = load_toml(config)
    tiers = data.get("tier", {})
    if tier not in tiers:
        raise InrlabError(f"{config} has no [tier.{tier}] table: choose one of "
                          f"{', '.join(tiers) or '(none)'}")
    t = tiers[tier]
    for key in ("images", "experiment"):
        if key not in t:
            raise InrlabError(f"[tier.{tier}] of {config} needs '{key}'")
    return t


def validate_one(image: str, exp: dict[str, Any], tier: dict[str, Any], device: str,
                 log: Any = print) -> dict[str, Any]:
    """FreSh + the full grid for one image and one experiment; returns the report row."""
    cfg = preset(exp["preset"])
    cfg.signal.name = image
    cfg.signal.size = tier.get("size")
    cfg.train.device = device
    for k, v in {**tier.get("set", {}), **exp.get("set", {})}.items():
        set_field(cfg, k, v)
    cfg.train.eval_every = cfg.train.steps  # one evaluation at the end: timing ≈ pure training
    cfg.validate()
    signal = load_problem(cfg.signal)
    path, values = parse_sweep(exp["sweep"], cfg)
    default = exp.get("default", get_field(cfg, path))
    res = select(signal, cfg, path, values, inits=tier.get("inits", 10),
                 bins=exp.get("bins", tier.get("bins", 64)), device=device)
    log(f"  FreSh {res.seconds:.1f} s: pick {path}={res.best:g}")
    psnr: dict[Any, float] = {}
    secs: dict[Any, float] = {}
    todo = list(values) + ([] if default in values else [default])
    for v in todo:
        c = copy.deepcopy(cfg)
        set_field(c, path, v)
        m = run(c, None, problem=signal, progress=False).metrics
        psnr[v], secs[v] = float(m["psnr"]), float(m["seconds"])
        log(f"    {path}={v}: PSNR {psnr[v]:.2f} dB ({secs[v]:.1f} s)")
    grid = np.array([psnr[v] for v in values])
    order = np.argsort(-grid, kind="stable")
    rank = 1 + int(np.sum(grid > psnr[res.best]))
    rho = scipy.stats.spearmanr(-res.mean, grid).statistic if len(values) > 2 else float("nan")
    best_v = values[int(order[0])]
    return {"image": signal.name, "experiment": exp["name"], "field": path,
            "default": default, "fresh_pick": res.best, "grid_best": best_v, "rank": rank,
            "of": len(values), "psnr_pick": psnr[res.best], "psnr_best": psnr[best_v],
            "psnr_default": psnr[default], "gap_db": psnr[best_v] - psnr[res.best],
            "gain_db": psnr[res.best] - psnr[default], "spearman": float(rho),
            "fresh_s": res.seconds, "train_s": secs[default], "cost": res.seconds / secs[default],
            "grid": [{"value": v, "psnr": psnr[v], "seconds": secs[v],
                      "distance": float(res.mean[i]), "stderr": float(res.stderr[i])}
                     for i, v in enumerate(values)],
            "steps": cfg.train.steps, "size": list(signal.grid_shape), "bins": res.bins}


def run_validation(config: str, tier_name: str, out: str | Path, only: list[str] | None = None,
                   device: str = "auto", images: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every image × experiment of ``[tier.tier_name]`` (``images``/``only``: a subset);
    write ``validation.json`` and ``validation.md`` into ``out`` after every row; print the
    table. Returns the rows."""
    tier = _tier(config, tier_name)
    exps = [e for e in tier["experiment"]
            if not only or any(o in e["name"] for o in only)]
    if not exps:
        raise InrlabError(f"no experiment of [tier.{tier_name}] matches --only {' '.join(only or [])}")
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def save(done: bool) -> dict[str, Any]:  # after every row: an interrupted run keeps its rows
        summary = summarize(rows)
        write_json(out / "validation.json", {"config": str(config), "tier": tier_name,
                                             "complete": done, "machine": machine(),
                                             "seconds": time.perf_counter() - t0,
                                             "skipped": skipped, "summary": summary, "rows": rows})
        (out / "validation.md").write_text(markdown(rows, summary))
        return summary

    for name in images or tier["images"]:
        image = resolve_image(name)
        if image is None:
            skipped.append(name)
            print(f"skipping {name}: not found (set INRLAB_DATA to the folder holding it)")
            continue
        for exp in exps:
            print(f"{Path(name).stem} / {exp['name']}", flush=True)
            rows.append(validate_one(image, exp, tier, device))
            save(False)
    summary = save(True)
    print(f"\nFreSh vs grid search, tier {tier_name}, {time.perf_counter() - t0:.0f} s")
    print_table(rows, COLUMNS)
    print(f"\nsummary: {summary}")
    print(f"wrote {out / 'validation.json'} and {out / 'validation.md'}")
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over rows: how often FreSh found the best, gap, gain and cost."""
    if not rows:
        return {}
    return {"rows": len(rows), "pick_is_best": sum(r["rank"] == 1 for r in rows),
            "mean_rank": float(np.mean([r["rank"] for r in rows])),
            "mean_gap_db": float(np.mean([r["gap_db"] for r in rows])),
            "mean_gain_db": float(np.mean([r["gain_db"] for r in rows])),
            "mean_cost": float(np.mean([r["cost"] for r in rows]))}


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The rows as a markdown table (numbers rounded)."""
    def f(v: Any) -> str:
        if v is None:
            return "torch init"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    cols = ["image", "experiment", "default", "fresh_pick", "grid_best", "rank", "of",
            "psnr_pick", "psnr_best", "psnr_default", "gap_db", "gain_db", "spearman", "cost"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + f"\n\nSummary: {summary}\n"


__all__ = ["run_validation", "validate_one", "summarize", "resolve_image"]
