"""Sweeps: files, plans, store, executors, faults, tables and the HTML report."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inrlab.cli import main
from inrlab.config import preset, set_fields
from inrlab.errors import InrlabError
from inrlab.sweep import LocalPool, Store, SweepLock, load_sweep, make_table, run_sweep, to_csv
from inrlab.sweep.spec import config_key

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name = "tiny"
preset = "relu"
[signal]
size = 16
[model]
width = 16
depth = 2
[train]
steps = 6
eval_every = 3
checkpoint_every = 3
"""

FAULTS = '''
import errno, os, signal
from inrlab.techniques import TECHNIQUES, Technique

class Boom(Technique):
    def loss(self, model, batch, pred, step):
        if step == 2:
            raise RuntimeError("boom at step 2")
        return super().loss(model, batch, pred, step)

class Suicide(Technique):
    def loss(self, model, batch, pred, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(model, batch, pred, step)

class DiskFull(Technique):
    def setup(self, model, problem):
        raise OSError(errno.ENOSPC, "No space left on device")

TECHNIQUES.update(boom=Boom, suicide=Suicide, diskfull=DiskFull)
'''


def write(tmp_path: Path, body: str, faults: bool = False, top: str = "") -> Path:
    """The TINY base plus ``body``; ``top``: top-level keys (before the base tables)."""
    if faults:
        (tmp_path / "sweep_faults.py").write_text(FAULTS)
        top += 'plugins = ["sweep_faults"]\n'
    p = tmp_path / "s.toml"
    p.write_text(top + TINY + body)
    return p


def rows(folder: Path) -> dict[str, dict]:
    s = Store(folder, readonly=True)
    try:
        return {r["label"]: r for r in s.rows()}
    finally:
        s.close()


# ---------------------------------------------------------------------------- files and plans


def test_plan_crosses_axes_variants_tiers_and_excludes(tmp_path):
    p = write(tmp_path, """
[axes]
signals = ["astronaut", "camera"]
model.encoding.sigma = [2.0, 4.0]
seeds = [0, 1, 2]
[[axes.method]]
label = "ffe"
preset = "ffe"
[[axes.method]]
label = "ffe-wide"
preset = "ffe"
"model.width" = 32
[[exclude]]
signal = "camera"
method = "ffe-wide"
[tiers.quick]
"train.steps" = 4
[tiers.quick.axes]
seeds = [0]
[tiers.full]
"train.steps" = 9
""")
    sw = load_sweep(p)
    quick = sw.plan()  # default tier: quick
    assert sw.default_tier == "quick" and len(quick) == 2 * 2 * 1 * 2 - 2
    full = sw.plan("full")
    assert len(full) == 2 * 2 * 3 * 2 - 2 * 3
    by = {r.label: r for r in full}
    r = by["astronaut-sigma4.0-seed2-ffe-wide"]
    c = r.config
    # preset from the variant, base tables, tier, then axes
    assert c.preset == "ffe" and c.model.encoding.kind == "fourier" and c.model.encoding.sigma == 4.0
    assert c.model.width == 32 and c.model.depth == 2 and c.train.steps == 9 and c.train.seed == 2
    assert c.train.lr == preset("ffe").train.lr and c.signal.size == 16
    assert r.axes == {"signal": "astronaut", "model.encoding.sigma": "4.0", "seed": "2",
                      "method": "ffe-wide"}
    assert by["astronaut-sigma4.0-seed2-ffe"].config.model.width == 16
    assert not any(k.startswith("camera") and k.endswith("ffe-wide") for k in by)
    # keys: stable, distinct, and independent of the device
    assert len({r.key for r in full}) == len(full)
    c2 = load_sweep(p).plan("full")[0].config
    c2.train.device = "cpu"
    assert config_key(c2) == full[0].key


@pytest.mark.parametrize("body,msg", [
    ("[axes]\nseeds = [0 1]\n", "line 14, column 12): 'seeds = [0 1]'"),       # malformed TOML
    ("[axes]\nseeds = [0, 1\n", "at end of document (line 14)"),
    ("[axes]\n\"model.widht\" = [8, 16]\n", "line 14: axis 'model.widht' names no config field"),
    ("[axes]\nmodel.encoding.sigmaa = [1.0]\n", "names no config field"),
    ("[axes]\npresets = [\"relu\", \"sirne\"]\n", "unknown preset 'sirne'"),
    ("[axes]\ntechniques = [\"mse\", \"iga-typo\"]\n", "unknown technique 'iga-typo'"),
    ("[axes]\nseeds = []\n", "non-empty array"),
    ("[axes]\n\"model.width\" = [8, -1]\n", "model.width=-1 is impossible"),
    ("[axes]\n\"model.width\" = [\"wide\"]\n", "needs a int"),
    ("[axes]\nseeds = [0]\n[tiers.quick.axes]\nnorms = [\"batch\"]\n", "does not define"),
    ("colour = 3\n", "line 13: field 'train.colour' names no config field"),
    ("[axes]\nseeds = [0, 1]\n[[exclude]]\nwidth = 3\n", "not an axis"),
    ("[axes]\nseeds = [0, 0]\n", "repeats a value"),
])
def test_bad_sweep_file_is_one_line_before_anything_runs(tmp_path, capsys, body, msg):
    p = write(tmp_path, body)
    out = tmp_path / "out"
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inrlab: error: sweep file") and msg in err and "\n" not in err, err
    assert not out.exists()


def test_unknown_top_level_key_names_its_line(tmp_path, capsys):
    p = write(tmp_path, "[axes]\nseeds = [0]\n", top="\ncolour = 3\n")
    assert main(["sweep", "run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "line 2: unknown key 'colour'" in capsys.readouterr().err


def test_unknown_tier(tmp_path, capsys):
    p = write(tmp_path, "[axes]\nseeds = [0]\n[tiers.quick]\n\"train.steps\" = 2\n")
    assert main(["sweep", "run", str(p), "--tier", "ful", "--out", str(tmp_path / "o")]) == 2
    assert "has no tier 'ful': choose one of quick" in capsys.readouterr().err


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    """A finished 1 signal × 2 presets × 2 seeds sweep (in-process), shared by several tests."""
    tmp = tmp_path_factory.mktemp("sweep")
    p = write(tmp, '[axes]\nsignals = ["camera"]\npresets = ["relu", "siren"]\nseeds = [0, 1]\n')
    out = tmp / "out"
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 0
    return p, out


def test_store_rows_and_table_match_run_folders(done_sweep, capsys):
    p, out = done_sweep
    got = rows(out)
    assert sorted(got) == ["camera-relu-seed0", "camera-relu-seed1", "camera-siren-seed0",
                           "camera-siren-seed1"]
    for r in got.values():
        assert r["status"] == "finished" and r["attempts"] == 1 and r["host"] == socket.gethostname()
        assert r["device"].startswith(("cpu", "cuda")) and r["wall_seconds"] > 0
        m = json.loads((out / r["run_dir"] / "metrics.json").read_text())  # the oracle
        assert r["metrics"]["psnr"] == m["psnr"] and m["steps"] == 6
        assert json.loads((out / r["run_dir"] / "config.json").read_text())["train"]["seed"] == \
            int(r["axes"]["seed"])
    capsys.readouterr()
    assert main(["sweep", "table", str(out)]) == 0
    md = capsys.readouterr().out
    relu = [got[f"camera-relu-seed{s}"]["metrics"]["psnr"] for s in (0, 1)]
    mean, std = np.mean(relu), np.std(relu, ddof=1)
    assert "| signal \\ preset | relu | siren |" in md
    assert f"{mean:.2f} ± {std:.2f}" in md and "mean ± std over seed" in md
    assert main(["sweep", "table", str(out), "--format", "csv", "--metric", "ssim"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "signal,preset,ssim_mean,ssim_std,n,failed,unfinished" and len(lines) == 3
    siren = [got[f"camera-siren-seed{s}"]["metrics"]["ssim"] for s in (0, 1)]
    assert abs(float(lines[2].split(",")[2]) - np.mean(siren)) < 1e-5
    assert main(["sweep", "table", str(out), "--metric", "psnr_typo"]) == 2
    assert "unknown metric 'psnr_typo'" in capsys.readouterr().err
    assert main(["sweep", "table", str(out), "--rows", "signal", "--cols", "preset", "--over", ""]) == 2
    assert "axis 'seed' varies" in capsys.readouterr().err
    assert main(["sweep", "status", str(out)]) == 0
    assert "4 runs — 4 finished, 0 failed" in capsys.readouterr().out


def test_rerun_skips_finished_runs(done_sweep, capsys):
    p, out = done_sweep
    before = rows(out)
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 0
    assert "4 already done, 0 finished" in capsys.readouterr().out
    after = rows(out)
    assert {k: (v["finished"], v["attempts"]) for k, v in after.items()} == \
        {k: (v["finished"], v["attempts"]) for k, v in before.items()}


def test_table_oracle_and_partial_cells():
    runs = [{"axes": {"a": "x", "seed": "0"}, "status": "finished", "metrics": {"psnr": 20.0}},
            {"axes": {"a": "x", "seed": "1"}, "status": "finished", "metrics": {"psnr": 22.0}},
            {"axes": {"a": "x", "seed": "2"}, "status": "failed", "metrics": None},
            {"axes": {"a": "y", "seed": "0"}, "status": "pending", "metrics": None}]
    t = make_table(runs, ["a", "seed"], rows="a")
    x = t.cell(("x",), ())
    assert x.mean == 21.0 and abs(x.std - np.sqrt(2.0)) < 1e-12 and x.failed == 1
    assert to_csv(t).splitlines()[1:] == ["x,21,1.41421,2,1,0", "y,,,0,0,1"]


# ---------------------------------------------------------------------------- faults


def test_crashing_run_is_recorded_and_others_go_on(tmp_path, capsys):
    p = write(tmp_path, '[axes]\nsignals = ["camera"]\ntechniques = ["mse", "boom"]\n', faults=True)
    out = tmp_path / "out"
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 1
    got = rows(out)
    assert got["camera-mse"]["status"] == "finished"
    bad = got["camera-boom"]
    assert bad["status"] == "failed" and bad["error"] == "RuntimeError: boom at step 2"
    assert "Traceback" in bad["traceback"]
    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    assert "failed   camera-boom" in capsys.readouterr().out


def test_local_pool_survives_a_killed_worker(tmp_path):
    p = write(tmp_path, '[axes]\nsignals = ["camera"]\ntechniques = ["suicide", "mse"]\n',
              faults=True)
    # one worker: the run after the killed one needs the replacement worker
    res = run_sweep(load_sweep(p), tmp_path / "out", executor=LocalPool(1), progress=False)
    assert (res.finished, res.failed) == (1, 1)
    got = rows(tmp_path / "out")
    assert got["camera-mse"]["status"] == "finished"
    bad = got["camera-suicide"]
    assert bad["status"] == "failed" and "worker process died (signal SIGKILL)" in bad["error"]


def test_second_sweep_on_the_same_folder_is_refused(tmp_path, capsys):
    p = write(tmp_path, "[axes]\nseeds = [0]\n")
    out = tmp_path / "out"
    out.mkdir()
    with SweepLock(out):
        assert SweepLock.held(out)
        assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"another sweep (pid {os.getpid()}) is writing" in err
    assert not SweepLock.held(out)
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 0


def test_unwritable_folder_and_full_disk(tmp_path, capsys, monkeypatch):
    p = write(tmp_path, '[axes]\nsignals = ["camera"]\ntechniques = ["mse", "diskfull"]\n',
              faults=True)
    (tmp_path / "file").write_text("")
    assert main(["sweep", "run", str(p), "--out", str(tmp_path / "file" / "o"), "--quiet"]) == 2
    assert "cannot create sweep folder" in capsys.readouterr().err
    # a run whose folder cannot be written fails alone, with the reason
    out = tmp_path / "out"
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 1
    got = rows(out)
    assert got["camera-diskfull"]["error"] == "OSError: [Errno 28] No space left on device"
    assert got["camera-mse"]["status"] == "finished"
    # the store itself cannot be written: clear error, nothing half-recorded
    calls = {"n": 0}
    real = Store.record

    def flaky(self, key, result):
        calls["n"] += 1
        if calls["n"] == 2:
            self.conn.execute("BEGIN IMMEDIATE")  # fail inside a transaction, like a full disk
            self.conn.execute("ROLLBACK")
            with self._tx("record a result"):
                raise sqlite3.OperationalError("database or disk is full")
        return real(self, key, result)

    monkeypatch.setattr(Store, "record", flaky)
    out2 = tmp_path / "out2"
    assert main(["sweep", "run", str(p), "--out", str(out2), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot record a result (database or disk is full)" in err and "kept" in err
    got = rows(out2)
    assert [r["status"] for r in got.values()].count("finished") == 1
    assert all(r["status"] in ("finished", "pending") for r in got.values())
    monkeypatch.setattr(Store, "record", real)
    assert main(["sweep", "run", str(p), "--out", str(out2), "--quiet"]) == 1
    assert sorted(r["status"] for r in rows(out2).values()) == ["failed", "finished"]


def test_killed_sweep_restarts_without_losing_finished_runs(tmp_path):
    p = write(tmp_path, '[axes]\nsignals = ["camera"]\nseeds = [0, 1, 2]\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "inrlab.cli", "sweep", "run", str(p), "--out",
                             str(out), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.2)
            if (out / "sweep.db").exists():
                try:
                    if any(r["status"] == "finished" for r in rows(out).values()):
                        break
                except (InrlabError, sqlite3.Error):
                    pass
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    before = {k: v for k, v in rows(out).items() if v["status"] == "finished"}
    assert before and len(before) < 3
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 0
    after = rows(out)
    assert all(r["status"] == "finished" for r in after.values())
    for k, v in before.items():
        assert (after[k]["finished"], after[k]["attempts"]) == (v["finished"], 1)


# ---------------------------------------------------------------------------- Ray


def test_ray_unreachable_address_fails_fast(tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'inrlab[ray]')")
    p = write(tmp_path, "[axes]\nseeds = [0]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.time()
    assert main(["sweep", "run", str(p), "--executor", "ray", "--address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path / "o")]) == 2
    assert time.time() - t < 10
    assert "cannot be reached" in capsys.readouterr().err
    # a port that listens but is no Ray cluster: the connect timeout ends it (in a subprocess,
    # since the abandoned connection attempt keeps a thread)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        t = time.time()
        r = subprocess.run([sys.executable, "-m", "inrlab.cli", "sweep", "run", str(p), "--executor",
                            "ray", "--address", f"127.0.0.1:{srv.getsockname()[1]}", "--ray-timeout",
                            "2", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 2 and "inrlab: error: Ray" in r.stderr, r.stderr[-500:]
    assert time.time() - t < 40


@pytest.mark.slow  # ~30 s on 2 cores: starting Ray and its workers
def test_ray_local_instance_runs_a_sweep(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'inrlab[ray]')")
    from inrlab.sweep import RayExecutor

    p = write(tmp_path, '[axes]\nsignals = ["camera"]\ntechniques = ["mse", "suicide"]\n',
              faults=True)
    ex = RayExecutor(num_cpus=2)
    try:
        res = run_sweep(load_sweep(p), tmp_path / "out", executor=ex, progress=False)
    finally:
        ex.close()
    assert (res.finished, res.failed) == (1, 1)
    got = rows(tmp_path / "out")
    assert got["camera-mse"]["status"] == "finished"
    assert (tmp_path / "out" / got["camera-mse"]["run_dir"] / "reconstruction.png").is_file()
    assert got["camera-suicide"]["status"] == "failed"
    assert "Ray task failed" in got["camera-suicide"]["error"]


# ---------------------------------------------------------------------------- report


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True,
                       timeout=300)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("headless Chromium unavailable (apt-get install chromium failed or not root)")
    return exe


def test_report_renders_in_headless_chromium(done_sweep, tmp_path, capsys):
    exe = _chromium()
    _, out = done_sweep
    run_dir = out / rows(out)["camera-siren-seed1"]["run_dir"]
    (run_dir / "diagnostics").mkdir(exist_ok=True)
    shutil.copy(run_dir / "summary.png", run_dir / "diagnostics" / "ntk_spectrum.png")
    assert main(["report", str(out)]) == 0
    page = out / "report.html"
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'c'}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "<table id=\"results\">" in dom and "relu" in dom and "siren" in dom and "±" in dom
    # 1 curve + 1 target + 2 reconstructions + 2 error maps + 1 diagnostic, all loaded
    assert 'data-images="7"' in dom and 'data-broken-images="0"' in dom, dom[:300]
    assert "ntk_spectrum" in dom and dom.count("alt=\"error map\"") == 2


def test_report_escapes_user_strings(tmp_path, capsys):
    """Run labels, signal paths and errors are user text: the jinja2 template escapes them."""
    p = write(tmp_path, '[axes]\nsignals = ["camera", "<script>alert(1)</script>.png"]\n'
                        '[[axes.method]]\nlabel = "<script>bad()</script>"\npreset = "relu"\n')
    out = tmp_path / "out"
    assert main(["sweep", "run", str(p), "--out", str(out), "--quiet"]) == 1  # the path fails
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<script>alert" not in page and "<script>bad" not in page
    assert "&lt;script&gt;bad()&lt;/script&gt;" in page and "&lt;script&gt;alert(1)" in page


@pytest.mark.parametrize("name,tech,norm,key", [("pe", "iga", "cross", "33aa798e1745ca6e"),
                                                ("hash", "mse", "none", "df5393fb8a6e9413"),
                                                ("siren", "fr", "none", "abdbfcd99826b618"),
                                                ("wire", "mse", "none", "25660b66a52f791c")])
def test_store_keys_survive_per_kind_config_sections(name, tech, norm, key):
    """Keys computed by the flat configs before per-kind sections: old stores keep their runs."""
    cfg = preset(name)
    set_fields(cfg, [("train.technique", tech), ("signal.name", "camera"), ("model.norm", norm)])
    assert config_key(cfg) == key


@pytest.mark.parametrize("name,placement,key", [
    ("siren", "pre", "9a53854bcfbc41a9"), ("finer", "pre", "8b8e7174fd672c73"),
    ("relu", "auto", "06814e65751c69f7"), ("wire", "auto", "4474c944923f9a5e")])
def test_norm_placement_keys(name, placement, key):
    """Keys from before model.norm_placement (norm always pre) are kept by every config that
    still computes 'pre'; sines, whose automatic placement is now 'post', get new keys, the same
    as an explicit 'post'."""
    cfg = preset(name)
    set_fields(cfg, [("signal.name", "camera"), ("model.norm", "batch"),
                     ("model.norm_placement", placement)])
    assert config_key(cfg) == key
    if name in ("siren", "finer"):
        set_fields(cfg, [("model.norm_placement", "auto")])
        auto = config_key(cfg)
        set_fields(cfg, [("model.norm_placement", "post")])
        assert auto != key and auto == config_key(cfg)


def test_new_config_fields_are_left_out_of_store_keys_at_their_default():
    """A field added to the configs changes every sweep key unless ``_KEY_NEW_FIELDS`` leaves it
    out at its default: this fails for a new field missing there (add it with its default). The
    built-in fields are read in a fresh interpreter (other tests register plugin kinds)."""
    from inrlab.config import RunConfig, get_field, set_field
    from inrlab.sweep.spec import _KEY_NEW_FIELDS

    frozen = set(json.loads((Path(__file__).parent / "data" / "key_schema_fields.json").read_text()))
    listed = {".".join((*path, name)): default for (path, name), default in _KEY_NEW_FIELDS.items()}
    code = "import json; from inrlab.config import field_paths; print(json.dumps(field_paths()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    added = set(json.loads(out)) - frozen
    assert added <= set(listed), f"add {sorted(added - set(listed))} to sweep/spec.py _KEY_NEW_FIELDS"
    kinds = {"model.activation.omega_bias": "sine", "model.activation.omega_head": "sine"}
    for path, default in listed.items():
        cfg = RunConfig()
        if path in kinds:  # a field of one kind: read it from that kind's defaults
            set_field(cfg, path.rsplit(".", 1)[0] + ".kind", kinds[path])
        assert get_field(cfg, path) == default, path


def _crafted_store(done_sweep, tmp_path: Path, sql: list[tuple[str, tuple]]) -> Path:
    """A copy of the finished sweep whose ``sweep.db`` was edited by ``sql`` (as an attacker)."""
    out = tmp_path / "deep" / "er" / "sweep"
    shutil.copytree(done_sweep[1], out)
    con = sqlite3.connect(out / "sweep.db")
    for stmt, params in sql:
        con.execute(stmt, params)
    con.commit()
    con.close()
    return out


@pytest.mark.parametrize("cmd", [["sweep", "table"], ["report"], ["sweep", "status"]])
def test_crafted_store_tier_cannot_write_outside(done_sweep, tmp_path, capsys, cmd):
    """issue 21: a ``sweep.db`` tier ``../../..`` made table/report write figures outside."""
    out = _crafted_store(done_sweep, tmp_path, [
        ("UPDATE runs SET tier=?", ("../../..",)),
        ("UPDATE meta SET value=? WHERE key='last_tier'", ("../../..",)),
        ("INSERT OR REPLACE INTO meta VALUES ('plan:../../..', (SELECT value FROM meta WHERE "
         "key='plan:base'))", ()),
        ("INSERT OR REPLACE INTO meta VALUES ('analysis', ?)", (json.dumps({"name": "iga_sines"}),))])
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(out))
    assert main([*cmd, str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "sweep tier '../../..' must be a plain folder name" in err and "\n" not in err
    assert sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(out)) == before
    assert not (out / "analysis_files").exists()


def test_crafted_store_run_dir_cannot_reach_outside(done_sweep, tmp_path, capsys):
    out = _crafted_store(done_sweep, tmp_path, [("UPDATE runs SET run_dir=?", ("../../../..",))])
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "run_dir" in err and "points outside its folder" in err


@pytest.mark.parametrize("tier", ["../x", ".hidden", "a/b"])
def test_sweep_file_tier_names_are_plain(tmp_path, capsys, tier):
    p = write(tmp_path, f'[tiers."{tier}"]\ntrain.steps = 2\n')
    assert main(["sweep", "run", str(p), "--dry-run"]) == 2
    assert "must be a plain folder name" in capsys.readouterr().err
