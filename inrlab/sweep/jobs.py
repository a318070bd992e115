"""What one run of a sweep executes: a registered *job* kind and its parameters (``job.*``).

Most runs train (kind ``train``, the default); a few experiments are not a plain trainer run and
are jobs of their own, executed by the same executors and stored in the same store (their
results are the run's ``metrics``). Per-run extras come from *trainer callbacks* that a train job
names in ``job.callbacks`` (see :class:`inrlab.train.trainer.Callback`).

Job kinds (parameters, defaults):

* ``train``: trains the config, resuming from its checkpoint (``callbacks`` [] and theirs);
* ``train_compress``: trains, then compresses the run at each bit depth into ``points``
  (``bits`` [8], ``per_channel`` false, ``codec`` "lzma", ``callbacks``);
* ``twolayer_ntk``: IGA Fig. 1, no training: adjusted steps of a two-layer ReLU net of
  ``model.width`` on the 1-D ``signal`` (``train.iga.group``, ``train.iga.end``, ``train.seed``);
* ``fresh_validate``: FreSh scores ``sweep`` on the untrained model, then every candidate (and the
  default) is trained under ``RUN/grid/`` (``sweep`` required, ``default`` the config's value,
  ``bins`` 64, ``binning`` "diagonal", ``inits`` 10, ``metric`` "psnr": the grid search's
  criterion, e.g. "psnr_heldout"; ``scorings`` []: more scoring rules "BINNING:K", e.g.
  "radial:128", each judged against the same trained grid, in ``metrics["scorings"]``).
* ``fresh_train``: FreSh picks ``sweep``'s value on the untrained model (the run's own config:
  norms and all), then the run trains with it (``sweep`` required, ``bins`` None: 64 or the most
  the signal allows, ``inits`` 10, ``callbacks``): FreSh as one technique among others,
  combinable with any of them.

Callbacks:

* ``subset_scores``: PSNR / SSIM / MS-SSIM of an image's training and held-out pixels;
* ``entk_spectra``: ``spectra``, eNTK spectrum summaries at the steps ``spectra_at`` on
  ``points`` points (``points`` 256, ``sampling`` "regular", ``spectra_at`` [0], ``no_grid``
  false, ``definitions`` []: more kernels by the definitions of ``inrlab.ntk.parts``, e.g.
  "ntk_param", "hidden", "head", "no_affine").

Plugins add kinds with ``@JOBS.register("name")`` on a :class:`Job` (entry point group
``inrlab.jobs``) and callbacks with ``@CALLBACKS.register`` (``inrlab.callbacks``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig, get_field, set_field
from ..errors import InrlabError
from ..train.trainer import Callback, Trainer, run
from ..utils import to_jsonable, write_json
from .registry import Registry

REQUIRED = object()  # a parameter without default


@dataclass(frozen=True)
class Job:
    """A job kind: ``run(config, run_dir, params) -> metrics`` (params: defaults filled in)."""

    run: Callable[[RunConfig, Path, dict[str, Any]], dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)  # name → default (or REQUIRED)
    callbacks: bool = False  # whether it takes ``callbacks``


@dataclass(frozen=True)
class CallbackKind:
    """A trainer callback: ``build(params) -> Callback`` with the parameters it reads."""

    build: Callable[[dict[str, Any]], Callback]
    params: dict[str, Any] = field(default_factory=dict)


JOBS: Registry[Job] = Registry("job kind", "inrlab.jobs")
CALLBACKS: Registry[CallbackKind] = Registry("trainer callback", "inrlab.callbacks")


def check_job(job: dict[str, Any]) -> dict[str, Any]:
    """Check a run's job (kind, callbacks, parameter names); return it without ``kind = train``
    (so a plain training run's store key does not change)."""
    spec = JOBS.get(job.get("kind", "train"))
    names = job.get("callbacks", [])
    if names and not spec.callbacks:
        raise InrlabError(f"job kind {job['kind']!r} takes no callbacks: remove job.callbacks")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InrlabError("job.callbacks must be a list of callback names")
    allowed = {"kind", *spec.params, *(["callbacks"] if spec.callbacks else [])}
    for n in names:
        allowed |= set(CALLBACKS.get(n).params)
    for k in job:
        if k not in allowed:
            raise InrlabError(f"job parameter {k!r} is not one of {', '.join(sorted(allowed))}")
    for k, v in spec.params.items():
        if v is REQUIRED and k not in job:
            raise InrlabError(f"job kind {job.get('kind')!r} needs job.{k}")
    return {k: v for k, v in job.items() if not (k == "kind" and v == "train")}


def execute_job(cfg: RunConfig, run_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` (checked by :func:`check_job`) for ``cfg`` in ``run_dir``; its metrics."""
    spec = JOBS.get(job.get("kind", "train"))
    params = {**spec.params, **job}
    for n in job.get("callbacks", []):
        params = {**CALLBACKS.get(n).params, **params}
    return spec.run(cfg, run_dir, params)


def build_callbacks(params: dict[str, Any]) -> list[Callback]:
    return [CALLBACKS.get(n).build(params) for n in params.get("callbacks", [])]


# ---------------------------------------------------------------------------- jobs


def train_job(cfg: RunConfig, run_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (resuming) with the named callbacks; ``metrics.json``."""
    run(cfg, run_dir, resume=True, progress=False, callbacks=build_callbacks(params))
    return json.loads((run_dir / "metrics.json").read_text())


def train_compress_job(cfg: RunConfig, run_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train, then compress the run at every ``bits``: ``points`` [{bits, bpp, psnr, ssim, …}]."""
    from ..codec.weights import compress_run

    metrics = train_job(cfg, run_dir, params)
    metrics["points"] = [compress_run(run_dir, int(b), bool(params["per_channel"]),
                                      str(params["codec"])) for b in params["bits"]]
    return metrics


def twolayer_job(cfg: RunConfig, run_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """IGA Fig. 1 for one (width, end): ‖u − u_full‖/‖u_full‖ of each adjusted step
    (``rel_plain``, ``rel_analytic``, ``rel_iga``) and the |rfft| of every step (``spectra``)."""
    from ..ntk.twolayer import TwoLayerReLU, adjusted_steps
    from ..problems import load_problem

    sig = load_problem(cfg.signal)
    if sig.coords.shape[1] != 1:
        raise InrlabError(f"job twolayer_ntk needs a 1-D signal (sines:…), not {sig.name!r}")
    x, y = sig.coords.double(), sig.targets.double()[:, 0]
    model = TwoLayerReLU(cfg.model.width, torch.Generator().manual_seed(cfg.train.seed))
    with torch.no_grad():
        r = model(x)[:, 0] - y
    u = adjusted_steps(model, x, r, cfg.train.iga.end, cfg.train.iga.group)
    ref = u["full"]
    metrics: dict[str, Any] = {f"rel_{k}": float((v - ref).norm() / ref.norm())
                               for k, v in u.items() if k != "full"}
    metrics["spectra"] = {k: np.abs(np.fft.rfft(v.numpy())).tolist() for k, v in u.items()}
    metrics["band_bins"] = [int(b) for b in sig.band_bins]
    write_json(run_dir / "metrics.json", {**metrics, "status": "finished"})
    return metrics


def _count(params: dict[str, Any], name: str) -> int:
    """``params[name]`` as a whole number ≥ 1 (job.bins, job.inits), else a one-line error."""
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < 1:
        raise InrlabError(f"job.{name} = {v!r} is impossible: give a whole number ≥ 1")
    return int(v)


def _scorings(rules: Any) -> list[tuple[str, int]]:
    """``job.scorings`` ["BINNING:K", …] as (binning, K) pairs; a one-line error otherwise."""
    from ..fresh.spectrum import BINNINGS

    out = []
    for rule in rules if isinstance(rules, list) else [rules]:
        binning, _, k = str(rule).partition(":")
        if binning not in BINNINGS or not k.isdigit() or int(k) < 1:
            raise InrlabError(f"job.scorings entry {rule!r} is not BINNING:K with BINNING one of "
                              f"{', '.join(BINNINGS)} and K ≥ 1 bins, e.g. \"radial:128\"")
        out.append((binning, int(k)))
    return out


def _check_metric(metric: str, signal: Any) -> None:
    """Refuse, before any training, a ``metric`` the grid search cannot maximize (lower-is-better
    ones: loss, MSE, seconds) and a held-out one (``psnr_heldout`` …) when ``signal`` holds no
    samples out."""
    if metric in ("loss", "lr", "seconds", "steps") or metric.startswith(("mse", "lpips")):
        raise InrlabError(f"job.metric {metric!r} is not a score to maximize: use psnr, "
                          f"psnr_heldout, ssim …")
    if metric.endswith("_heldout") and len(getattr(signal, "heldout_idx", ())) == 0:
        raise InrlabError(f"job.metric {metric!r} needs held-out samples: set signal.heldout > 0 "
                          f"(an image or 1-D signal), or use job.metric = \"psnr\"")


def fresh_job(cfg: RunConfig, run_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """FreSh's pick against the real grid: score ``params["sweep"]``, train every candidate and
    the default (resuming, under ``run_dir/grid``); rank, gap, gain, cost and Spearman's ρ, all
    by the final ``params["metric"]`` (``psnr``, ``psnr_heldout`` …; called psnr below)."""
    import scipy.stats

    from ..fresh.select import parse_sweep, select
    from ..problems import load_problem

    signal = load_problem(cfg.signal)
    path, values = parse_sweep(str(params["sweep"]), cfg)
    metric = str(params["metric"])
    _check_metric(metric, signal)
    default = params["default"] if params.get("default") is not None else get_field(cfg, path)
    rules = [(str(params["binning"]), _count(params, "bins"))] + _scorings(params["scorings"])
    scored = [select(signal, cfg, path, values, inits=_count(params, "inits"), bins=k,
                     binning=b, seed=cfg.train.seed, device=cfg.train.device) for b, k in rules]
    res = scored[0]
    psnr: dict[Any, float] = {}
    secs: dict[Any, float] = {}
    for v in list(values) + ([] if default in values else [default]):
        c = copy.deepcopy(cfg)
        set_field(c, path, v)
        m = run(c, run_dir / "grid" / f"{path.rsplit('.', 1)[-1]}={v}", problem=signal,
                resume=True, progress=False).metrics
        if m.get(metric) is None:
            scores = [k for k, x in m.items()
                      if isinstance(x, float) and k.startswith(("psnr", "ssim", "ms_ssim"))]
            raise InrlabError(f"job.metric {metric!r} is not among the run's metrics: choose "
                              f"one of {', '.join(scores)}")
        psnr[v], secs[v] = float(m[metric]), float(m["seconds"])
    grid = np.array([psnr[v] for v in values])
    best_v = values[int(np.argmax(grid))]

    def spearman(r: Any) -> float:
        return float(scipy.stats.spearmanr(-r.mean, grid).statistic) if len(values) > 2 \
            else float("nan")

    rho = spearman(res)
    metrics = {"field": path, "metric": metric, "default": default, "fresh_pick": res.best,
               "grid_best": best_v,
               "rank": 1 + int(np.sum(grid > psnr[res.best])), "of": len(values),
               "psnr_pick": psnr[res.best], "psnr_best": psnr[best_v],
               "psnr_default": psnr[default], "gap_db": psnr[best_v] - psnr[res.best],
               "gain_db": psnr[res.best] - psnr[default], "spearman": float(rho),
               "fresh_s": res.seconds, "train_s": secs[default],
               "cost": res.seconds / secs[default], "bins": res.bins,
               "grid": [{"value": v, "psnr": psnr[v], "seconds": secs[v],
                         "distance": float(res.mean[i])} for i, v in enumerate(values)],
               "scorings": [{"scoring": f"{b}:{k}", "fresh_pick": r.best,
                             "rank": 1 + int(np.sum(grid > psnr[r.best])),
                             "gap_db": psnr[best_v] - psnr[r.best], "spearman": spearman(r),
                             "fresh_s": r.seconds}
                            for (b, k), r in zip(rules, scored, strict=True)]}
    write_json(run_dir / "metrics.json", {**metrics, "status": "finished"})
    return to_jsonable(metrics)


def fresh_train_job(cfg: RunConfig, run_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Score ``params["sweep"]`` with FreSh on the untrained ``cfg``, train the pick into
    ``run_dir`` (resuming) with the named callbacks; the metrics gain ``fresh_field``,
    ``fresh_pick`` and ``fresh_s``, and the run folder ``fresh.json`` / ``fresh.png``. The
    scoring is seeded, so a resumed run re-scores to the same pick (the trainer refuses a
    checkpoint whose config differs)."""
    from ..fresh.select import parse_sweep, select
    from ..fresh.spectrum import nyquist_bins
    from ..problems import load_problem

    signal = load_problem(cfg.signal)
    path, values = parse_sweep(str(params["sweep"]), cfg)
    if params["bins"] is None:
        bins = min(64, nyquist_bins(signal.reference().shape))
    else:
        bins = _count(params, "bins")
    res = select(signal, cfg, path, values, inits=_count(params, "inits"), bins=bins,
                 seed=cfg.train.seed, device=cfg.train.device)
    pick = _started_with(run_dir, path, res.best)
    c = copy.deepcopy(cfg)
    set_field(c, path, pick)
    run(c, run_dir, problem=signal, resume=True, progress=False,
        callbacks=build_callbacks(params))
    res.save(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {**metrics, "fresh_field": path, "fresh_pick": pick, "fresh_s": res.seconds}


def _started_with(run_dir: Path, path: str, best: Any) -> Any:
    """The value of ``path`` a started run in ``run_dir`` trains with (its ``config.json``), so a
    resumed ``fresh_train`` run continues its own pick even if re-scoring flips a near-tie (e.g.
    on another device); ``best`` for a new run or an unreadable config."""
    try:
        value: Any = json.loads((run_dir / "config.json").read_text())
        for part in path.split("."):
            value = value[part]
    except (OSError, ValueError, KeyError, TypeError):
        return best
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else best


JOBS["train"] = Job(train_job, callbacks=True)
JOBS["train_compress"] = Job(train_compress_job, {"bits": [8], "per_channel": False,
                                                  "codec": "lzma"}, callbacks=True)
JOBS["twolayer_ntk"] = Job(twolayer_job)
JOBS["fresh_validate"] = Job(fresh_job, {"sweep": REQUIRED, "default": None, "bins": 64,
                                         "binning": "diagonal", "inits": 10, "metric": "psnr",
                                         "scorings": []})
JOBS["fresh_train"] = Job(fresh_train_job, {"sweep": REQUIRED, "bins": None, "inits": 10},
                          callbacks=True)


# ---------------------------------------------------------------------------- callbacks


class SubsetScores:
    """``on_end``: the problem's ``subset_scores`` of the final model (images: train / held-out
    PSNR, SSIM, MS-SSIM)."""

    def on_step(self, trainer: Trainer, step: int) -> None:
        pass

    def on_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        from ..models import predict

        sig = trainer.problem
        if not hasattr(sig, "subset_scores"):
            raise InrlabError(f"callback subset_scores scores images, not {sig.name!r}: remove it "
                              f"from job.callbacks")
        pred = predict(trainer.model, sig.coords.to(trainer.device)).float().cpu().numpy()
        metrics.update(sig.subset_scores(pred))


class EntkSpectra:
    """eNTK spectrum summaries (``model_spectrum``) on ``points`` points of the problem's grid at
    the steps ``spectra_at``, also without the grid-table term when ``no_grid``; kept in
    ``RUN/spectra.jsonl`` (so a resumed run keeps the earlier ones) and added to the metrics as
    ``spectra`` {"step N" | "step N no grid" | "step N DEFINITION": summary}; ``definitions``
    adds the kernels of ``inrlab.ntk.parts`` by those definitions."""

    def __init__(self, points: int, sampling: str, at: list[int], no_grid: bool,
                 definitions: tuple[str, ...] = ()):
        from ..ntk.parts import DEFINITIONS

        self.points, self.sampling, self.at, self.no_grid = points, sampling, set(at), no_grid
        for d in definitions:
            if d not in DEFINITIONS or d == "full":
                raise InrlabError(f"entk_spectra: unknown definition {d!r} in job.definitions: "
                                  f"choose among {', '.join(x for x in DEFINITIONS if x != 'full')}")
        self.definitions = tuple(definitions)
        self.spectra: dict[str, Any] = {}

    def on_step(self, trainer: Trainer, step: int) -> None:
        from ..ntk.compare import model_spectrum
        from ..ntk.kernel import float_copy
        from ..ntk.points import sample_points

        if step not in self.at:
            return
        sig = trainer.problem
        idx, shape = sample_points(sig, self.points, self.sampling, trainer.cfg.train.seed)
        x = sig.points(idx)  # grids, volumes, video
        recs = {f"step {step}": model_spectrum(trainer.model, x, shape)}
        if self.no_grid:
            frozen = float_copy(trainer.model)
            table = getattr(frozen.encoding, "table", None)
            if table is None:
                raise InrlabError("entk_spectra: no_grid needs a grid encoding (mpe, hash)")
            table.requires_grad_(False)
            recs[f"step {step} no grid"] = model_spectrum(frozen, x, shape)
        for d in self.definitions:
            recs[f"step {step} {d}"] = model_spectrum(trainer.model, x, shape, definition=d)
        self.spectra.update(recs)
        if trainer.out is not None:
            with open(trainer.out / "spectra.jsonl", "a") as f:
                for k, v in recs.items():
                    f.write(json.dumps(to_jsonable({"stage": k, **v})) + "\n")

    def on_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        path = trainer.out / "spectra.jsonl" if trainer.out is not None else None
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                self.spectra[rec.pop("stage")] = rec
        metrics["spectra"] = to_jsonable(self.spectra)


CALLBACKS["subset_scores"] = CallbackKind(lambda p: SubsetScores())
CALLBACKS["entk_spectra"] = CallbackKind(
    lambda p: EntkSpectra(int(p["points"]), str(p["sampling"]), [int(s) for s in p["spectra_at"]],
                          bool(p["no_grid"]), tuple(str(d) for d in p["definitions"])),
    {"points": 256, "sampling": "regular", "spectra_at": [0], "no_grid": False,
     "definitions": []})
