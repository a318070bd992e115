import json

import pytest
import torch

from inrlab import DivergedError, InrlabError, Trainer, fit, load_run, preset
from inrlab.config import set_field
from inrlab.techniques import Technique
from inrlab.train.optim import build_scheduler, lr_factor

FAST = {"model.width": 32, "model.depth": 2, "train.eval_every": 10, "train.checkpoint_every": 10}


def test_small_fit_clears_threshold(small_image, tmp_path):
    res = fit(small_image, "hash", steps=60, out=tmp_path / "run", progress=False,
              overrides={"model.encoding.finest_resolution": 32, **FAST})
    assert res.metrics["psnr_train"] > 30, res.metrics
    assert res.metrics["psnr_heldout"] > 18, res.metrics
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "metrics.json", "history.jsonl", "reconstruction.png", "summary.png",
            "checkpoint.pt"} <= files
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"psnr", "psnr_heldout", "ssim", "steps", "seconds"} <= set(m) and m["steps"] == 60
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(s)["step"] for s in lines] == [10, 20, 30, 40, 50, 60]


def test_siren_learns_1d_sines():
    res = fit("sines:2,4@256", "siren", steps=60, progress=False,
              overrides={"model.width": 32, "model.depth": 2, "train.lr": 1e-3,
                         "train.eval_every": 20})
    assert res.metrics["psnr"] > 30
    assert max(res.metrics["band_error"]) < 0.1


def test_same_seed_same_run(small_image):
    a = fit(small_image, "relu", steps=15, progress=False, overrides=FAST)
    b = fit(small_image, "relu", steps=15, progress=False, overrides=FAST)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


class _CtrlCAt(Technique):
    """Plain MSE that simulates the user pressing Ctrl-C before step ``at``."""

    def __init__(self, at):
        self.at = at

    def loss(self, model, batch, pred, step):
        if step == self.at:
            raise KeyboardInterrupt
        return super().loss(model, batch, pred, step)


def _fit_and_interrupt(small_image, out, over):
    """An uninterrupted 20-step PE fit with overrides ``over``, and the same run interrupted at
    step 13 into ``out`` (its last checkpoint is step 7's)."""
    full = fit(small_image, "pe", steps=20, progress=False, overrides=over)
    cfg = preset("pe")
    cfg.signal = small_image.config
    cfg.train.steps = 20
    for k, v in over.items():
        set_field(cfg, k, v)
    with pytest.raises(InrlabError, match="interrupted at step 13.*--resume"):
        Trainer(cfg, small_image, out, progress=False, technique=_CtrlCAt(13)).train()
    return full


@pytest.mark.parametrize("batch", [None, 200])
def test_resume_after_interrupt_equals_uninterrupted(small_image, tmp_path, batch):
    over = {**FAST, "train.batch_size": batch, "train.schedule": "cosine",
            "train.checkpoint_every": 7}
    full = _fit_and_interrupt(small_image, tmp_path / "r", over)
    resumed = fit(small_image, "pe", steps=20, out=tmp_path / "r", resume=True, progress=False,
                  overrides=over)
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)  # the scheduler's state travels in the checkpoint: bit-exact
    assert [h["step"] for h in resumed.history] == [10, 20]
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in full.history]


def test_best_training_psnr_over_the_steps(tmp_path):
    """``psnr_train_best`` is the best full-batch training PSNR over the steps, each before its
    update (the normalization code's number): oracle = the initial model's PSNR and the
    per-step evaluations of a run evaluated after every step; kept across an interrupt."""
    from inrlab import Image
    from inrlab.train.metrics import psnr

    sig = Image("astronaut", size=24, heldout=0.0)
    over = {**FAST, "train.eval_every": 1, "train.lr": 3e-2, "train.checkpoint_every": 7}
    res = fit(sig, "pe", steps=20, progress=False, overrides=over)
    cfg = preset("pe")
    cfg.signal = sig.config
    for k, v in over.items():
        set_field(cfg, k, v)
    first = Trainer(cfg, sig, None, progress=False)  # the same seed: the same initial model
    y = sig.targets.numpy()
    before = [psnr(first.model(sig.coords).detach().numpy(), y, 2.0)]
    before += [h["psnr_train"] for h in res.history[:-1]]  # after update k = before update k + 1
    assert res.metrics["psnr_train_best"] == pytest.approx(max(before), abs=1e-4)
    # a high lr makes the curve non-monotone, so "best" differs from "final" somewhere
    assert max(before) > min(before[1:]) + 0.1
    # interrupted at step 13 (checkpoint of step 7) and resumed: the same best
    cfg.train.steps = 20
    with pytest.raises(InrlabError, match="interrupted at step 13"):
        Trainer(cfg, sig, tmp_path / "r", progress=False, technique=_CtrlCAt(13)).train()
    resumed = fit(sig, "pe", steps=20, out=tmp_path / "r", resume=True, progress=False,
                  overrides=over)
    assert resumed.metrics["psnr_train_best"] == pytest.approx(res.metrics["psnr_train_best"],
                                                               abs=1e-9)


def test_resume_from_checkpoint_without_scheduler_state(small_image, tmp_path):
    """Checkpoints written before schedulers had state continue from the closed form."""
    from inrlab.utils import atomic_torch_save, safe_torch_load

    over = {**FAST, "train.schedule": "exponential", "train.lr_final": 0.01,
            "train.checkpoint_every": 7}
    full = _fit_and_interrupt(small_image, tmp_path / "r", over)
    ck = safe_torch_load(tmp_path / "r" / "checkpoint.pt")
    del ck["scheduler"]
    atomic_torch_save(ck, tmp_path / "r" / "checkpoint.pt")
    resumed = fit(small_image, "pe", steps=20, out=tmp_path / "r", resume=True, progress=False,
                  overrides=over)
    assert resumed.history[-1]["lr"] == pytest.approx(full.history[-1]["lr"], rel=1e-9)
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_refuses_folder_holding_another_run(small_image, tmp_path):
    fit(small_image, "relu", steps=10, out=tmp_path / "r", progress=False, overrides=FAST)
    with pytest.raises(InrlabError, match="holds a different run"):
        fit(small_image, "siren", steps=10, out=tmp_path / "r", resume=True, progress=False,
            overrides=FAST)
    with pytest.raises(InrlabError, match="already holds this run"):
        fit(small_image, "relu", steps=10, out=tmp_path / "r", progress=False, overrides=FAST)
    before = (tmp_path / "r" / "metrics.json").read_text()
    assert json.loads(before)["status"] == "finished"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InrlabError, match="not empty"):
        fit(small_image, "relu", steps=10, out=tmp_path / "other", progress=False, overrides=FAST)
    with pytest.raises(InrlabError, match="not an inrlab run folder"):
        fit(small_image, "relu", steps=10, out=tmp_path / "other", overwrite=True, progress=False,
            overrides=FAST)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_corrupt_and_mismatched_checkpoints(small_image, tmp_path):
    fit(small_image, "relu", steps=10, out=tmp_path / "r", progress=False, overrides=FAST)
    ck = tmp_path / "r" / "checkpoint.pt"
    ck.write_bytes(b"garbage")
    with pytest.raises(InrlabError, match="corrupt"):
        fit(small_image, "relu", steps=20, out=tmp_path / "r", resume=True, progress=False,
            overrides=FAST)
    fit(small_image, "relu", steps=10, out=tmp_path / "s", progress=False, overrides=FAST)
    state = torch.load(tmp_path / "s" / "checkpoint.pt", weights_only=True)
    state["model"]["head.weight"] = torch.zeros(5, 5)
    torch.save(state, tmp_path / "s" / "checkpoint.pt")
    with pytest.raises(InrlabError, match="does not match"):
        fit(small_image, "relu", steps=20, out=tmp_path / "s", resume=True, progress=False,
            overrides=FAST)


def test_divergence_keeps_checkpoint_and_metrics(small_image, tmp_path):
    over = {**FAST, "train.lr": 1e6, "train.checkpoint_every": 1, "train.eval_every": 1}
    with pytest.raises(DivergedError, match="diverged at step") as e:
        fit(small_image, "relu", steps=200, out=tmp_path / "r", progress=False, overrides=over)
    assert "last good checkpoint" in str(e.value)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["status"] == "diverged"
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert len((tmp_path / "r" / "history.jsonl").read_text().splitlines()) >= 1


def test_load_run_queries_single_points_with_frozen_norm(small_image, tmp_path):
    res = fit(small_image, "relu", steps=10, out=tmp_path / "r", progress=False,
              overrides={**FAST, "model.norm": "cross"})
    loaded = load_run(tmp_path / "r")
    full = loaded.predict()
    torch.testing.assert_close(full, res.predict())
    torch.testing.assert_close(loaded.predict(small_image.coords[3:4]), full[3:4])


def test_schedules():
    from inrlab.config import TrainConfig

    t = TrainConfig(steps=100, schedule="step", milestones=[30, 60], gamma=0.5)
    assert [lr_factor(t, s) for s in (0, 30, 59, 60)] == [1, 0.5, 0.5, 0.25]
    t = TrainConfig(steps=100, schedule="exponential", lr_final=0.01)
    assert lr_factor(t, 50) == pytest.approx(0.1)
    t = TrainConfig(steps=100, schedule="cosine", lr_final=0.0 + 1e-9)
    assert lr_factor(t, 0) == pytest.approx(1) and lr_factor(t, 50) == pytest.approx(0.5)


@pytest.mark.parametrize("kw", [dict(schedule="step", milestones=[60, 30], gamma=0.5),
                                dict(schedule="exponential", lr_final=0.01),
                                dict(schedule="cosine", lr_final=0.05)])
def test_torch_schedulers_follow_the_closed_form(kw):
    """torch's schedulers (stepwise, recursive) against the closed form at every step."""
    from inrlab.config import TrainConfig

    t = TrainConfig(steps=100, lr=2e-3, **kw)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=t.lr)
    sched = build_scheduler(opt, t)
    for s in range(t.steps + 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(t.lr * lr_factor(t, s), rel=1e-9), s
        opt.step()
        sched.step()


def test_corrupt_scheduler_state_is_a_one_line_error(small_image, tmp_path):
    """A checkpoint whose scheduler entry is garbage is refused like any corrupt checkpoint, and
    the run folder's files are kept."""
    from inrlab.utils import atomic_torch_save, safe_torch_load

    over = {**FAST, "train.schedule": "cosine", "train.checkpoint_every": 7}
    _fit_and_interrupt(small_image, tmp_path / "r", over)
    ck = safe_torch_load(tmp_path / "r" / "checkpoint.pt")
    ck["scheduler"] = {"last_epoch": "not a number"}
    atomic_torch_save(ck, tmp_path / "r" / "checkpoint.pt")
    before = sorted(p.name for p in (tmp_path / "r").iterdir())
    with pytest.raises(InrlabError, match="corrupt.*--overwrite"):
        fit(small_image, "pe", steps=20, out=tmp_path / "r", resume=True, progress=False,
            overrides=over)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == before
