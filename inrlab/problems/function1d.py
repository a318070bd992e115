"""1-D signals: a sum of sinusoids (IGA's 1-D targets) or any callable, on a regular grid."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig
from ..errors import InrlabError
from ..limits import check_memory
from ..train.metrics import band_error_1d
from .grid import Signal, split

# float64 x and y, float32 coords and targets, split indices and permutation (int64)
SAMPLE_BYTES = 8 + 8 + 4 + 4 + 8 + 8 + 8


class Function1D(Signal):
    """f(x) on x = linspace(-1, 1, samples); targets (N, 1).

    ``Function1D.sines([5, 10])`` is y = Σ_k sin(2π k x): k cycles per unit length, so 2k cycles
    over [-1, 1] and rfft bin 2k. ``band_bins`` holds those bins (Δ_k of the IGA paper).
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], samples: int = 2048,
                 heldout: float = 0.0, split_seed: int = 0, name: str = "function",
                 band_bins: Sequence[int] = (), meta: dict[str, Any] | None = None,
                 config: SignalConfig | None = None):
        if samples < 4:
            raise InrlabError(f"a 1-D signal needs at least 4 samples, got {samples}")
        check_memory(f"1-D signal {name!r} with {samples:,} samples", samples * SAMPLE_BYTES,
                     "use fewer samples (sines:…@N or signal.samples)")
        x = np.linspace(-1, 1, samples)
        y = np.asarray(fn(x), np.float64).reshape(samples, -1)
        if not np.all(np.isfinite(y)):
            raise InrlabError(f"signal {name!r} has NaN or inf values: fix the function")
        lo, hi = float(y.min()), float(y.max())
        if hi - lo == 0:
            hi, lo = lo + 1, lo - 1
        tr, ho = split(samples, heldout, split_seed)
        super().__init__(name=name, coords=torch.tensor(x, dtype=torch.float32)[:, None],
                         targets=torch.tensor(y, dtype=torch.float32), grid_shape=(samples,),
                         train_idx=tr, heldout_idx=ho, value_range=(lo, hi),
                         meta=meta or {"kind": "function1d", "name": name, "samples": samples},
                         config=config)
        self.band_bins = np.asarray(list(band_bins), dtype=int)

    @classmethod
    def sines(cls, freqs: Sequence[float], samples: int = 2048, heldout: float = 0.0,
              split_seed: int = 0) -> Function1D:
        freqs = [float(k) for k in freqs]
        if not freqs or any(not math.isfinite(k) or k <= 0 for k in freqs):
            raise InrlabError(f"sines need finite positive frequencies, got {freqs}: write e.g. "
                              f"sines:5,10,15")
        if 2 * max(freqs) >= samples / 2:
            raise InrlabError(f"frequency {max(freqs)} aliases on {samples} samples: "
                              f"use more samples (> {int(4 * max(freqs))})")
        name = "sines_" + "-".join(f"{k:g}" for k in freqs)
        bins = [int(round(2 * k)) for k in freqs]
        spec = "sines:" + ",".join(f"{k:g}" for k in freqs) + f"@{samples}"
        return cls(lambda x: sum(np.sin(2 * np.pi * k * x) for k in freqs), samples, heldout,
                   split_seed, name=name, band_bins=bins,
                   meta={"kind": "sines", "freqs": freqs, "samples": samples},
                   config=SignalConfig(spec, heldout=heldout, samples=samples,
                                       split_seed=split_seed))

    def score(self, pred: np.ndarray | torch.Tensor, structural: bool = True) -> dict[str, Any]:
        out = super().score(pred)
        out["ssim"] = None
        if len(self.band_bins):
            p = self.grid(pred)[:, 0]
            y = self.grid(self.targets)[:, 0]
            out["band_error"] = band_error_1d(p, y, self.band_bins).tolist()
        return out

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        from ..models import predict
        from ..plots import curve_panels, curve_plot

        dev = next(model.parameters()).device
        pred = self.grid(predict(model, self.coords.to(dev)).float().cpu())[:, 0]
        x, y = self.coords[:, 0].numpy(), self.grid(self.targets)[:, 0]
        curve_plot(x, y, pred, out / "reconstruction.png")
        curve_panels(x, y, pred, history, out / "summary.png", self.name)


def build_sines(cfg: SignalConfig) -> Function1D:
    """``sines:…`` names (held-out fraction default 0)."""
    return parse_1d_spec(cfg.name, cfg.samples, cfg.heldout or 0.0, cfg.split_seed)


def parse_1d_spec(spec: str, samples: int, heldout: float, split_seed: int) -> Function1D:
    """``sines:5,10,15`` (optionally ``@N`` samples, ``sines:5:30:5`` for a range) → signal."""
    body = spec.split(":", 1)[1]
    if "@" in body:
        body, n = body.split("@", 1)
        try:
            samples = int(n)
        except ValueError:
            raise InrlabError(f"bad sample count in {spec!r}: write e.g. sines:5,10@2048") from None
    try:
        if body.count(":") == 2:
            a, b, s = (float(v) for v in body.split(":"))
            if not all(math.isfinite(v) for v in (a, b, s)) or s <= 0 or (b - a) / s > 10_000:
                raise InrlabError(f"bad frequency range in {spec!r}: START:STOP:STEP must be "
                                  f"finite, STEP > 0 and at most 10000 frequencies")
            freqs = list(np.arange(a, b + s / 2, s))
        else:
            freqs = [float(v) for v in body.split(",") if v.strip()]
    except ValueError:
        raise InrlabError(f"bad 1-D spec {spec!r}: write sines:5,10,15 or sines:5:30:5") from None
    return Function1D.sines(freqs, samples, heldout, split_seed)
