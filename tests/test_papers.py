"""Each paper's table is a sweep file (configs/papers) + a registered analysis; per-run extras come
from trainer callbacks; runs that are not trainer runs are job kinds. Every paper file plans in
both tiers; the cheap ones run end to end at a tiny test size."""

import re
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import tomllib

from inrlab import Image, preset
from inrlab.cli import main
from inrlab.errors import InrlabError
from inrlab.sweep import Store, load_sweep

PAPERS = Path(__file__).resolve().parents[1] / "configs" / "papers"
FILES = sorted(PAPERS.glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_paper_files_plan_in_both_tiers(path, capsys):
    sweep = load_sweep(path)
    assert sweep.analysis is not None, "a paper's sweep file names its analysis"
    for tier in ("quick", "full"):
        runs = sweep.plan(tier)
        assert runs and len({r.key for r in runs}) == len(runs)
    assert main(["sweep", "run", str(path), "--tier", "full", "--dry-run"]) == 0
    assert "runs planned, analysis" in capsys.readouterr().out


def tiny(tmp_path: Path, name: str, fields: dict, axes: dict) -> Path:
    """configs/papers/NAME.toml with a ``tiny`` tier (``fields``, replaced ``axes``)."""
    data = tomllib.loads((PAPERS / f"{name}.toml").read_text())
    data.setdefault("tiers", {})["tiny"] = {**fields, "axes": axes}
    data["default_tier"] = "tiny"
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def run_tiny(path: Path, out: Path, capsys) -> str:
    """Run the tiny tier, then ``sweep table`` and ``report``; the table's text."""
    assert main(["sweep", "run", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", "table", str(out)]) == 0
    text = capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "id=\"analysis\"" in (out / "report.html").read_text()
    return text


def metrics(out: Path) -> dict[str, dict]:
    s = Store(out, readonly=True)
    try:
        return {r["label"]: r["metrics"] for r in s.rows()}
    finally:
        s.close()


# ---------------------------------------------------------------------------- callbacks


class Recorder:
    def __init__(self):
        self.steps: list[int] = []

    def on_step(self, trainer, step):
        self.steps.append(step)

    def on_end(self, trainer, metrics):
        metrics["recorded"] = len(self.steps)


def test_trainer_callbacks_see_every_step_and_add_metrics(tmp_path):
    import json

    from inrlab.train.trainer import run

    cfg = preset("relu")
    cfg.signal.name, cfg.signal.size = "camera", 16
    cfg.model.width, cfg.train.steps, cfg.train.eval_every = 8, 3, 3
    rec = Recorder()
    res = run(cfg, tmp_path / "r", callbacks=[rec], progress=False)
    assert rec.steps == [0, 1, 2, 3] and res.metrics["recorded"] == 4
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["recorded"] == 4


def test_subset_scores_only_count_their_pixels():
    import torch

    sig = Image(np.random.default_rng(0).random((48, 48, 3)), heldout=0.2)
    pred = sig.targets.clone()
    pred[sig.heldout_idx] += 0.3 * torch.randn(len(sig.heldout_idx), 3)
    s = sig.subset_scores(pred.numpy())
    assert s["ssim_train"] == 1.0 and s["ms_ssim_train"] == 1.0
    assert s["psnr_train"] > 100
    assert s["ssim_heldout"] < 0.99 and s["psnr_heldout"] < 30


def test_two_layer_entk_tends_to_analytic_ntk():
    import torch

    from inrlab.ntk import kernel
    from inrlab.ntk.twolayer import TwoLayerReLU, analytic_ntk

    x = torch.linspace(-1, 1, 12, dtype=torch.float64)[:, None]
    errs = []
    for width in (100, 20000):
        model = TwoLayerReLU(width, torch.Generator().manual_seed(0))
        k_e, k_a = kernel(model, x, "jacobian"), analytic_ntk(x)
        errs.append(float((k_e - k_a).norm() / k_a.norm()))
    assert errs[1] < 0.03 and errs[1] < errs[0]


def test_bad_jobs_and_analyses_are_one_line(tmp_path):
    base = 'name = "b"\npreset = "relu"\n[axes]\nseeds = [0]\n'
    for extra, msg in [('analysis = "nope"\n', "unknown analysis 'nope'"),
                       ('[job]\nkind = "nope"\n', "unknown job kind 'nope'"),
                       ('[job]\ncallbacks = ["nope"]\n', "unknown trainer callback 'nope'"),
                       ('[job]\npoints = 3\n', "job parameter 'points' is not one of"),
                       ('[job]\nkind = "fresh_validate"\n', "needs job.sweep")]:
        p = tmp_path / "b.toml"
        p.write_text(extra + base if extra.startswith("analysis") else base + extra)
        with pytest.raises(InrlabError, match=msg.replace("(", r"\(")) as e:
            load_sweep(p).plan()
        assert "\n" not in str(e.value)


def test_plain_runs_keep_their_store_keys(tmp_path):
    """A [job] with kind = "train" and no callbacks changes no key (old stores stay valid)."""
    p = tmp_path / "a.toml"
    p.write_text('name = "a"\npreset = "relu"\n[axes]\nseeds = [0, 1]\n')
    keys = [r.key for r in load_sweep(p).plan()]
    p.write_text('name = "a"\npreset = "relu"\n[job]\nkind = "train"\n[axes]\nseeds = [0, 1]\n')
    assert [r.key for r in load_sweep(p).plan()] == keys


# ---------------------------------------------------------------------------- papers, tiny


def test_iga_twolayer_tiny(tmp_path, capsys):
    path = tiny(tmp_path, "iga_twolayer", {"signal.name": "sines:2,4@64", "train.iga.group": 4},
                {"model.width": [64, 512], "train.iga.end": [2, 4]})
    text = run_tiny(path, tmp_path / "out", capsys)
    assert "rel_iga" in text and "rel_analytic" in text
    for m in metrics(tmp_path / "out").values():
        assert m["rel_iga"] < m["rel_plain"]  # IGA's step is nearer the full eNTK's than no step
    assert (tmp_path / "out" / "analysis_files" / "tiny" / "adjusted_step_spectra.png").is_file()


def test_iga_sines_tiny(tmp_path, capsys):
    path = tiny(tmp_path, "iga_sines", {"train.steps": 4, "train.eval_every": 2, "model.width": 8},
                {"arch": [{"label": "relu", "preset": "relu", "signal.name": "sines:2,4@64"}],
                 "method": [{"label": "plain", "train.technique": "mse"},
                            {"label": "iga-p8-end2", "train.technique": "iga",
                             "train.iga.group": 8, "train.iga.end": 2}]})
    text = run_tiny(path, tmp_path / "out", capsys)
    assert "relu: final Δ_k" in text and "| iga-p8-end2 |" in text and "k=4" in text


def test_ntk_spectra_tiny(tmp_path, capsys):
    path = tiny(tmp_path, "ntk_multigrid",
                {"signal.size": 16, "model.width": 8, "model.depth": 1, "train.steps": 4,
                 "train.eval_every": 4, "job.points": 16, "job.spectra_at": [0, 4],
                 "job.definitions": ["ntk_param"]},
                {"signals": ["camera"],
                 "model": [{"label": "identity", "preset": "relu"},
                           {"label": "mpe_fine_x", "preset": "mpe", "job.no_grid": True,
                            "model.encoding.levels": 2, "model.encoding.base_resolution": 2,
                            "model.encoding.finest_resolution": 8}]})
    text = run_tiny(path, tmp_path / "out", capsys)
    assert "λ_min orders vs identity" in text and "| mpe_fine_x |" in text and "after training" in text
    # a variant NAME_… of the paper's model NAME gets the paper's number beside its own
    row = re.search(r"\| mpe_fine_x \| λ_min orders vs identity \| ([^|]*) \| ≈ 8 \|", text)
    assert row and float(row.group(1))
    spectra = next(m for k, m in metrics(tmp_path / "out").items() if k.endswith("mpe_fine_x"))["spectra"]
    assert set(spectra) == {f"step {s}{d}" for s in (0, 4)
                            for d in ("", " no grid", " ntk_param")}
    assert "| log10 λ_max/mean |" in text and "### step 0 ntk_param" in text
    for step in (0, 4):
        full = np.array(spectra[f"step {step}"]["eigenvalues"])
        nogrid = np.array(spectra[f"step {step} no grid"]["eigenvalues"])
        # K = K_mlp + K_grid with K_grid PSD: λ_i(K) ≥ λ_i(K_mlp) for every i (Weyl)
        assert np.all(full >= nogrid - 1e-9 * full[0]) and full[-1] > nogrid[-1]
    assert (tmp_path / "out" / "analysis_files" / "tiny" / "sorted_step0.png").is_file()


def test_fresh_validation_tiny(tmp_path, capsys):
    path = tiny(tmp_path, "fresh_validation",
                {"signal.size": 32, "model.width": 16, "train.steps": 2, "train.eval_every": 2,
                 "job.bins": 8, "job.inits": 2, "job.scorings": ["radial:8", "diagonal:4"]},
                {"signals": ["astronaut"],
                 "experiment": [{"label": "siren", "preset": "siren",
                                 "job.sweep": "model.activation.omega0_first=20,40",
                                 "job.default": 30.0}]})
    text = run_tiny(path, tmp_path / "out", capsys)
    assert "FreSh's pick vs the grid" in text and "0.05–0.10" in text
    assert "scoring rules: means over the runs" in text
    (r,) = metrics(tmp_path / "out").values()
    assert r["of"] == 2 and len(r["grid"]) == 2 and 1 <= r["rank"] <= 2
    assert r["gap_db"] == max(g["psnr"] for g in r["grid"]) - r["psnr_pick"] >= 0
    assert r["gain_db"] == r["psnr_pick"] - r["psnr_default"]  # default 30 trained on top
    assert len(list((tmp_path / "out" / "runs").glob("*/grid/*/metrics.json"))) == 3
    # every scoring rule judged against the same grid; the first is the job's own (bins, binning)
    assert [x["scoring"] for x in r["scorings"]] == ["diagonal:8", "radial:8", "diagonal:4"]
    assert r["scorings"][0]["fresh_pick"] == r["fresh_pick"] and r["scorings"][0]["rank"] == r["rank"]
    psnr = {g["value"]: g["psnr"] for g in r["grid"]}
    for x in r["scorings"]:
        assert x["gap_db"] == pytest.approx(max(psnr.values()) - psnr[x["fresh_pick"]])


@pytest.mark.slow  # ~50 s on 2 cores: Kodak loads, subset MS-SSIM, compression, Pillow baselines
def test_kodak_papers_tiny(tmp_path, capsys, kodak):
    path = tiny(tmp_path, "iga_kodak", {"signal.size": 48, "train.steps": 2, "train.eval_every": 2,
                                        "train.iga.group": 4},
                {"signals": ["kodak:kodim01"],
                 "method": [{"label": "relu+plain", "preset": "relu"},
                            {"label": "relu+iga", "preset": "relu", "train.technique": "iga"}]})
    text = run_tiny(path, tmp_path / "a", capsys)
    assert "| arch | plain | plain (paper) | iga | iga (paper) |" in text and "21.78" in text
    assert all("ssim_heldout" in m for m in metrics(tmp_path / "a").values())
    path = tiny(tmp_path, "compression_rd", {"signal.size": 32, "train.steps": 3,
                                             "train.eval_every": 3, "job.bits": [4, 8]},
                {"signals": ["kodak:kodim01"], "model.width": [8],
                 "norm": [{"label": "none", "model.norm": "none"},
                          {"label": "batch", "model.norm": "batch"}]})
    text = run_tiny(path, tmp_path / "c", capsys)
    assert "| bpp ≤ | none | batch | JPEG | WEBP | best INR |" in text


def test_mean_curve_of_spectra_of_different_lengths():
    """Images of different aspect ratios give kernels of different N: their sorted curves are
    averaged at common fractional ranks (equal lengths: the plain mean)."""
    from inrlab.sweep.analyses.ntk import mean_curve

    a, b = np.array([1.0, 3.0, 2.0]), np.array([6.0, 4.0, 5.0])
    assert np.allclose(mean_curve([a, b]), [4.5, 3.5, 2.5])
    out = mean_curve([np.array([4.0, 3.0, 2.0, 1.0, 0.0]), np.array([8.0, 4.0, 0.0])])
    assert out.shape == (3,) and np.allclose(out, [6.0, 3.0, 0.0])


def test_combined_tiny(tmp_path, capsys):
    path = tiny(tmp_path, "combined", {"signal.size": 32, "train.steps": 3, "train.eval_every": 3,
                                       "train.iga.group": 4},
                {"signals": ["astronaut"], "seeds": [0, 1],
                 "method": [{"label": "pe+plain", "preset": "pe"},
                            {"label": "pe+fresh+cn+iga", "preset": "pe",
                             "job.kind": "fresh_train",
                             "job.sweep": "model.encoding.n_frequencies=2,4", "job.inits": 2,
                             "model.norm": "cross", "train.technique": "iga"}]})
    text = run_tiny(path, tmp_path / "out", capsys)
    assert "pe: held-out PSNR dB / SSIM" in text and "± std over 2 seed(s)" in text
    assert "wins" in text and "pe: best held-out PSNR" in text
    assert "| wins | runs |" in text and "| 0/2 | 2 |" in text  # plain: 2 runs, no win
    ms = metrics(tmp_path / "out")
    fresh = [m for label, m in ms.items() if label.endswith("fresh+cn+iga")]
    assert len(fresh) == 2 and all(m["fresh_pick"] in (2, 4) for m in fresh)
    assert all("psnr_heldout" in m for m in ms.values())
    runs = list((tmp_path / "out" / "runs").glob("*fresh*"))
    assert all((r / "fresh.json").is_file() and (r / "config.json").is_file() for r in runs)


def test_combined_refuses_labels_without_arch_plus_combination(tmp_path, capsys):
    """A method label without an inner '+' (or a store without held-out PSNRs) is a one-line
    error of ``sweep table``, not a pandas traceback."""
    path = tiny(tmp_path, "combined", {"signal.size": 16, "train.steps": 2, "train.eval_every": 2,
                                       "model.width": 16},
                {"signals": ["astronaut"], "seeds": [0],
                 "method": [{"label": "pe", "preset": "pe"},
                            {"label": "pe+cn", "preset": "pe", "model.norm": "cross"}]})
    out = tmp_path / "out"
    assert main(["sweep", "run", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", "table", str(out)]) == 2
    assert "'pe' lack an inner '+'" in capsys.readouterr().err


def test_fresh_train_job_resumes_to_the_same_pick(tmp_path):
    import json

    from inrlab.config import set_fields
    from inrlab.sweep.jobs import check_job, execute_job

    cfg = preset("siren")
    set_fields(cfg, {"signal.name": "astronaut", "signal.size": 32, "model.width": 16,
                     "train.steps": 2, "train.eval_every": 2}.items())
    job = check_job({"kind": "fresh_train", "sweep": "model.activation.omega0_first=10,60",
                     "inits": 2})
    first = execute_job(cfg, tmp_path / "run", job)
    assert first["fresh_field"] == "model.activation.omega0_first"
    assert first["fresh_pick"] in (10, 60)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["activation"]["omega0_first"] == first["fresh_pick"]
    again = execute_job(cfg, tmp_path / "run", job)  # finished: re-scored, returned, not retrained
    assert again["fresh_pick"] == first["fresh_pick"] and again["psnr"] == first["psnr"]
    with pytest.raises(InrlabError, match="needs job.sweep"):
        check_job({"kind": "fresh_train"})


def test_fresh_validate_ranks_by_the_chosen_metric(tmp_path):
    from inrlab.config import set_fields
    from inrlab.sweep.jobs import check_job, execute_job

    cfg = preset("siren")
    set_fields(cfg, {"signal.name": "astronaut", "signal.size": 32, "model.width": 16,
                     "train.steps": 2, "train.eval_every": 2, "signal.heldout": 0.2}.items())
    job = check_job({"kind": "fresh_validate", "sweep": "model.activation.omega0_first=10,60",
                     "inits": 2, "bins": 8, "metric": "psnr_heldout"})
    r = execute_job(cfg, tmp_path / "a", job)
    assert r["metric"] == "psnr_heldout"
    for g in r["grid"]:
        m = tmp_path / "a" / "grid" / f"omega0_first={g['value']}" / "metrics.json"
        assert g["psnr"] == pytest.approx(__import__("json").loads(m.read_text())["psnr_heldout"])
    set_fields(cfg, {"signal.heldout": 0.0}.items())
    with pytest.raises(InrlabError, match="psnr_heldout.* needs held-out samples: set signal.heldout > 0"):
        execute_job(cfg, tmp_path / "b", job)


def test_iga_fidelity_analysis_counts_the_falls(tmp_path):
    import json

    from inrlab.sweep.analyses import Context, get_analysis

    rows = []
    for seed, curve in enumerate([[20, 25, 22, 26, 24.5], [20, 24, 26, 26.5, 27]]):
        run = tmp_path / f"r{seed}"
        run.mkdir()
        (run / "history.jsonl").write_text("".join(
            json.dumps({"step": 2 * i, "psnr": p}) + "\n" for i, p in enumerate(curve)))
        rows.append({"status": "finished", "run_dir": f"r{seed}", "axes": {"method": "iga"},
                     "metrics": {"psnr": curve[-1]}})
    res = get_analysis("iga_fidelity")(Context(tmp_path, "quick", rows, ["method"], {}, tmp_path))
    (_, table), = res.tables
    row = table.iloc[0]
    assert row["final"] == "25.75 ± 1.77" and row["max"] == "26.50 ± 0.71"
    assert row["drops > 1 dB"] == "1.00 ± 1.41" and row["largest drop"] == "1.50 ± 2.12"


def test_fresh_jobs_refuse_bad_counts_and_metrics_before_training(tmp_path):
    """job.bins / job.inits that are not whole numbers ≥ 1, a lower-is-better job.metric and a
    held-out metric without held-out pixels are one-line errors before anything is trained."""
    from inrlab.config import set_fields
    from inrlab.sweep.jobs import check_job, execute_job

    cfg = preset("pe")
    set_fields(cfg, {"signal.name": "astronaut", "signal.size": 16, "model.width": 16,
                     "train.steps": 2, "signal.heldout": 0.0}.items())
    sweep = "model.encoding.n_frequencies=2,3"
    for kind, extra, match in [
            ("fresh_train", {"bins": "x"}, "job.bins = 'x'"),
            ("fresh_train", {"bins": 2.5}, "job.bins = 2.5"),
            ("fresh_train", {"inits": float("nan")}, "job.inits = nan"),
            ("fresh_validate", {"bins": 4, "inits": 0}, "job.inits = 0"),
            ("fresh_validate", {"bins": 4, "metric": "loss"}, "not a score to maximize"),
            ("fresh_validate", {"bins": 4, "metric": "psnr_heldout"}, "needs held-out samples"),
            ("fresh_validate", {"bins": 4, "scorings": ["radial"]}, "'radial' is not BINNING:K"),
            ("fresh_validate", {"bins": 4, "scorings": ["polar:8"]}, "'polar:8' is not BINNING:K"),
            ("fresh_validate", {"bins": 4, "binning": "polar"}, "unknown binning 'polar'")]:
        out = tmp_path / f"{kind}-{len(list(tmp_path.iterdir()))}"
        with pytest.raises(InrlabError, match=re.escape(match)):
            execute_job(cfg, out, check_job({"kind": kind, "sweep": sweep, **extra}))
        assert not (out / "grid").exists() and not (out / "checkpoint.pt").exists()


def test_fresh_train_resumes_its_own_pick_when_rescoring_flips(tmp_path, monkeypatch):
    """A started run keeps the value it trains with (config.json) even if FreSh would now pick
    another one (a near-tie flipping on another device): it resumes instead of being refused."""
    import importlib
    import json

    from inrlab.config import set_fields
    from inrlab.sweep.jobs import check_job, execute_job

    fresh_select = importlib.import_module("inrlab.fresh.select")
    cfg = preset("siren")
    set_fields(cfg, {"signal.name": "astronaut", "signal.size": 32, "model.width": 16,
                     "train.steps": 4, "train.eval_every": 2, "train.checkpoint_every": 2}.items())
    job = check_job({"kind": "fresh_train", "sweep": "model.activation.omega0_first=10,60",
                     "inits": 2})
    first = execute_job(cfg, tmp_path / "run", job)
    metrics = tmp_path / "run" / "metrics.json"
    done = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**done, "status": "running"}))  # as if killed before the end
    real = fresh_select.select

    def flipped(*a, **k):
        res = real(*a, **k)
        res.distances = res.distances[::-1].copy()  # the other candidate now scores best
        return res

    monkeypatch.setattr(fresh_select, "select", flipped)
    assert fresh_select.select(cfg.signal.name, cfg, "model.activation.omega0_first", [10, 60],
                               inits=2, bins=8).best != first["fresh_pick"]
    again = execute_job(cfg, tmp_path / "run", job)
    assert again["fresh_pick"] == first["fresh_pick"]


def test_ntk_spectra_cis_pairs_and_official_code_numbers(tmp_path):
    """The quality table's 95 % CI over images × seeds, the paired A − B differences (against
    scipy's paired t interval) and the official code's numbers shown in their own tier only."""
    import scipy.stats

    from inrlab.sweep.analyses import Context
    from inrlab.sweep.analyses.ntk import ntk_spectra

    rng = np.random.default_rng(0)
    rows, diffs = [], []
    for img in ("a", "b"):
        for seed in ("0", "1", "2"):
            base = rng.normal(25, 2)
            d = rng.normal(0.5, 0.3)
            diffs.append(d)
            for norm, v in (("batch", base), ("cross", base + d)):
                rows.append({"status": "finished", "axes": {"signal": img, "seed": seed,
                                                            "arch": "pe", "norm": norm},
                             "metrics": {"psnr": v, "psnr_train_best": v + 1, "spectra": {}}})
    params = {"pairs": ["pe-cross vs pe-batch"],
              "code": {"tier": "official", "psnr_train_best": {"pe-cross": 28.4,
                                                               "pe-cross vs pe-batch": 0.6}}}
    res = ntk_spectra(Context(tmp_path, "official", rows, ["signal", "seed", "arch", "norm"],
                              params, tmp_path))
    tables = dict(res.tables)
    quality = tables["after training"].set_index("model")
    assert quality.loc["pe-cross", "official code psnr_train_best"] == 28.4
    assert quality.loc["pe-batch", "PSNR dB ± 95% CI (n)"].endswith("(6)")
    (pair,) = [t for k, t in tables.items() if k.startswith("paired")]
    ci = scipy.stats.ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert pair.loc[0, "Δ psnr dB"] == pytest.approx(np.mean(diffs))
    assert pair.loc[0, "Δ psnr 95% CI"] == f"[{ci.low:.2f}, {ci.high:.2f}]"
    assert pair.loc[0, "psnr: A wins"] == sum(d > 0 for d in diffs)
    assert pair.loc[0, "official code Δ psnr_train_best"] == 0.6
    other = ntk_spectra(Context(tmp_path, "quick", rows, ["signal", "seed", "arch", "norm"],
                                params, tmp_path))
    assert "official code psnr_train_best" not in dict(other.tables)["after training"]
