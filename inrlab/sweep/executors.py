"""Where the runs of a sweep execute: this process, a local pool of worker processes, or Ray.

Every executor calls :func:`execute_run` on a *task* (a plain dict: key, label, config, job,
run_dir, plugins, paths) and yields ``(task, result)`` pairs as runs complete. A result is a dict with
``status`` ("finished", "failed" or "interrupted"), ``metrics``, ``error``, ``host``, ``device`` and
``wall_seconds``; a worker that dies (killed, out of memory) yields a "failed" result for its
run, and the others go on.

Devices: a run's config keeps ``train.device = "auto"``; the executor pins each worker to one GPU
through ``CUDA_VISIBLE_DEVICES`` (local pool: round robin over ``devices``; Ray: its own GPU
assignment), so a run resumed on another worker still matches its checkpoint.
"""

from __future__ import annotations

import atexit
import base64
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing import connection, get_context
from pathlib import Path
from typing import Any

from ..errors import InrlabError, RunInterrupted
from ..files import contained

Task = dict[str, Any]
Result = dict[str, Any]
OnStart = Callable[[Task], None]
# Small run files a remote worker sends back when the driver cannot see its disk (Ray).
SHIPPED = ("config.json", "history.jsonl", "metrics.json", "reconstruction.png", "summary.png")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def execute_run(task: Task) -> Result:
    """Execute one run's job in this process (training resumes from its checkpoint); never raises
    an Exception: failures come back as ``status="failed"`` with a one-line error and the
    traceback."""
    import torch

    from ..config import RunConfig, from_dict
    from ..utils import resolve_device
    from .jobs import execute_job
    from .spec import load_plugins

    t0 = time.time()
    out: Result = {"key": task["key"], "host": socket.gethostname(), "metrics": None}
    try:
        load_plugins(task.get("plugins", []), task.get("paths", []))
        if task.get("threads"):
            torch.set_num_threads(task["threads"])
        cfg = from_dict(RunConfig, task["config"])
        out["device"] = str(resolve_device(cfg.train.device))
        if torch.cuda.is_available() and out["device"].startswith("cuda"):
            out["device"] += f" ({torch.cuda.get_device_name(resolve_device(cfg.train.device))})"
        run_dir = Path(task["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        out["metrics"] = execute_job(cfg, run_dir, task.get("job") or {})
        out["status"] = "finished"
        if task.get("ship_files"):
            files = [run_dir / n for n in SHIPPED] + sorted((run_dir / "diagnostics").glob("*.png"))
            out["files"] = {str(f.relative_to(run_dir)): base64.b64encode(f.read_bytes()).decode()
                            for f in files if f.is_file()}
    except RunInterrupted as e:
        out.update(status="interrupted", error=_one_line(e))
    except Exception as e:  # noqa: BLE001  (any failure of one run must not stop the sweep)
        out.update(status="failed", error=_one_line(e), traceback=traceback.format_exc())
    out["wall_seconds"] = round(time.time() - t0, 3)
    return out


class InProcess:
    """Runs one after another in this process (the default; Ctrl-C checkpoints the current run)."""

    name = "inprocess"

    def run(self, tasks: list[Task], on_start: OnStart) -> Iterator[tuple[Task, Result]]:
        for t in tasks:
            on_start(t)
            yield t, execute_run(t)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- local pool


PARENT_POLL_SECONDS = 0.2


def die_with_parent(parent: int, poll: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that SIGKILLs this process as soon as its parent ``parent`` is gone.

    A pool worker must not outlive its driver: a sweep killed with SIGKILL could otherwise be
    rerun while its orphans still train the same run folders. (Polling ``os.getppid()`` works on
    every POSIX system and, unlike Linux's PR_SET_PDEATHSIG, does not fire when merely the
    driver *thread* that started the worker ends.) The run resumes from its last checkpoint."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGKILL)

    th = threading.Thread(target=watch, name="die-with-parent", daemon=True)
    th.start()
    return th


def _worker_main(conn: connection.Connection, env: dict[str, str], threads: int | None,
                 parent: int | None = None) -> None:
    """Loop of a pool worker: receive a task, send its result, until ``None`` arrives; the
    worker kills itself when the driver process ``parent`` dies."""
    if parent is not None:
        die_with_parent(parent)
    os.environ.update(env)
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            conn.send(execute_run(task))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return


class _Worker:
    def __init__(self, ctx: Any, env: dict[str, str], threads: int | None):
        self.env, self.threads = env, threads
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, env, threads, os.getpid()),
                                daemon=True)
        self.proc.start()
        child.close()
        self.task: Task | None = None


class LocalPool:
    """``workers`` long-lived processes (spawned, so CUDA is safe); worker i sees GPU
    ``devices[i % len(devices)]`` only. A worker that dies is replaced; its run is recorded failed."""

    name = "local"

    def __init__(self, workers: int, devices: list[str] | None = None, threads: int | None = None):
        if workers < 1:
            raise InrlabError(f"--workers {workers} is impossible: give at least 1")
        self.workers = workers
        self.devices = devices or []
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        # On CPU, split the cores between workers instead of oversubscribing them.
        self.threads = threads or (None if self.devices else max(1, (cpus or 1) // workers))
        self.ctx = get_context("spawn")
        self.pool: list[_Worker] = []

    def _env(self, i: int) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": self.devices[i % len(self.devices)]} if self.devices else {}

    def run(self, tasks: list[Task], on_start: OnStart) -> Iterator[tuple[Task, Result]]:
        queue = deque(tasks)
        n = min(self.workers, len(tasks))
        self.pool = [_Worker(self.ctx, self._env(i), self.threads) for i in range(n)]
        while queue or any(w.task is not None for w in self.pool):
            for w in self.pool:
                if w.task is None and queue:
                    w.task = queue.popleft()
                    on_start(w.task)
                    w.conn.send(w.task)
            busy = [w for w in self.pool if w.task is not None]
            connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for i, w in enumerate(self.pool):
                if w.task is None:
                    continue
                res = None
                try:
                    if w.conn.poll():
                        res = w.conn.recv()
                except (EOFError, OSError):
                    res = None
                if res is not None:
                    task, w.task = w.task, None
                    yield task, res
                elif not w.proc.is_alive():
                    task, w.task = w.task, None
                    code = w.proc.exitcode
                    why = (f"signal {signal.Signals(-code).name}" if code is not None and code < 0
                           else f"exit code {code}")
                    if queue:  # replace the worker only while there is work left
                        self.pool[i] = _Worker(self.ctx, w.env, w.threads)
                    yield task, {"key": task["key"], "status": "failed", "metrics": None,
                                 "error": f"worker process died ({why}) while running this run",
                                 "host": socket.gethostname()}

    def close(self) -> None:
        """Stop the workers: idle ones at once; busy ones get SIGTERM and 20 s
        (their trainer checkpoints at the next step boundary; unlike a second SIGINT after the
        terminal's Ctrl-C, SIGTERM never forces a stop in the middle of a step)."""
        for w in self.pool:
            if not w.proc.is_alive():
                continue
            try:
                if w.task is not None and w.conn.poll(0.5):
                    w.conn.recv()  # its run already stopped (checkpointed on the terminal's Ctrl-C)
                    w.task = None
                if w.task is None:
                    w.conn.send(None)
                else:
                    os.kill(w.proc.pid, signal.SIGTERM)
            except (EOFError, OSError):
                pass
        deadline = time.time() + 20
        for w in self.pool:
            try:  # a signalled worker reports its interrupted run, then may leave
                if w.task is not None and w.conn.poll(max(0.0, deadline - time.time())):
                    w.conn.recv()
                    w.task = None
                    w.conn.send(None)
            except (EOFError, OSError):
                pass
            w.proc.join(max(0.0, deadline - time.time()))
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(5)
        self.pool = []


# ---------------------------------------------------------------------------- Ray


def _exit_now(status: int) -> None:
    """Flush the standard streams and leave without interpreter finalisation."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast when ``host:port`` (or ``ray://host:port``) accepts no TCP connection."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InrlabError(f"Ray address {address!r} is not host:port (or ray://host:port, or "
                          f"'auto'): give the address `ray start --head` printed")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise InrlabError(f"Ray cluster at {address!r} cannot be reached ({e}): start it with "
                          f"`ray start --head` or check host, port and firewall") from None


class RayExecutor:
    """Each run is one Ray task (``max_retries=0``: a crashed worker fails its run, nothing else).

    Without ``address`` a local Ray instance is started (and stopped at the end). Remote nodes need
    inrlab installed; run folders are written on the node that trains, and their small files
    (metrics, history, pictures) are sent back so the driver's sweep folder is complete.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, cpus_per_run: float = 1,
                 gpus_per_run: float | None = None, num_cpus: int | None = None,
                 timeout: float = 30):
        try:
            import ray
        except ImportError:
            raise InrlabError("--executor ray needs Ray: pip install 'inrlab[ray]'") from None
        self.ray = ray
        if address and address != "auto":
            _check_reachable(address, min(timeout, 5))
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = {"PYTHONPATH": os.pathsep.join([pkg_root, *os.environ.get("PYTHONPATH", "").split(
            os.pathsep)]).rstrip(os.pathsep)}
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "runtime_env": {"env_vars": env}}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        self.started = not ray.is_initialized()
        if self.started:
            self._init(kwargs, address, timeout)
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run if gpus_per_run is not None else (
            1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0)
        self.refs: dict[Any, Task] = {}

    def _init(self, kwargs: dict[str, Any], address: str | None, timeout: float) -> None:
        """``ray.init``; connecting to a cluster is bounded by ``timeout`` seconds. (A local
        instance starts in this thread: its processes die with the thread that started them.)"""
        if not address:
            try:
                self.ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001
                raise InrlabError(f"Ray could not start a local instance ({_one_line(e)})") from None
            return
        err: list[BaseException] = []

        def connect() -> None:
            try:
                self.ray.init(**kwargs)
            except BaseException as e:  # noqa: BLE001  (reported in the caller's thread)
                err.append(e)

        th = threading.Thread(target=connect, daemon=True)
        th.start()
        th.join(timeout)
        if th.is_alive():
            # The abandoned ray.init thread cannot be stopped, and Ray's core aborts (SIGABRT,
            # std::bad_alloc) when the interpreter finalises around it: end the process at exit,
            # after the error is reported and the streams are flushed, with the CLI's error status.
            atexit.register(_exit_now, 2)
            raise InrlabError(f"Ray did not connect to {address} within {timeout:g} s: check the "
                              f"address or raise --ray-timeout")
        if err:
            raise InrlabError(f"Ray could not connect to {address} ({_one_line(err[0])}): check "
                              f"--address (or omit it for a local instance)")

    def run(self, tasks: list[Task], on_start: OnStart) -> Iterator[tuple[Task, Result]]:
        ray = self.ray
        remote = ray.remote(execute_run).options(num_cpus=self.cpus_per_run,
                                                 num_gpus=self.gpus_per_run, max_retries=0)
        threads = max(1, int(self.cpus_per_run))
        for t in tasks:
            self.refs[remote.remote({**t, "threads": threads, "ship_files": True})] = t
            on_start(t)
        while self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=1)
            task = self.refs.pop(ready[0])
            try:
                res = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001  (WorkerCrashedError, node died, ...)
                res = {"key": task["key"], "status": "failed", "metrics": None,
                       "error": f"Ray task failed: {_one_line(e)}"}
            _write_shipped(Path(task["run_dir"]), res.pop("files", None) or {})
            yield task, res

    def close(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs = {}
        if self.started:
            self.ray.shutdown()


def _write_shipped(run_dir: Path, files: dict[str, str]) -> None:
    """Write the files a remote worker sent back, where the driver does not have them yet."""
    for name, data in files.items():
        path = contained(run_dir, name, "file shipped back by a Ray worker")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data))


def make_executor(kind: str, *, workers: int | None = None, devices: list[str] | None = None,
                  address: str | None = None, cpus_per_run: float = 1,
                  gpus_per_run: float | None = None, ray_timeout: float = 30) -> Any:
    """``inprocess`` | ``local`` | ``ray`` executor from CLI options."""
    if workers is not None and workers < 1:
        raise InrlabError(f"--workers {workers} is impossible: give at least 1")
    if kind == "inprocess":
        return InProcess()
    if kind == "local":
        if devices is None:
            devices = _visible_gpus()
        return LocalPool(workers or max(1, len(devices) or (os.cpu_count() or 1)), devices)
    if kind == "ray":
        return RayExecutor(address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                           num_cpus=workers, timeout=ray_timeout)
    raise InrlabError(f"unknown executor {kind!r}: choose inprocess, local or ray")


def _visible_gpus() -> list[str]:
    """GPU ids this process may use (``CUDA_VISIBLE_DEVICES`` or all), without initialising CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]
