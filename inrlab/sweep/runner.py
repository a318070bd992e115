"""Running a sweep: plan → store → executor, with whole-sweep progress on the terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import InrlabError, RunInterrupted
from .executors import InProcess, Task
from .spec import Sweep
from .store import Store, SweepLock


@dataclass
class SweepOutcome:
    """Counts after ``run_sweep``: runs in the plan, skipped (already finished), run now."""

    planned: int
    skipped: int
    finished: int
    failed: int
    folder: Path


def _metric_text(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    parts = [f"{k} {metrics[k]:.3f}" for k in ("psnr", "ssim") if isinstance(metrics.get(k), float)]
    if isinstance(metrics.get("seconds"), (int, float)):
        parts.append(f"{metrics['seconds']:.1f} s")
    return "  ".join(parts)


def run_sweep(sweep: Sweep, out: str | Path, *, tier: str | None = None, executor: Any = None,
              retry_failed: bool = True, progress: bool = True) -> SweepOutcome:
    """Run every planned run of ``tier`` not finished yet in ``out`` (store, runs/, lock).

    Runs that fail are recorded with their error and the rest go on; Ctrl-C stops the sweep after
    checkpointing the runs in flight (rerun the same command to continue).
    """
    plan = sweep.plan(tier)  # validates everything before any folder is touched
    tier = tier or sweep.default_tier
    folder = Path(out)
    executor = executor or InProcess()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "runs").mkdir(exist_ok=True)
    except OSError as e:
        raise InrlabError(f"cannot create sweep folder {str(folder)!r} ({e.strerror}): choose a "
                          f"writable --out") from None
    with SweepLock(folder):
        store = Store(folder)
        try:
            return _run_locked(sweep, plan, tier, folder, store, executor, retry_failed, progress)
        finally:
            store.close()


def _run_locked(sweep: Sweep, plan: list[Any], tier: str, folder: Path, store: Store, executor: Any,
                retry_failed: bool, progress: bool) -> SweepOutcome:
    try:
        (folder / "sweep.toml").write_text(sweep.text)
    except OSError as e:
        raise InrlabError(f"cannot write to sweep folder {str(folder)!r} ({e.strerror}): free space "
                          f"or choose a writable --out") from None
    store.reset_running()  # left by a sweep that was killed: resume them
    store.add_plan(plan, tier)
    store.set_meta("name", sweep.name)
    store.set_meta("analysis", json.dumps(sweep.analysis))
    status = {r["key"]: r["status"] for r in store.rows(tier)}
    todo = [r for r in plan if status.get(r.key) != "finished"
            and (retry_failed or status.get(r.key) != "failed")]
    skipped = len(plan) - len(todo)
    tasks: list[Task] = [{"key": r.key, "label": r.label, "config": r.config.to_dict(), "job": r.job,
                          "run_dir": str((folder / "runs" / r.folder).resolve()),
                          "plugins": sweep.plugins, "paths": [str(sweep.path.parent.resolve())]}
                         for r in todo]
    n_ok = n_fail = 0
    bar = tqdm(total=len(plan), initial=skipped, unit="run", disable=not progress,
               dynamic_ncols=True, desc=f"sweep {sweep.name} [{tier}]")
    bar.set_postfix(failed=0, left=len(todo))
    interrupted = False
    try:
        for task, res in executor.run(tasks, lambda t: store.mark_running(t["key"])):
            if res["status"] == "interrupted":
                interrupted = True
                store.record(task["key"], res)  # back to pending, resumes from its checkpoint
                break
            store.record(task["key"], res)
            if res["status"] == "finished":
                n_ok += 1
                bar.write(f"finished {task['label']}  {_metric_text(res.get('metrics'))}")
            else:
                n_fail += 1
                bar.write(f"FAILED   {task['label']}: {res.get('error')}")
            bar.set_postfix(failed=n_fail, left=len(todo) - n_ok - n_fail, refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        executor.close()
        store.reset_running()
    if interrupted:
        raise RunInterrupted(f"sweep interrupted after {n_ok} finished and {n_fail} failed runs "
                             f"(all recorded in {folder}): run the same command to continue")
    return SweepOutcome(len(plan), skipped, n_ok, n_fail, folder)
