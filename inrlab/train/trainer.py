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
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..config import DEFAULT_PRESET, RunConfig, SignalConfig, from_dict, preset, set_fields
from ..errors import DivergedError, InrlabError, RunInterrupted
from ..limits import check_memory
from ..models import INR, batch_coupled, freeze_statistics, predict, set_norm_stats
from ..problems import Problem, load_problem
from ..techniques import Technique, build_technique
from ..utils import (
    FolderLock,
    append_line,
    atomic_torch_save,
    atomic_write_text,
    resolve_device,
    safe_torch_load,
    seed_everything,
    to_jsonable,
    write_json,
)
from .compile import CompiledForward
from .optim import build_adam, build_scheduler, lr_factor
from .stop import DeferredStop

RUN_FILES = ("config.json", "history.jsonl", "checkpoint.pt", "metrics.json")  # + problem.outputs
LOCK_NAME = ".run.lock"  # flock held by the one process that writes a run folder
CHECKPOINT_KEYS = ("step", "seconds", "history", "model", "optimizer", "generator", "torch_rng")


@dataclass
class FitResult:
    """What a run returns: the trained model (on its device), final metrics and history."""

    model: INR
    problem: Problem
    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None

    def predict(self, coords: torch.Tensor | None = None) -> torch.Tensor:
        """The field's values (N, C) at ``coords`` (N, d) (default: the problem's reference grid,
        e.g. an image's pixels), on the CPU."""
        dev = next(self.model.parameters()).device
        x = self.problem.reference().coords if coords is None else coords
        return predict(self.model, x.to(dev)).cpu()


class Callback(Protocol):
    """A hook into training (eNTK spectra, band errors, extra scores, ...).

    ``on_step(trainer, step)`` runs at step 0 before the first update (fresh runs only) and after
    every update, ``step`` being the number of updates done; ``on_end(trainer, metrics)`` runs
    once training finished, before ``metrics.json`` is written, and may add entries to
    ``metrics``. ``trainer.model``, ``trainer.problem``, ``trainer.out`` are what they read."""

    def on_step(self, trainer: Trainer, step: int) -> None: ...

    def on_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...


def training_bytes(cfg: RunConfig, points: int) -> int:
    """A lower bound on the memory of training ``cfg`` on ``points`` points: float32 hidden
    weights with their gradient and Adam's two moments (16 bytes each), and the activations a
    training step keeps for backward (about 4 per hidden unit and point of the batch)."""
    m, t = cfg.model, cfg.train
    batch = min(points, t.batch_size or points)
    weights = m.depth * m.width * (m.width + 1)
    return 16 * weights + 4 * 4 * batch * m.width * m.depth


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
    """A saved ``config.json`` with the fields it predates (config sections added later, e.g.
    ``signal.ct``) filled with their defaults, so an older run folder still matches its run."""
    data = {k: v for k, v in saved.items() if k != "signal_meta"}
    try:
        full = from_dict(RunConfig, data).to_dict()
    except InrlabError:  # a field this version does not know: compare as saved
        return saved
    return {**full, **({"signal_meta": saved["signal_meta"]} if "signal_meta" in saved else {})}


class Trainer:
    """Trains one model on one problem; owns the run folder. Use :func:`run` or :func:`fit`."""

    def __init__(self, cfg: RunConfig, problem: Problem | None = None,
                 out: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, technique: Technique | None = None,
                 callbacks: list[Callback] | None = None):
        self.cfg = cfg.validate()
        self.problem = problem if problem is not None else load_problem(cfg.signal)
        self.out = Path(out) if out is not None else None
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed)
        if self.device.type == "cpu":
            check_memory(f"training width {cfg.model.width} × depth {cfg.model.depth} on "
                         f"{self.problem.n_train:,} points",
                         training_bytes(cfg, self.problem.n_train),
                         "set train.batch_size, lower signal.size or use a smaller model")
        self.model = self.problem.build_model(cfg.model).to(self.device)
        self.technique = technique or build_technique(cfg.train.technique, cfg.train)
        self.technique.setup(self.model, self.problem)
        t = cfg.train
        self.opt = build_adam(self.model.parameters(), t.lr, t.adam_eps)
        self.scheduler = build_scheduler(self.opt, t)
        self.forward = CompiledForward(self.model) if t.compile else None
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []
        # smallest plain training-batch loss over the steps so far, each measured before that
        # step's update (the normalization code's logged "best PSNR"); in the checkpoint
        self.best_loss = math.inf
        self.last_ckpt_step: int | None = None
        self.resolved = {**cfg.to_dict(), "signal_meta": self.problem.meta}
        self.callbacks: list[Callback] = list(callbacks or [])
        self.lock: FolderLock | None = None
        if t.diagnostics_every or t.ntk_steps:
            from ..ntk.diagnostics import Diagnostics

            self.callbacks.insert(0, Diagnostics(self.problem, t.diagnostics_every, t.ntk_steps,
                                                 t.ntk_points, t.seed, self.out))
        if self.out is not None:
            self._prepare_folder(resume, overwrite)

    # ------------------------------------------------------------------ run folder
    def _prepare_folder(self, resume: bool, overwrite: bool) -> None:
        out = self.out
        assert out is not None
        if out.exists() and not out.is_dir():
            raise InrlabError(f"output path {str(out)!r} is a file: choose a folder for --out")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InrlabError(f"cannot create output folder {str(out)!r} ({e.strerror}): "
                              f"choose a writable --out") from None
        self.lock = FolderLock(out, LOCK_NAME, "another inrlab process",
                               "choose another --out")
        try:
            self._check_folder(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder's lock (training ends, or the trainer is discarded)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _check_folder(self, resume: bool, overwrite: bool) -> None:
        out = self.out
        assert out is not None
        cfg_path = out / "config.json"
        content = [f for f in out.iterdir() if f.name != LOCK_NAME]
        if overwrite and content:
            if not cfg_path.exists():
                raise InrlabError(f"{str(out)!r} is not an inrlab run folder; refusing to "
                                  f"overwrite it: choose another --out")
            try:
                for name in (*RUN_FILES, *self.problem.outputs):
                    (out / name).unlink(missing_ok=True)
                shutil.rmtree(out / "diagnostics", ignore_errors=True)
            except OSError as e:
                raise InrlabError(f"cannot replace the run in {str(out)!r} ({e.strerror}): make "
                                  f"the folder writable or choose another --out") from None
            content = []
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
        elif content:
            raise InrlabError(f"output folder {str(out)!r} is not empty and holds no inrlab run: "
                              f"choose another --out")
        try:
            write_json(cfg_path, self.resolved)
            self._truncate_history()
        except OSError as e:
            raise InrlabError(f"cannot write to output folder {str(out)!r} ({e.strerror}): "
                              f"choose a writable --out") from None

    def _load_checkpoint(self, path: Path) -> None:
        if not path.exists():
            return  # config written but no checkpoint yet: start from step 0
        try:
            ck = safe_torch_load(path, map_location=self.device)  # tensors + plain containers only
            missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
            if missing:
                raise KeyError(f"no {', '.join(missing)}")
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self._load_scheduler(ck.get("scheduler"), int(ck["step"]))
            self.technique.load_state_dict(ck.get("technique", {}))
            self.gen.set_state(ck["generator"].cpu())
            torch.set_rng_state(ck["torch_rng"].cpu())
            step, seconds, history = int(ck["step"]), float(ck["seconds"]), list(ck["history"])
            best = float(ck.get("best_loss", math.inf))  # checkpoints before it: from here on
        except Exception as e:  # torch.load raises many types for corrupt files  # noqa: BLE001
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise InrlabError(f"checkpoint {path} does not match this run or is corrupt ({first}): "
                              f"pass --overwrite or choose another --out") from None
        self.step, self.seconds, self.history = step, seconds, history
        self.best_loss = best
        self.last_ckpt_step = self.step

    def _load_scheduler(self, state: dict[str, Any] | None, step: int) -> None:
        """Restore the schedule at checkpoint ``step``; checkpoints written before schedulers had
        state (no ``scheduler`` key) continue from the schedule's closed form."""
        if self.scheduler is None:
            return
        if state is not None:
            self.scheduler.load_state_dict(state)
            if self.scheduler.last_epoch != step:  # it steps once per training step
                raise ValueError(f"scheduler state at step {self.scheduler.last_epoch!r}, "
                                 f"checkpoint at {step}")
            return
        self.scheduler.last_epoch = step
        lr = self.cfg.train.lr * lr_factor(self.cfg.train, step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.scheduler._last_lr = [lr] * len(self.opt.param_groups)  # what get_last_lr() returns

    def _truncate_history(self) -> None:
        """Make ``history.jsonl`` hold exactly the records of the state training continues from
        (the checkpoint's), dropping rows written after it and any half-written last line."""
        assert self.out is not None
        text = "".join(json.dumps(to_jsonable(r)) + "\n" for r in self.history)
        path = self.out / "history.jsonl"
        if path.exists() or text:
            atomic_write_text(path, text)

    def _save_checkpoint(self) -> None:
        if self.out is None:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise self._diverged("parameters became non-finite")
        try:
            atomic_torch_save({"step": self.step, "seconds": self.seconds, "best_loss": self.best_loss,
                               "history": to_jsonable(self.history),
                               "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                               "scheduler": (None if self.scheduler is None
                                             else self.scheduler.state_dict()),
                               "technique": self.technique.state_dict(),
                               "generator": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                               "config": to_jsonable(self.resolved)}, self.out / "checkpoint.pt")
        except OSError as e:
            kept = (f"the checkpoint of step {self.last_ckpt_step} is kept"
                    if self.last_ckpt_step is not None else "no checkpoint was kept")
            raise InrlabError(f"cannot write the checkpoint of step {self.step} into "
                              f"{str(self.out)!r} ({e.strerror or e}); {kept}: free disk space "
                              f"and run again with --resume") from None
        self.last_ckpt_step = self.step

    # ------------------------------------------------------------------ loop
    def evaluate(self, structural: bool = False) -> dict[str, Any]:
        """The problem's metrics of the model; SSIM/MS-SSIM … only when ``structural``."""
        return self.problem.evaluate(self.model, structural=structural)

    def best_scores(self) -> dict[str, float]:
        """``loss_best``: the smallest plain training-batch loss over the steps, each taken
        before that step's update (full batch: all training points); ``psnr_train_best``: its
        PSNR (prediction unclamped) when the problem has a data range. This is what the
        normalization paper's code logs ("best training PSNR over the steps"); {} before any
        step."""
        if not math.isfinite(self.best_loss):
            return {}
        out = {"loss_best": self.best_loss}
        r = self.problem.data_range
        if r is not None:
            out["psnr_train_best"] = float(10 * math.log10(r**2 / max(self.best_loss, 1e-30)))
        return out

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
        """Train to ``train.steps`` (from the resumed step); Ctrl-C or SIGTERM stop at the next
        step boundary with a checkpoint, so ``--resume`` continues bit-exactly."""
        with DeferredStop() as stop:  # signals wait for a step boundary (and for the finish)
            try:
                return self._train(stop)
            finally:
                self.close()

    def _train(self, stop: DeferredStop) -> FitResult:
        t = self.cfg.train
        prob, dev = self.problem, self.device
        batch_size = t.batch_size if t.batch_size is not None else prob.default_batch_size
        full = batch_size is None or batch_size >= prob.n_train
        full_batch = prob.full_batch().to(dev) if full else None
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True,
                   desc=f"{self.cfg.preset or 'model'} on {prob.name}", leave=True)
        start = time.perf_counter() - self.seconds
        rng_at_step = (self.gen.get_state(), torch.get_rng_state())
        # dirty: this step may already have changed saved state (weights, Adam, norm statistics),
        # so an exception now cannot be checkpointed exactly
        dirty = False
        coupled = batch_coupled(self.model)
        try:
            if self.step == 0:
                for cb in self.callbacks:
                    cb.on_step(self, 0)
            while self.step < t.steps:
                rng_at_step = (self.gen.get_state(), torch.get_rng_state())
                dirty = False
                if stop.requested is not None:
                    raise KeyboardInterrupt
                prob.step(self.model, self.step)
                if full_batch is not None:
                    batch = full_batch
                else:
                    batch = prob.batch(self.technique.sample_batch(prob, batch_size, self.gen))
                    batch = batch.to(dev)
                dirty = coupled  # a training forward updates running norm statistics
                out = self.model(batch.x) if self.forward is None else self.forward(batch.x)
                pred = prob.forward(out, batch)
                loss = self.technique.loss(self.model, batch, pred, self.step)
                mse = prob.loss(pred.detach(), batch.y).item()
                if not (math.isfinite(mse) and math.isfinite(loss.item())):
                    raise self._diverged(f"loss is {loss.item()} (plain loss {mse})")
                self.best_loss = min(self.best_loss, mse)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                dirty = True
                lr = self.opt.param_groups[0]["lr"]  # this step's, for the history
                self.opt.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.step += 1
                bar.update(1)
                if self.step % 10 == 0 or self.step == t.steps:
                    bar.set_postfix(prob.progress(mse))
                if self.step % t.eval_every == 0 or self.step == t.steps:
                    self.seconds = time.perf_counter() - start
                    rec = {"step": self.step, "seconds": round(self.seconds, 3), "loss": mse,
                           "lr": lr, **self.evaluate()}
                    self.history.append(rec)
                    if self.out is not None:
                        append_line(self.out / "history.jsonl", json.dumps(to_jsonable(rec)))
                for cb in self.callbacks:
                    cb.on_step(self, self.step)
                if self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.seconds = time.perf_counter() - start
                    self._save_checkpoint()
        except KeyboardInterrupt:
            self.seconds = time.perf_counter() - start
            bar.close()
            if self.out is None:
                raise RunInterrupted(f"interrupted at step {self.step} (no --out: nothing saved)") \
                    from None
            if dirty:
                kept = (f"its checkpoint of step {self.last_ckpt_step} is kept"
                        if self.last_ckpt_step is not None else "it starts over")
                raise RunInterrupted(f"interrupted while a step was being applied (step "
                                     f"{self.step}); {kept} in {self.out}: run the same command "
                                     f"with --resume to continue") from None
            self.gen.set_state(rng_at_step[0])  # replay the interrupted step exactly on resume
            torch.set_rng_state(rng_at_step[1])
            self._save_checkpoint()
            raise RunInterrupted(f"interrupted at step {self.step}; checkpoint saved in {self.out}: "
                              f"run the same command with --resume to continue") from None
        finally:
            bar.close()
        self.seconds = time.perf_counter() - start
        if batch_coupled(self.model):  # single points can now be queried in eval
            freeze_statistics(self.model, prob.statistics_points().to(dev))
        last = self.history[-1] if self.history and self.history[-1]["step"] == self.step else {}
        metrics = {**last, "step": self.step, **self.evaluate(structural=True),
                   "steps": self.step, "seconds": round(self.seconds, 3),
                   **self.best_scores()}
        if self.forward is not None and self.forward.seconds is not None:
            metrics["compile_seconds"] = round(self.forward.seconds, 3)
        for cb in self.callbacks:
            cb.on_end(self, metrics)
        if self.out is not None:
            self._save_checkpoint()
            self._write_final("finished", metrics)
        return FitResult(self.model, prob, self.cfg, metrics, self.history, self.out)

    def _write_final(self, status: str, metrics: dict[str, Any]) -> None:
        assert self.out is not None
        metrics = {**metrics, "status": status, "steps": self.step,
                   "seconds": round(self.seconds, 3), "preset": self.cfg.preset,
                   "signal": self.problem.name, "device": str(self.device),
                   "host": socket.gethostname(),
                   "parameters": sum(p.numel() for p in self.model.parameters())}
        write_json(self.out / "metrics.json", metrics)
        if status == "finished":
            self.problem.save_outputs(self.model, self.out, self.history)


def run(cfg: RunConfig, out: str | Path | None = None, *, problem: Problem | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True,
        callbacks: list[Callback] | None = None) -> FitResult:
    """Train ``cfg`` (optionally on an already-built ``problem``, with trainer ``callbacks``) and
    write ``out`` if given.

    A finished run found in ``out`` with ``resume=True`` is returned without retraining (its
    ``metrics.json`` holds what the callbacks added).
    """
    out_p = Path(out) if out is not None else None
    if resume and out_p is not None:
        done = _read_metrics(out_p)  # unreadable: resume from the checkpoint, which rewrites it
        if done.get("status") == "finished" and done.get("steps") == cfg.train.steps:
            trainer = Trainer(cfg, problem, out_p, resume=True, progress=False)
            trainer.close()
            return FitResult(trainer.model, trainer.problem, cfg, done, trainer.history, out_p)
    return Trainer(cfg, problem, out_p, resume=resume, overwrite=overwrite,
                   progress=progress, callbacks=callbacks).train()


def _read_metrics(folder: Path) -> dict[str, Any]:
    """``folder/metrics.json`` as a dict; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fit(problem: Problem | str, preset_name: str = DEFAULT_PRESET, *, steps: int | None = None,
        out: str | Path | None = None, overrides: dict[str, Any] | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True) -> FitResult:
    """Fit a preset to a problem. ``problem``: a :class:`Problem`, or a name (an image path, an
    embedded image name, ``sines:5,10``, ``ct:…``); ``overrides``: ``{"model.width": 128, ...}``."""
    cfg = preset(preset_name)
    prob = None
    if isinstance(problem, Problem):
        prob = problem
        cfg.signal = copy.deepcopy(problem.config) if problem.config else SignalConfig(problem.name)
    else:
        cfg.signal.name = problem
    if steps is not None:
        cfg.train.steps = steps
    set_fields(cfg, (overrides or {}).items())
    return run(cfg, out, problem=prob, resume=resume, overwrite=overwrite, progress=progress)


def load_run(path: str | Path) -> FitResult:
    """Load a finished run folder: its model (eval-ready), problem, config, metrics and history."""
    p = Path(path)
    if not (p / "config.json").exists():
        raise InrlabError(f"{str(p)!r} is not an inrlab run folder (no config.json)")
    try:
        data = json.loads((p / "config.json").read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise InrlabError(f"{p / 'config.json'} is unreadable ({e}): the run folder is damaged; "
                          f"rerun the fit") from None
    data.pop("signal_meta", None)
    cfg = from_dict(RunConfig, data)
    trainer = Trainer(cfg, None, None, progress=False)  # reads only: no lock, nothing written
    trainer._load_checkpoint(p / "checkpoint.pt")
    if trainer.last_ckpt_step is None:
        raise InrlabError(f"{p} holds no checkpoint yet: resume or rerun the fit")
    if batch_coupled(trainer.model):
        set_norm_stats(trainer.model, "frozen")  # the final checkpoint holds full-grid statistics
    return FitResult(trainer.model, trainer.problem, cfg, _read_metrics(p), trainer.history, p)


__all__ = ["Callback", "FitResult", "Trainer", "fit", "run", "load_run", "predict"]
