"""FreSh scoring: rank candidate values of one config field by the spectrum of the untrained model.

For each candidate value v of a numeric model field (any dotted path, e.g.
``model.activation.omega0_first``), the model is initialised R times (seeds ``seed … seed+R-1``,
the same seeds for every candidate: common random numbers make the comparison less noisy), its
output on the signal's full coordinate grid is turned into a spectrum vector and compared with the
target's by the Wasserstein-1 distance. The score of v is the mean distance over the R
initialisations (with its standard error); the smallest score wins, ties going to the first
candidate in grid order.

The R initialisations of a candidate run as one batched forward: their parameters are stacked
(``torch.func.stack_module_state``) and the model is vmapped over them with ``functional_call``.
That also holds for batch-coupled normalizations: in eval mode with batch statistics they only
reduce over the points, which vmap keeps separate per initialisation. A plain loop over the R
models is the fallback when vmap raises (a layer with data-dependent control flow); the result
records which path ran (``FreshResult.vmapped``).
"""

from __future__ import annotations

import copy
import math
import time
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from ..cli_config import resolve_path
from ..config import RunConfig, field_type, get_field, preset, set_field, set_fields
from ..errors import InrlabError
from ..limits import check_memory, max_fresh_candidates
from ..models import batch_coupled
from ..problems import Problem, load_problem
from ..utils import resolve_device, write_json
from .spectrum import BINNINGS, check_bins, grid_side, spectrum_vectors, wasserstein

GRID_SCORING_INIT = 1e-2  # hash/multigrid tables ~ U(±1e-2) while scoring (U(±1e-4) is ~flat)
# R · points · width floats per batched forward. CPU, `inrlab bench fresh` (SIREN, 512² grid,
# 20 candidates × 10 inits, 2 cores): 82 s with 2^22, 265 s with 2^24 (docs/fresh.md); GPUs get
# large chunks to fill the device
ELEMENTS_PER_CHUNK = {"cpu": 2**22, "cuda": 2**27}


@dataclass
class FreshResult:
    """Scores of every candidate. ``distances`` is (n_candidates, R); spectra are (…, K)."""

    field: str
    values: list[float]
    distances: np.ndarray
    target_spectrum: np.ndarray
    spectra: np.ndarray  # mean spectrum vector of each candidate over its R initialisations
    bins: int
    binning: str
    seconds: float
    vmapped: bool
    signal: str = ""
    preset: str | None = None
    default: float | None = None  # the field's value in the config before the sweep
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def inits(self) -> int:
        return self.distances.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """(n_candidates,) mean distance over the initialisations."""
        return self.distances.mean(1)

    @property
    def stderr(self) -> np.ndarray:
        """(n_candidates,) standard error of the mean (NaN for a single initialisation)."""
        r = self.inits
        if r < 2:
            return np.full(len(self.values), np.nan)
        return self.distances.std(1, ddof=1) / math.sqrt(r)

    @property
    def best_index(self) -> int:
        """Index of the smallest mean distance; the first in grid order on ties."""
        return int(np.argmin(self.mean))

    @property
    def best(self) -> float:
        return self.values[self.best_index]

    def ranking(self) -> list[dict[str, Any]]:
        """Candidates from best to worst: ``{"value", "distance", "stderr"}`` (stable on ties)."""
        order = np.argsort(self.mean, kind="stable")
        m, s = self.mean, self.stderr
        return [{"value": self.values[i], "distance": float(m[i]), "stderr": float(s[i])}
                for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "best": self.best, "ranking": self.ranking(),
                "values": self.values, "inits": self.inits, "bins": self.bins,
                "binning": self.binning, "signal": self.signal, "preset": self.preset,
                "default": self.default, "seconds": round(self.seconds, 4),
                "vmapped": self.vmapped, "distances": self.distances,
                "target_spectrum": self.target_spectrum,
                "best_spectrum": self.spectra[self.best_index], **self.meta}

    def table(self) -> str:
        """The ranking as a fixed-width text table."""
        lines = [f"FreSh: {self.field} on {self.signal} ({self.inits} inits, K={self.bins}, "
                 f"{self.binning} bins, {self.seconds:.1f} s)",
                 f"{'rank':>4}  {'value':>10}  {'distance':>10}  {'stderr':>9}"]
        for k, row in enumerate(self.ranking(), 1):
            mark = "  <- best" if k == 1 else ("  (default)" if row["value"] == self.default else "")
            lines.append(f"{k:>4}  {row['value']:>10g}  {row['distance']:>10.5f}  "
                         f"{row['stderr']:>9.5f}{mark}")
        return "\n".join(lines)

    def save(self, out: str | Path) -> Path:
        """Write ``fresh.json`` and ``fresh.png`` into folder ``out``; returns the JSON path."""
        from ..plots import fresh_figure

        p = Path(out)
        try:
            p.mkdir(parents=True, exist_ok=True)
            write_json(p / "fresh.json", self.to_dict())
        except OSError as e:
            raise InrlabError(f"cannot write FreSh results to {str(p)!r} ({e.strerror}): "
                              f"choose a writable --out") from None
        fresh_figure(self, p / "fresh.png")
        return p / "fresh.json"


# ---------------------------------------------------------------------------- checks


def check_field(cfg: RunConfig, path: str) -> type:
    """The numeric type (int or float) of model field ``path``; raises for anything else."""
    if not path.startswith("model."):
        raise InrlabError(f"FreSh sweeps model fields (model.…), not {path!r}: training and signal "
                          f"fields do not change the untrained model's output")
    tp = field_type(cfg, path)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else tp
    if tp not in (int, float):
        raise InrlabError(f"config field {path!r} is not numeric (it holds "
                          f"{getattr(tp, '__name__', tp)}): sweep an int or float field")
    return tp


def parse_sweep(spec: str, cfg: RunConfig) -> tuple[str, list[float]]:
    """``FIELD=START:STOP:STEP`` (STOP included) or ``FIELD=V1,V2,…`` → (dotted path, values).

    FIELD may be a unique suffix (``omega0_first``); int fields get int values.
    """
    name, eq, body = spec.partition("=")
    if not eq or not name.strip():
        raise InrlabError(f"bad sweep {spec!r}: write FIELD=START:STOP:STEP, "
                          f"e.g. model.activation.omega0_first=10:200:10")
    try:
        path = resolve_path(name.strip())
    except InrlabError as e:
        if "ambiguous" in str(e):
            raise
        raise InrlabError(f"unknown config field {name.strip()!r} in the sweep: see `inrlab "
                          f"fields` for every dotted path") from None
    tp = check_field(cfg, path)
    try:  # (InrlabError is a ValueError: parse numbers here, check them below)
        parts = [float(v) for v in body.split(":")] if ":" in body else None
        listed = [float(v) for v in body.split(",") if v.strip()] if ":" not in body else []
    except ValueError:
        raise InrlabError(f"bad sweep {spec!r}: write FIELD=START:STOP:STEP or FIELD=V1,V2,…"
                          ) from None
    if parts is not None and len(parts) != 3:
        raise InrlabError(f"bad sweep {spec!r}: write FIELD=START:STOP:STEP or FIELD=V1,V2,…")
    if not all(math.isfinite(v) for v in (parts or listed)):
        raise InrlabError(f"sweep {spec!r} holds NaN or inf: give finite numbers")
    values = listed
    limit = max_fresh_candidates()
    if parts is not None:
        start, stop, step = parts
        if step <= 0:
            raise InrlabError(f"sweep {spec!r} has step {step:g}: the step must be > 0")
        if start > stop:
            raise InrlabError(f"sweep {spec!r} is a reversed range (START {start:g} > STOP "
                              f"{stop:g}): write it as {path}={stop:g}:{start:g}:{step:g}")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n > limit:
            raise InrlabError(f"sweep {spec!r} has {n:,} candidates, over the limit of {limit:,}: "
                              f"use a larger STEP, or raise INRLAB_MAX_FRESH_CANDIDATES")
        values = [float(f"{start + i * step:.12g}") for i in range(n)]
    if len(values) > limit:
        raise InrlabError(f"sweep {spec!r} has {len(values):,} candidates, over the limit of "
                          f"{limit:,}: give fewer, or raise INRLAB_MAX_FRESH_CANDIDATES")
    if not values:
        raise InrlabError(f"sweep {spec!r} is empty: give START:STOP:STEP or a list of values")
    if tp is int:
        if any(not v.is_integer() for v in values):
            raise InrlabError(f"{path} is an integer field: give integer START, STOP and STEP")
        return path, [int(v) for v in values]
    return path, values


def candidate_configs(cfg: RunConfig, path: str, values: Sequence[float]) -> list[RunConfig]:
    """One validated copy of ``cfg`` per candidate value (bad values raise InrlabError)."""
    if len(values) == 0:
        raise InrlabError(f"no candidate values for {path}: give at least one")
    out = []
    for v in values:
        c = copy.deepcopy(cfg)
        set_field(c, path, v)
        out.append(c.validate())
    return out


# ---------------------------------------------------------------------------- batched outputs


def _build(cfg: RunConfig, problem: Problem, inits: int, seed: int) -> list[torch.nn.Module]:
    models = []
    for r in range(inits):
        torch.manual_seed(seed + r)
        models.append(problem.build_model(cfg.model).eval())
    return models


def _varying_buffers(models: list[torch.nn.Module]) -> list[str]:
    """Buffers that differ between the initialisations (e.g. Fourier features' random B)."""
    first = dict(models[0].named_buffers())
    names = []
    for name, b in first.items():
        if any(not torch.equal(b, dict(m.named_buffers())[name]) for m in models[1:]):
            names.append(name)
    return names


@torch.no_grad()
def batched_outputs(models: list[torch.nn.Module], x: torch.Tensor,
                    chunk: int | None = None) -> tuple[torch.Tensor, bool]:
    """Outputs (R, N, C) of R same-architecture models on points ``x`` (N, d) in one vmapped
    forward per chunk of points; batch-coupled models see all points at once (their evaluation
    rule). Returns the outputs and whether vmap ran (False: the per-model loop fallback)."""
    dev = x.device
    coupled = batch_coupled(models[0])
    n = x.shape[0]
    width = max((m.out_features for m in models[0].modules() if isinstance(m, torch.nn.Linear)),
                default=1)
    if coupled:
        chunk = n
    elif chunk is None:
        per = ELEMENTS_PER_CHUNK.get(dev.type, ELEMENTS_PER_CHUNK["cuda"])
        chunk = n if coupled else max(1024, per // (len(models) * width))
    base = models[0].to(dev)
    params, _ = stack_module_state(models)
    varying = _varying_buffers(models)
    state = {k: v.to(dev) for k, v in params.items()}
    state.update({k: torch.stack([dict(m.named_buffers())[k] for m in models]).to(dev)
                  for k in varying})

    def one(p: dict[str, torch.Tensor], xs: torch.Tensor) -> torch.Tensor:
        return functional_call(base, p, (xs,))

    batched = vmap(one, in_dims=(0, None))
    try:
        return torch.cat([batched(state, x[i:i + chunk]) for i in range(0, n, chunk)], 1), True
    except torch.OutOfMemoryError:
        raise
    except RuntimeError:  # vmap cannot trace some layer: evaluate the models one by one
        outs = []
        for m in models:
            m.to(dev)
            outs.append(torch.cat([m(x[i:i + chunk]) for i in range(0, n, chunk)]))
            m.cpu()
        return torch.stack(outs), False


def _constant(out: torch.Tensor) -> torch.Tensor:
    """(R,) True where an output (N, C) is constant over the points (up to float rounding)."""
    ptp = out.amax(1) - out.amin(1)  # (R, C)
    tol = 16 * torch.finfo(out.dtype).eps * out.abs().amax((1, 2)).clamp_min(1.0)
    return (ptp <= tol[:, None]).all(1)


# ---------------------------------------------------------------------------- selection


def select(signal: Problem | str, cfg: RunConfig | str, field: str, values: Sequence[float], *,
           inits: int = 10, bins: int = 64, binning: str = "diagonal", seed: int = 0,
           device: str = "auto", grid_init_scale: float | None = GRID_SCORING_INIT,
           chunk: int | None = None) -> FreshResult:
    """Score every candidate value of ``field`` for ``signal`` and return the ranking. The
    spectra compared are those of the problem's reference grid (``Problem.reference``: the image
    itself, FBP for CT …) and of the untrained models' outputs there
    (``Problem.reference_outputs``).

    Args:
        signal: a :class:`Problem`, or a problem name (image path / embedded name / 1-D spec …).
        cfg: a :class:`RunConfig` or a preset name; only its ``model`` section matters.
        field: dotted path of a numeric model field (``model.encoding.sigma``, …).
        values: the candidates, scored in this order (ties go to the earlier one).
        inits: R random initialisations per candidate.
        bins: K, frequencies 1 … K of the spectrum vectors.
        binning: ``"diagonal"`` (reference) or ``"radial"``, see :mod:`inrlab.fresh.spectrum`.
        seed: initialisation r uses seed ``seed + r`` (same for every candidate).
        grid_init_scale: hash/multigrid tables ~ U(±scale) while scoring (None: the config's
            ``model.encoding.init_scale``; ignored when that is the swept field).
        chunk: points per batched forward (None: automatic; batch-coupled models use all).

    Raises:
        InrlabError: unknown or non-numeric field, no values, a bad value, a signal too small
        for K bins, or a candidate whose untrained output is constant (zero spectrum).
    """
    cfg = preset(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    if isinstance(signal, str):
        cfg.signal.name = signal
        signal = load_problem(cfg.signal)
    if binning not in BINNINGS:
        raise InrlabError(f"unknown binning {binning!r}: choose one of {', '.join(BINNINGS)}")
    if inits < 1:
        raise InrlabError(f"--inits {inits} is impossible: use at least 1 initialisation")
    check_field(cfg, field)
    ref = signal.reference()
    check_bins(grid_side(ref.shape), bins)
    n_points = math.prod(ref.shape[:-1])
    check_memory(f"FreSh with {inits} initialisations on {n_points:,} points",
                 inits * n_points * ref.shape[-1] * 4 * 3, "use fewer --inits or a smaller signal")
    if (grid_init_scale is not None and cfg.model.encoding.kind in ("hash", "multigrid")
            and field != "model.encoding.init_scale"):
        cfg.model.encoding.init_scale = grid_init_scale
    default = get_field(cfg, field)
    configs = candidate_configs(cfg, field, list(values))
    values = [get_field(c, field) for c in configs]
    dev = resolve_device(device)
    shape = (*ref.shape, ref.values.shape[1])
    target = spectrum_vectors(ref.values.reshape(1, *shape).to(dev), bins, binning)
    t0 = time.perf_counter()
    dists, spectra, vmapped = [], [], True
    for v, c in zip(values, configs, strict=True):
        models = _build(c, signal, inits, seed)
        flags = []

        def outputs(x: torch.Tensor, models: list[torch.nn.Module] = models,
                    flags: list[bool] = flags) -> torch.Tensor:
            out, ok = batched_outputs(models, x, chunk)
            flags.append(ok)
            return out

        out = signal.reference_outputs(outputs, dev)
        vmapped &= all(flags)
        if bool(_constant(out).any()):
            raise InrlabError(f"with {field}={v:g} the untrained model's output is constant (zero "
                              f"spectrum), so FreSh cannot score it: drop that value from the sweep"
                              + (" or raise model.encoding.init_scale"
                                 if c.model.encoding.kind in ("hash", "multigrid") else ""))
        spec = spectrum_vectors(out.reshape(inits, *shape), bins, binning)  # (R, K)
        dists.append(wasserstein(spec, target).cpu().numpy())
        spectra.append(spec.mean(0).cpu().numpy())
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    return FreshResult(field=field, values=values, distances=np.stack(dists),
                       target_spectrum=target[0].cpu().numpy(), spectra=np.stack(spectra),
                       bins=bins, binning=binning, seconds=seconds, vmapped=vmapped,
                       signal=signal.name, preset=cfg.preset, default=default,
                       meta={"device": str(dev), "seed": seed})


def select_and_fit(signal: Problem | str, cfg: RunConfig | str, field: str, values: Sequence[float],
                   *, out: str | Path | None = None, steps: int | None = None,
                   overrides: dict[str, Any] | None = None, progress: bool = True,
                   **select_kwargs: Any) -> tuple[FreshResult, Any]:
    """Score the candidates with :func:`select`, then train the best one (``train.run``).

    ``overrides`` ({dotted path: value}) apply to ``cfg`` before scoring; ``select_kwargs`` go
    to :func:`select`. Returns ``(FreshResult, FitResult)``; with ``out`` the run folder also
    gets ``fresh.json`` and ``fresh.png``.
    """
    from ..train.trainer import run

    cfg = preset(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    set_fields(cfg, (overrides or {}).items())
    sig = signal
    if isinstance(signal, str):
        cfg.signal.name = signal
        sig = load_problem(cfg.signal)
    elif signal.config is not None:
        cfg.signal = copy.deepcopy(signal.config)
    res = select(sig, cfg, field, values, **select_kwargs)
    set_field(cfg, field, res.best)
    if steps is not None:
        cfg.train.steps = steps
    fit = run(cfg, out, problem=sig, progress=progress)
    if out is not None:
        res.save(out)
    return res, fit


__all__ = ["FreshResult", "parse_sweep", "select", "select_and_fit", "check_field", "candidate_configs",
           "batched_outputs", "GRID_SCORING_INIT"]
