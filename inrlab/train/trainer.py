"""The training loop: Adam + schedule, batching, progress, history, checkpoints, resume.

A run folder holds::

    config.json        resolved RunConfig (what makes two runs "the same")
    history.jsonl      one line of metrics every ``train.eval_every`` steps
    checkpoint.pt      model + optimizer + RNG state, written atomically every
                       ``train.checkpoint_every`` steps, on interrupt and at the end
    metrics.json       final metrics (or, with status "diverged", the last good ones)
    reconstruction.png the prediction on the full grid
    summary.png        target | prediction | error | spectra | PSNR curve
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import DEFAULT_PRESET, RunConfig, SignalConfig, from_dict, preset, set_field
from ..errors import DivergedError, InrlabError, RunInterrupted
from ..models import INR, batch_coupled, build_model, freeze_statistics, set_norm_stats
from ..signals import Signal, load_signal
from ..techniques import Technique, build_technique
from ..utils import atomic_torch_save, resolve_device, seed_everything, to_jsonable, write_json

RUN_FILES = ("config.json", "history.jsonl", "checkpoint.pt", "metrics.json",
             "reconstruction.png", "summary.png")


@dataclass
class FitResult:
    """What a run returns: the trained model (on its device), final metrics and history."""

    model: INR
    signal: Signal
    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None

    def predict(self, coords: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction (N, C) on ``coords`` (default: the signal's full grid), on the CPU."""
        dev = next(self.model.parameters()).device
        x = self.signal.coords if coords is None else coords
        return predict(self.model, x.to(dev)).cpu()


def lr_factor(cfg_train: Any, step: int) -> float:
    """Multiplier of the base learning rate at ``step`` for the configured schedule."""
    t = cfg_train
    if t.schedule == "step":
        return t.gamma ** sum(step >= m for m in t.milestones)
    if t.schedule == "exponential":
        return t.lr_final ** (step / t.steps)
    if t.schedule == "cosine":
        return t.lr_final + (1 - t.lr_final) * 0.5 * (1 + math.cos(math.pi * step / t.steps))
    return 1.0


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 2**16) -> torch.Tensor:
    """Eval-mode prediction on ``x`` (N, d). Batch-coupled norms see the whole ``x`` in one pass
    (the full-grid evaluation rule); other models are evaluated in chunks to bound memory."""
    was = model.training
    model.eval()
    try:
        if batch_coupled(model) or x.shape[0] <= chunk:
            return model(x)
        return torch.cat([model(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
    finally:
        model.train(was)


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} → {vb!r}")
    return out


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved ``config.json`` with the fields added since it was written at their defaults (so a
    new config field does not make old runs "different"); unchanged if it no longer parses."""
    body = {k: v for k, v in saved.items() if k != "signal_meta"}
    try:
        full = from_dict(RunConfig, body).to_dict()
    except InrlabError:
        return saved
    return {**full, **({"signal_meta": saved["signal_meta"]} if "signal_meta" in saved else {})}


class Trainer:
    """Trains one model on one signal; owns the run folder. Use :func:`run` or :func:`fit`."""

    def __init__(self, cfg: RunConfig, signal: Signal | None = None, out: str | Path | None = None,
                 *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 technique: Technique | None = None):
        self.cfg = cfg.validate()
        self.signal = signal if signal is not None else load_signal(cfg.signal)
        self.out = Path(out) if out is not None else None
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed)
        self.model = build_model(cfg.model, self.signal.dim, self.signal.channels).to(self.device)
        self.technique = technique or build_technique(cfg.train.technique, cfg.train)
        self.technique.setup(self.model, self.signal)
        t = cfg.train
        self.opt = torch.optim.Adam(self.model.parameters(), lr=t.lr, eps=t.adam_eps)
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.last_ckpt_step: int | None = None
        self.resolved = {**cfg.to_dict(), "signal_meta": self.signal.meta}
        self.diagnostics = None
        if t.diagnostics_every or t.ntk_steps:
            from ..ntk.diagnostics import Diagnostics

            self.diagnostics = Diagnostics(self.signal, t.diagnostics_every, t.ntk_steps,
                                           t.ntk_points, t.seed, self.out)
        if self.out is not None:
            self._prepare_folder(resume, overwrite)

    # ------------------------------------------------------------------ run folder
    def _prepare_folder(self, resume: bool, overwrite: bool) -> None:
        out = self.out
        assert out is not None
        cfg_path = out / "config.json"
        if out.exists() and not out.is_dir():
            raise InrlabError(f"output path {str(out)!r} is a file: choose a folder for --out")
        if overwrite and out.exists():
            if any(out.iterdir()) and not cfg_path.exists():
                raise InrlabError(f"{str(out)!r} is not an inrlab run folder; refusing to "
                                  f"overwrite it: choose another --out")
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "diagnostics", ignore_errors=True)
        if cfg_path.exists():
            try:
                old = json.loads(cfg_path.read_text())
            except (OSError, json.JSONDecodeError):
                raise InrlabError(f"{cfg_path} is unreadable: use --overwrite or another --out") \
                    from None
            old = _with_defaults(old)
            diff = _config_diff({**old, "train": {**old.get("train", {}), "steps": 0}},
                                {**self.resolved, "train": {**self.resolved["train"], "steps": 0}})
            if diff:
                raise InrlabError(f"output folder {str(out)!r} holds a different run "
                                  f"({'; '.join(diff[:3])}): choose another --out or pass "
                                  f"--overwrite to replace it")
            if not resume:
                raise InrlabError(f"output folder {str(out)!r} already holds this run: pass "
                                  f"--resume to continue it or --overwrite to start over")
            self._load_checkpoint(out / "checkpoint.pt")
        elif out.exists() and any(out.iterdir()):
            raise InrlabError(f"output folder {str(out)!r} is not empty and holds no inrlab run: "
                              f"choose another --out")
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_json(cfg_path, self.resolved)
        except OSError as e:
            raise InrlabError(f"cannot write to output folder {str(out)!r} ({e.strerror}): "
                              f"choose a writable --out") from None

    def _load_checkpoint(self, path: Path) -> None:
        if not path.exists():
            return  # config written but no checkpoint yet: start from step 0
        try:
            ck = torch.load(path, map_location=self.device, weights_only=False)
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
        except Exception as e:  # torch.load raises many types for corrupt files  # noqa: BLE001
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise InrlabError(f"checkpoint {path} does not match this run or is corrupt ({first}): "
                              f"pass --overwrite or choose another --out") from None
        self.step, self.seconds = ck["step"], ck["seconds"]
        self.history = ck["history"]
        self.gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        self.last_ckpt_step = self.step

    def _save_checkpoint(self) -> None:
        if self.out is None:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise self._diverged("parameters became non-finite")
        atomic_torch_save({"step": self.step, "seconds": self.seconds, "history": self.history,
                           "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                           "generator": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                           "config": self.resolved}, self.out / "checkpoint.pt")
        self.last_ckpt_step = self.step

    # ------------------------------------------------------------------ loop
    def evaluate(self, structural: bool = False) -> dict[str, Any]:
        """Metrics of the full-grid prediction; SSIM/MS-SSIM only when ``structural``."""
        pred = predict(self.model, self.signal.coords.to(self.device)).float().cpu()
        return self.signal.score(pred, structural=structural)

    def _diverged(self, what: str) -> DivergedError:
        kept = ""
        if self.out is not None:
            self._write_final(status="diverged", metrics=self.history[-1] if self.history else {})
            kept = (f"; kept metrics so far and the last good checkpoint (step "
                    f"{self.last_ckpt_step}) in {self.out}" if self.last_ckpt_step is not None
                    else f"; kept metrics so far in {self.out}")
        return DivergedError(f"training diverged at step {self.step}: {what}{kept}; lower "
                             f"train.lr (now {self.cfg.train.lr:g}) and start again")

    def train(self) -> FitResult:
        t = self.cfg.train
        sig, dev = self.signal, self.device
        coords, targets = sig.coords.to(dev), sig.targets.to(dev)
        train_idx = sig.train_idx.to(dev)
        full = t.batch_size is None or t.batch_size >= len(train_idx)
        x_full, y_full = coords[train_idx], targets[train_idx]
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True,
                   desc=f"{self.cfg.preset or 'model'} on {sig.name}", leave=True)
        start = time.perf_counter() - self.seconds
        diag = self.diagnostics
        if diag is not None and self.step == 0:
            diag.record(self.model, 0, lambda: predict(self.model, coords))
        try:
            while self.step < t.steps:
                rng_at_step = (self.gen.get_state(), torch.get_rng_state())
                if full:
                    idx, x, y = train_idx, x_full, y_full
                else:
                    idx = self.technique.sample_batch(sig.train_idx, t.batch_size, self.gen).to(dev)
                    x, y = coords[idx], targets[idx]
                for g in self.opt.param_groups:
                    g["lr"] = t.lr * lr_factor(t, self.step)
                pred = self.model(x)
                loss = self.technique.loss(self.model, x, y, pred, idx, self.step)
                mse = torch.mean((pred.detach() - y) ** 2).item()
                if not (math.isfinite(mse) and math.isfinite(loss.item())):
                    raise self._diverged(f"loss is {loss.item()} (MSE {mse})")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.step += 1
                bar.update(1)
                if self.step % 10 == 0 or self.step == t.steps:
                    bar.set_postfix(loss=f"{mse:.2e}",
                                    psnr=f"{10 * math.log10(sig.data_range**2 / max(mse, 1e-30)):.2f}")
                if self.step % t.eval_every == 0 or self.step == t.steps:
                    self.seconds = time.perf_counter() - start
                    rec = {"step": self.step, "seconds": round(self.seconds, 3), "loss": mse,
                           "lr": self.opt.param_groups[0]["lr"], **self.evaluate()}
                    self.history.append(rec)
                    if self.out is not None:
                        with open(self.out / "history.jsonl", "a") as f:
                            f.write(json.dumps(to_jsonable(rec)) + "\n")
                if diag is not None and diag.due(self.step):
                    diag.record(self.model, self.step, lambda: predict(self.model, coords))
                if self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.seconds = time.perf_counter() - start
                    self._save_checkpoint()
        except KeyboardInterrupt:
            self.seconds = time.perf_counter() - start
            bar.close()
            self.gen.set_state(rng_at_step[0])  # replay the interrupted step exactly on resume
            torch.set_rng_state(rng_at_step[1])
            if self.out is None:
                raise RunInterrupted(f"interrupted at step {self.step} (no --out: nothing saved)") \
                    from None
            self._save_checkpoint()
            raise RunInterrupted(f"interrupted at step {self.step}; checkpoint saved in {self.out}: "
                              f"run the same command with --resume to continue") from None
        finally:
            bar.close()
        self.seconds = time.perf_counter() - start
        if batch_coupled(self.model):
            freeze_statistics(self.model, coords)  # single points can now be queried in eval
        last = self.history[-1] if self.history and self.history[-1]["step"] == self.step else {}
        metrics = {**last, "step": self.step, **self.evaluate(structural=True),
                   "steps": self.step, "seconds": round(self.seconds, 3)}
        if self.out is not None:
            self._save_checkpoint()
            self._write_final("finished", metrics)
            if diag is not None:
                diag.finish()
        return FitResult(self.model, sig, self.cfg, metrics, self.history, self.out)

    def _write_final(self, status: str, metrics: dict[str, Any]) -> None:
        from ..plots import save_reconstruction, summary_figure

        assert self.out is not None
        metrics = {**metrics, "status": status, "steps": self.step,
                   "seconds": round(self.seconds, 3), "preset": self.cfg.preset,
                   "signal": self.signal.name, "device": str(self.device),
                   "host": socket.gethostname(),
                   "parameters": sum(p.numel() for p in self.model.parameters())}
        write_json(self.out / "metrics.json", metrics)
        if status == "finished":
            pred = predict(self.model, self.signal.coords.to(self.device)).float().cpu().numpy()
            save_reconstruction(self.signal, pred, self.out / "reconstruction.png")
            summary_figure(self.signal, pred, self.history, self.out / "summary.png")


def run(cfg: RunConfig, out: str | Path | None = None, *, signal: Signal | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True) -> FitResult:
    """Train ``cfg`` (optionally on an already-built ``signal``) and write ``out`` if given.

    A finished run found in ``out`` with ``resume=True`` is returned without retraining.
    """
    out_p = Path(out) if out is not None else None
    if resume and out_p is not None and (out_p / "metrics.json").exists():
        done = json.loads((out_p / "metrics.json").read_text())
        if done.get("status") == "finished" and done.get("steps") == cfg.train.steps:
            trainer = Trainer(cfg, signal, out_p, resume=True, progress=False)
            return FitResult(trainer.model, trainer.signal, cfg, done, trainer.history, out_p)
    return Trainer(cfg, signal, out_p, resume=resume, overwrite=overwrite,
                   progress=progress).train()


def fit(signal: Signal | str, preset_name: str = DEFAULT_PRESET, *, steps: int | None = None,
        out: str | Path | None = None, overrides: dict[str, Any] | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True) -> FitResult:
    """Fit a preset to a signal. ``signal``: a :class:`Signal`, an image path, an embedded image
    name or a 1-D spec (``"sines:5,10"``); ``overrides``: ``{"model.width": 128, ...}``."""
    cfg = preset(preset_name)
    sig = None
    if isinstance(signal, Signal):
        sig = signal
        cfg.signal = copy.deepcopy(signal.config) if signal.config else SignalConfig(signal.name)
    else:
        cfg.signal.name = signal
    if steps is not None:
        cfg.train.steps = steps
    for k, v in (overrides or {}).items():
        set_field(cfg, k, v)
    return run(cfg, out, signal=sig, resume=resume, overwrite=overwrite, progress=progress)


def load_run(path: str | Path) -> FitResult:
    """Load a finished run folder: its model (eval-ready), signal, config, metrics and history."""
    p = Path(path)
    if not (p / "config.json").exists():
        raise InrlabError(f"{str(p)!r} is not an inrlab run folder (no config.json)")
    data = json.loads((p / "config.json").read_text())
    data.pop("signal_meta", None)
    cfg = from_dict(RunConfig, data)
    trainer = Trainer(cfg, None, p, resume=True, progress=False)
    if trainer.last_ckpt_step is None:
        raise InrlabError(f"{p} holds no checkpoint yet: resume or rerun the fit")
    if batch_coupled(trainer.model):
        set_norm_stats(trainer.model, "frozen")  # the final checkpoint holds full-grid statistics
    metrics = json.loads((p / "metrics.json").read_text()) if (p / "metrics.json").exists() else {}
    return FitResult(trainer.model, trainer.signal, cfg, metrics, trainer.history, p)


__all__ = ["FitResult", "Trainer", "fit", "run", "load_run", "predict", "lr_factor"]
