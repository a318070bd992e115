"""Hostile input and faults: every case of docs/reliability.md that must not come back.

Malicious checkpoints, images read at full precision, interruptions at any instant, concurrent
writers, orphaned workers, NaN/bool/path mistakes, unbounded sizes, disk full, read-only folders.
"""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inrlab import Image, InrlabError, Trainer, load_run, preset
from inrlab.cli import main
from inrlab.config import ActivationConfig, RunConfig, SignalConfig, coerce, from_dict, set_field
from inrlab.errors import RunInterrupted
from inrlab.problems import load_problem as load_signal
from inrlab.train.trainer import LOCK_NAME, run
from inrlab.utils import FolderLock, atomic_torch_save


@pytest.fixture(autouse=True)
def default_sigint():
    """Python's own Ctrl-C handler during each test: a test run started in the background (as CI
    may do) inherits SIGINT ignored, and the deferred-stop tests are about the default handler."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)

# A 1-D run that is fast (a few ms a step) but uses every source of state: minibatch RNG, Adam,
# a cosine schedule, periodic evaluation and checkpoints.
TINY = {"signal.name": "sines:2,5@128", "model.width": 16, "model.depth": 2, "train.steps": 14,
        "train.batch_size": 32, "train.schedule": "cosine", "train.eval_every": 3,
        "train.checkpoint_every": 4, "train.lr": 1e-2, "train.device": "cpu"}


def tiny_cfg(**over) -> RunConfig:
    cfg = preset("relu")
    for k, v in {**TINY, **over}.items():
        set_field(cfg, k, v)
    return cfg


def history_rows(folder: Path) -> list[dict]:
    rows = [json.loads(s) for s in (folder / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted tiny run: final weights and history."""
    out = tmp_path_factory.mktemp("ref") / "run"
    res = run(tiny_cfg(), out, progress=False)
    return res.model.state_dict(), history_rows(out)


def assert_same_as_reference(out: Path, reference) -> None:
    weights, hist = reference
    res = run(tiny_cfg(), out, resume=True, progress=False)
    for k, v in weights.items():
        assert torch.equal(res.model.state_dict()[k], v), k
    assert history_rows(out) == hist


# ---------------------------------------------------------------------------- checkpoints


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_malicious_checkpoint_is_refused_without_running(tmp_path):
    out = tmp_path / "run"
    run(tiny_cfg(**{"train.steps": 2}), out, progress=False)
    marker = tmp_path / "marker"
    with open(out / "checkpoint.pt", "wb") as f:
        pickle.dump({"step": 1, "model": _Exploit(marker)}, f)
    with pytest.raises(InrlabError, match="checkpoint .* corrupt"):
        load_run(out)
    with pytest.raises(InrlabError, match="corrupt"):
        run(tiny_cfg(**{"train.steps": 4}), out, resume=True, progress=False)
    assert not marker.exists()
    # a real torch.save'd checkpoint with a code-carrying object is refused as well
    torch.save({"step": 1, "model": _Exploit(marker)}, out / "checkpoint.pt")
    with pytest.raises(InrlabError):
        load_run(out)
    assert not marker.exists()


def test_checkpoint_without_history_is_one_line_error(tmp_path):
    out = tmp_path / "run"
    run(tiny_cfg(**{"train.steps": 2}), out, progress=False)
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    del ck["history"]
    torch.save(ck, out / "checkpoint.pt")
    with pytest.raises(InrlabError, match="no history"):
        run(tiny_cfg(**{"train.steps": 4}), out, resume=True, progress=False)


def test_disk_full_while_checkpointing_keeps_old_file_and_no_tmp(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    cfg = tiny_cfg(**{"train.steps": 8})
    with pytest.raises(RunInterrupted):  # a first checkpoint at step 4, then stop
        _train_interrupting(cfg, out, at_step=5)
    before = (out / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(InrlabError, match="No space left.*checkpoint of step 4 is kept"):
        run(cfg, out, resume=True, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not list(out.glob("*.tmp"))
    res = run(cfg, out, resume=True, progress=False)  # space freed: the run completes
    assert res.metrics["steps"] == 8


def test_atomic_save_removes_tmp_on_failure(tmp_path, monkeypatch):
    def boom(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        atomic_torch_save({"a": torch.zeros(1)}, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- resume


def _train_interrupting(cfg: RunConfig, out: Path, at_step: int, where: str = "loss",
                        resume: bool = False):
    """Train ``cfg`` into ``out`` and interrupt it at ``at_step`` (1-based) at ``where``."""
    trainer = Trainer(cfg, None, out, resume=resume, progress=False)
    calls = {"n": trainer.step}

    def bump() -> bool:
        return calls["n"] + 1 == at_step

    if where == "loss":  # before the step touches any state
        fwd = trainer.model.register_forward_hook(
            lambda *a: (_ for _ in ()).throw(KeyboardInterrupt) if bump() and trainer.model.training
            else None)
    elif where == "pre-step":  # inside optimizer.step, before the update
        trainer.opt.register_step_pre_hook(
            lambda *a: (_ for _ in ()).throw(KeyboardInterrupt) if bump() else None)
    elif where == "post-step":  # inside optimizer.step, after the update
        trainer.opt.register_step_post_hook(
            lambda *a: (_ for _ in ()).throw(KeyboardInterrupt) if bump() else calls.update(
                n=calls["n"] + 1))
    elif where == "signal":  # a real SIGINT delivered mid-step: deferred to the step boundary
        trainer.opt.register_step_pre_hook(
            lambda *a: os.kill(os.getpid(), signal.SIGINT) if bump() else None)
    elif where == "sigterm":
        trainer.opt.register_step_pre_hook(
            lambda *a: os.kill(os.getpid(), signal.SIGTERM) if bump() else None)
    if where in ("loss", "pre-step", "signal", "sigterm"):
        trainer.opt.register_step_post_hook(lambda *a: calls.update(n=calls["n"] + 1))
    try:
        return trainer.train()
    finally:
        if where == "loss":
            fwd.remove()


@pytest.mark.parametrize("where", ["loss", "pre-step", "post-step", "signal", "sigterm"])
@pytest.mark.parametrize("at_step", [1, 5, 13])
def test_interrupt_anywhere_then_resume_is_bit_exact(tmp_path, reference, where, at_step):
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        _train_interrupting(tiny_cfg(), out, at_step, where)
    assert not list(out.glob("*.tmp"))
    # a second interruption of the resumed run, later on
    if at_step < 9:
        with pytest.raises(RunInterrupted):
            _train_interrupting(tiny_cfg(), out, at_step + 4, where, resume=True)
    assert_same_as_reference(out, reference)


def test_signal_from_another_thread_defers_to_step_boundary(tmp_path, reference):
    """A SIGINT sent at a random instant from a thread stops the run between two steps."""
    import threading

    for delay in (0.0, 0.003, 0.011):
        out = tmp_path / f"run{delay}"
        cfg = tiny_cfg(**{"train.steps": 14})
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        trainer = Trainer(cfg, None, out, progress=False)
        # start the clock inside training (handlers installed), at the first update
        def start_once(*a, timer=timer):
            if not (timer.is_alive() or timer.finished.is_set()):
                timer.start()

        trainer.opt.register_step_pre_hook(start_once)
        try:
            trainer.train()
        except RunInterrupted:
            pass
        timer.join()
        assert_same_as_reference(out, reference)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_resume_truncates_duplicate_and_half_written_history(tmp_path, reference):
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        _train_interrupting(tiny_cfg(), out, 11, "post-step")  # checkpoint of step 8 kept
    with open(out / "history.jsonl", "a") as f:
        f.write('{"step": 9, "loss": 1.0}\n{"step": 3, "loss"')  # duplicate + half a line
    assert_same_as_reference(out, reference)


def test_corrupt_metrics_json_on_resume_is_not_fatal(tmp_path, reference):
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        _train_interrupting(tiny_cfg(), out, 6)
    (out / "metrics.json").write_text("{not json")
    assert_same_as_reference(out, reference)
    (out / "metrics.json").write_text("[1, 2")
    assert load_run(out).metrics == {}


# ---------------------------------------------------------------------------- one writer


def test_second_writer_gets_folder_in_use_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        _train_interrupting(tiny_cfg(), out, 6)
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from pathlib import Path
        from inrlab.utils import FolderLock
        lock = FolderLock(Path({str(out)!r}), {LOCK_NAME!r}, "x", "y")
        print("locked", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InrlabError, match=f"in use by .*PID {holder.pid}"):
            run(tiny_cfg(), out, resume=True, progress=False)
        assert main(["fit", "--config", str(_toml(tmp_path)), "--out", str(out), "--resume",
                     "--quiet"]) == 2
    finally:
        holder.kill()  # SIGKILL: the kernel drops its flock, so the lock is not stale
        holder.wait()
    res = run(tiny_cfg(), out, resume=True, progress=False)
    assert res.metrics["steps"] == 14
    FolderLock(out, LOCK_NAME, "x", "y").release()  # free again after the run


def _toml(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    lines = []
    for section in ("signal", "model", "train"):
        lines.append(f"[{section}]")
        for k, v in TINY.items():
            if k.startswith(section + "."):
                lines.append(f"{k.split('.', 1)[1]} = {json.dumps(v)}")
    p.write_text('preset = "relu"\n' + "\n".join(lines) + "\n")
    return p


def test_pool_worker_dies_with_killed_driver(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from multiprocessing import get_context
        from inrlab.sweep.executors import _Worker
        if __name__ == "__main__":
            w = _Worker(get_context("spawn"), {{}}, 1)
            print(w.proc.pid, flush=True)
            time.sleep(120)
    """)
    script = tmp_path / "driver.py"
    script.write_text(code)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(driver.stdout.readline())
    time.sleep(1.0)  # let the worker start its watchdog
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 20
    while time.time() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its killed driver"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


# ---------------------------------------------------------------------------- images


def _png16(path: Path, a: np.ndarray) -> None:
    import png

    h, w = a.shape[:2]
    planes = 1 if a.ndim == 2 else a.shape[2]
    png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16).write(
        open(path, "wb"), a.reshape(h, w * planes))


@pytest.fixture
def pattern():
    rng = np.random.default_rng(0)
    return rng.integers(0, 65536, (12, 10, 4)).astype(np.uint16)


def _unit(img: Image) -> np.ndarray:
    return img.grid(img.targets) * 0.5 + 0.5


def test_16bit_gray_png_full_precision(tmp_path, pattern):
    _png16(tmp_path / "g.png", pattern[..., 0])
    got = _unit(Image(str(tmp_path / "g.png"), heldout=0))[..., 0]
    np.testing.assert_allclose(got, pattern[..., 0] / 65535, atol=1e-7)
    assert got.max() > 0.9 and len(np.unique(pattern[..., 0] // 256)) > 1  # not clipped to 255


@pytest.mark.parametrize("planes", [2, 3, 4])
def test_16bit_colour_png_full_precision(tmp_path, pattern, planes):
    _png16(tmp_path / "c.png", pattern[..., :planes])
    got = _unit(Image(str(tmp_path / "c.png"), heldout=0))
    keep = 1 if planes == 2 else 3  # alpha dropped
    np.testing.assert_allclose(got, pattern[..., :keep] / 65535, atol=1e-7)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1"])
def test_8bit_modes(tmp_path, mode):
    from PIL import Image as PILImage

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    im = PILImage.fromarray(rgb).convert(mode)
    im.save(tmp_path / "i.png")
    expect = np.asarray(im.convert("RGB" if mode in ("RGBA", "P", "RGB") else "L"), np.float64)
    expect = expect / 255 if expect.ndim == 3 or mode == "L" else expect / 255
    got = _unit(Image(str(tmp_path / "i.png"), heldout=0))
    np.testing.assert_allclose(got.reshape(expect.shape), expect, atol=1e-7)


@pytest.mark.parametrize("shape", [(8, 9), (8, 9, 3)])
def test_float_tiff_in_unit_range_is_kept(tmp_path, shape):
    import tifffile

    a = np.random.default_rng(2).random(shape).astype(np.float32) * 0.5 + 0.25
    tifffile.imwrite(tmp_path / "f.tif", a, photometric="rgb" if a.ndim == 3 else "minisblack")
    got = _unit(Image(str(tmp_path / "f.tif"), heldout=0))
    np.testing.assert_allclose(got.reshape(shape), a, atol=1e-7)


def test_16bit_tiff_and_nan_tiff(tmp_path, pattern):
    import tifffile

    tifffile.imwrite(tmp_path / "u.tif", pattern[..., :3])
    got = _unit(Image(str(tmp_path / "u.tif"), heldout=0))
    np.testing.assert_allclose(got, pattern[..., :3] / 65535, atol=1e-7)
    bad = np.ones((8, 8), np.float32)
    bad[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "n.tif", bad)
    with pytest.raises(InrlabError, match="NaN"):
        Image(str(tmp_path / "n.tif"))


def test_decompression_bomb_is_one_line_error(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    PILImage.new("L", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setenv("INRLAB_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InrlabError, match="INRLAB_MAX_IMAGE_PIXELS"):
        Image(str(tmp_path / "big.png"))
    monkeypatch.setenv("INRLAB_MAX_IMAGE_PIXELS", "2000")
    assert Image(str(tmp_path / "big.png")).grid_shape == (40, 40)


def test_garbage_image_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InrlabError, match="cannot read image"):
        Image(str(tmp_path / "x.png"))


# ---------------------------------------------------------------------------- size guards


def test_size_guards_name_the_limit(monkeypatch):
    with pytest.raises(InrlabError, match="100,000,000,000 samples.*INRLAB_MAX_MEMORY_GB"):
        load_signal(SignalConfig("sines:5@100000000000"))
    monkeypatch.setenv("INRLAB_MAX_MEMORY_GB", "0.01")
    with pytest.raises(InrlabError, match="signal.size.*INRLAB_MAX_MEMORY_GB"):
        Image("camera", size=100000)


@pytest.mark.parametrize("argv, msg", [
    (["fit", "sines:5@100000000000"], "INRLAB_MAX_MEMORY_GB"),
    (["fit", "sines:nan"], "finite"),
    (["fit", "sines:inf@64"], "finite"),
    (["fit", "sines:5", "--lr", "nan"], "finite"),
    (["fit", "sines:5", "--sigma", "inf", "--preset", "ffe"], "finite"),
    (["fit", "sines:5", "--width", "1e999"], "needs a int"),
    (["fresh", "sines:3@256", "--preset", "siren", "--sweep", "omega0_first=nan,10"], "NaN"),
    (["fresh", "sines:3@256", "--preset", "siren", "--sweep", "omega0_first=1:1000000:1"],
     "INRLAB_MAX_FRESH_CANDIDATES"),
    (["fit", "sines:5@64", "--width", "100000000"], "INRLAB_MAX_MEMORY_GB"),
    (["bench", "step-time", "--repeats", "0"], "--repeats 0"),
    (["bench", "step-time", "--profile", "-1"], "--profile -1"),
    (["bench", "entk", "--points", "256", "-3"], "--points -3"),
])
def test_cli_bad_numbers_are_one_line_errors(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrlab: error:") and msg in err and err.count("\n") == 1


def test_bench_step_time_runs_with_its_defaults(tmp_path):
    """``--profile`` defaults to 0 (off): the numeric checks must let it through."""
    assert main(["bench", "step-time", "--presets", "relu", "--size", "8", "--repeats", "1",
                 "--out", str(tmp_path / "st")]) == 0


def test_ntk_points_memory_guard(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("INRLAB_MAX_MEMORY_GB", "0.001")
    assert main(["ntk", "sines:3@4096", "--preset", "relu", "--points", "4096", "--out",
                 str(tmp_path / "n")]) == 2
    assert "--points" in capsys.readouterr().err


# ---------------------------------------------------------------------------- config parsing


@pytest.mark.parametrize("path", ["model.encoding.sigma", "model.activation.omega0_first",
                                  "train.lr", "train.gamma", "train.adam_eps", "signal.heldout",
                                  "model.norm_momentum", "model.activation.first_bias_scale"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_fail_validation(path, bad):
    cfg = preset("ffe")
    cfg.model.activation = ActivationConfig(kind="sine")
    obj = cfg
    *head, name = path.split(".")
    for part in head:
        obj = getattr(obj, part)
    setattr(obj, name, bad)  # the Python API bypasses coerce: validate must catch it
    with pytest.raises(InrlabError):
        cfg.validate()
    fresh = preset("ffe")
    fresh.model.activation = ActivationConfig(kind="sine")
    with pytest.raises(InrlabError, match="finite"):
        set_field(fresh, path, str(bad))


def test_toml_booleans_are_not_numbers(tmp_path):
    with pytest.raises(InrlabError, match="model.width"):
        from_dict(RunConfig, {"model": {"width": True}})
    with pytest.raises(InrlabError, match="signal.gray"):
        from_dict(RunConfig, {"signal": {"gray": 1}})
    with pytest.raises(InrlabError, match="train.lr"):
        coerce(float, False, "train.lr")
    assert coerce(bool, "true", "x") is True


def test_override_value_is_not_taken_as_signal(tmp_path, capsys):
    toml = _toml(tmp_path)
    out = tmp_path / "r"
    assert main(["fit", "--config", str(toml), "--model.width", "8", "--steps", "2", "--out",
                 str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["signal"]["name"] == "sines:2,5@128" and cfg["model"]["width"] == 8
    assert main(["fit", "--lr", "-1", "sines:3@64"]) == 2
    assert "train.lr=-1.0 is impossible" in capsys.readouterr().err


def test_non_utf8_toml_files(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_bytes(b'[model]\nwidth = 16 # \xff\xfe\n')
    assert main(["fit", "--config", str(p)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["sweep", "run", str(p)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../escape", "/abs", "..", ".hidden", "a/b"])
def test_sweep_name_cannot_traverse(tmp_path, name, capsys):
    p = tmp_path / "s.toml"
    p.write_text(f'name = {json.dumps(name)}\npreset = "relu"\n[axes]\nseeds = [0]\n')
    assert main(["sweep", "run", str(p)]) == 2
    assert "plain folder name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape").exists()


# ---------------------------------------------------------------------------- folders


def test_overwrite_on_unwritable_run_folder(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(tiny_cfg(**{"train.steps": 2}), out, progress=False)

    def denied(self, missing_ok=False):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", denied)
    with pytest.raises(InrlabError, match="cannot replace the run .*Permission denied"):
        Trainer(tiny_cfg(**{"train.steps": 2}), None, out, overwrite=True, progress=False)


def test_ntk_out_is_checked_before_work(tmp_path, capsys):
    base = ["ntk", "sines:3@64", "--preset", "relu", "--points", "16", "--model.width", "8"]
    (tmp_path / "file").write_text("x")
    assert main([*base, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "n")]) == 0
    assert main([*base, "--out", str(tmp_path / "n")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "n"), "--overwrite"]) == 0


def test_removed_commands_and_local_workers_zero(tmp_path, capsys):
    assert main(["repro", "configs/iga/kodak_quick.toml", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inrlab sweep run configs/papers/" in err
    assert main(["fresh-validate", "x.toml", "--tier", "quick"]) == 2
    assert "configs/papers/fresh_validation.toml" in capsys.readouterr().err
    (tmp_path / "s.toml").write_text('name = "s"\npreset = "relu"\n[axes]\nseeds = [0]\n')
    assert main(["sweep", "run", str(tmp_path / "s.toml"), "--executor", "local", "--workers", "0",
                 "--out", str(tmp_path / "sw")]) == 2
    assert "--workers 0" in capsys.readouterr().err


def test_fresh_out_refuses_to_replace_results(tmp_path, capsys):
    base = ["fresh", "sines:3@128", "--preset", "siren", "--sweep", "omega0_first=10,20",
            "--inits", "2", "--bins", "8", "--model.width", "8", "--out", str(tmp_path / "f")]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_allocation_failure_is_one_line(monkeypatch, capsys):
    import inrlab.train.trainer as trainer

    def oom(*a, **k):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9e12")

    monkeypatch.setattr(trainer, "run", oom)
    assert main(["fit", "sines:3@64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrlab: error: out of memory") and err.count("\n") == 1


def test_iga_cached_balance_survives_resume(tmp_path):
    """IGA reuses S for ``every`` steps; the cache is checkpointed, so a resume between two
    recomputations is still exact."""
    over = {"train.technique": "iga", "train.iga.every": 3, "train.iga.group": 8,
            "train.iga.end": 4, "train.batch_size": None, "train.steps": 9}
    ref = run(tiny_cfg(**over), tmp_path / "ref", progress=False).model.state_dict()
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        _train_interrupting(tiny_cfg(**over), out, 6, "pre-step")  # resumes at step 5
    res = run(tiny_cfg(**over), out, resume=True, progress=False)
    for k, v in ref.items():
        assert torch.equal(res.model.state_dict()[k], v), k


def test_load_run_reads_a_folder_in_use_without_writing(tmp_path):
    out = tmp_path / "run"
    run(tiny_cfg(**{"train.steps": 4}), out, progress=False)
    lock = FolderLock(out, LOCK_NAME, "x", "y")  # a live writer
    before = {f.name: f.stat().st_mtime_ns for f in out.iterdir()}
    try:
        res = load_run(out)
    finally:
        lock.release()
    assert res.metrics["steps"] == 4 and len(res.history) == 2
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir()} == before


SLOW_TECHNIQUE = """
import time
from inrlab.techniques import TECHNIQUES, Technique


class Slow(Technique):
    \"\"\"Plain MSE that takes 50 ms a step, so a run lasts long enough to be stopped.\"\"\"

    def loss(self, model, batch, pred, step):
        time.sleep(0.05)
        return super().loss(model, batch, pred, step)


TECHNIQUES["slow"] = Slow
"""


@pytest.mark.slow  # spawns a worker and trains twice: ~6 s idle, ~30 s on a loaded 2-core box
def test_local_pool_close_checkpoints_busy_run_at_a_step_boundary(tmp_path):
    """Ctrl-C of `sweep run --executor local`: close() stops a busy worker with SIGTERM; it
    checkpoints between steps, reports, and exits at once; the resumed run is bit-exact."""
    from inrlab.sweep.executors import LocalPool, _Worker
    from inrlab.sweep.spec import load_plugins

    (tmp_path / "slow_technique.py").write_text(SLOW_TECHNIQUE)
    load_plugins(["slow_technique"], [str(tmp_path)])
    over = {"train.steps": 30, "train.eval_every": 1, "train.checkpoint_every": 1000,
            "train.technique": "slow"}  # 1.5 s of wall time: outlasts close()'s 0.5 s grace
    out = tmp_path / "run"
    pool = LocalPool(1, threads=1)
    w = _Worker(pool.ctx, {}, 1)
    pool.pool = [w]
    w.task = {"key": "k", "config": tiny_cfg(**over).to_dict(), "run_dir": str(out),
              "plugins": ["slow_technique"], "paths": [str(tmp_path)]}
    w.conn.send(w.task)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "history.jsonl").exists():
        time.sleep(0.05)
    t0 = time.time()
    pool.close()
    assert time.time() - t0 < 15 and not w.proc.is_alive()
    assert not (out / "metrics.json").exists()  # stopped, not finished
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 0 < ck["step"] < 30 and ck["step"] == len(ck["history"])  # one row per step
    res = run(tiny_cfg(**over), out, resume=True, progress=False)
    ref = run(tiny_cfg(**over), tmp_path / "ref", progress=False)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(res.model.state_dict()[k], v), k


def test_stop_request_after_the_last_step_is_delivered_not_dropped():
    from inrlab.train.stop import DeferredStop

    with pytest.raises(KeyboardInterrupt):
        with DeferredStop() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested == "SIGINT"  # deferred: nothing raised inside the block
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sweep_with_too_many_runs_is_refused_before_planning(tmp_path, capsys):
    axis = json.dumps(list(range(1, 101)))
    p = tmp_path / "s.toml"
    p.write_text(f'name = "big"\npreset = "relu"\n[axes]\nseeds = {axis}\n"model.width" = {axis}\n'
                 f'"model.depth" = {axis}\n')
    t0 = time.time()
    assert main(["sweep", "run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "1,000,000 runs" in capsys.readouterr().err and time.time() - t0 < 10
