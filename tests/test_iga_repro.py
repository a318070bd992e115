"""The IGA reproductions' plumbing: subset metrics and the ``inrlab repro`` command."""

import numpy as np
import torch

from inrlab import Image
from inrlab.cli import main
from inrlab.experiments.iga_kodak import subset_scores


def test_subset_scores_only_count_their_pixels():
    sig = Image(np.random.default_rng(0).random((48, 48, 3)), heldout=0.2)
    pred = sig.targets.clone()
    pred[sig.heldout_idx] += 0.3 * torch.randn(len(sig.heldout_idx), 3)
    s = subset_scores(sig, pred.numpy())
    assert s["ssim_train"] == 1.0 and s["ms_ssim_train"] == 1.0
    assert s["psnr_train"] > 100
    assert s["ssim_heldout"] < 0.99 and s["psnr_heldout"] < 30


def test_repro_sines_smoke(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text('experiment = "iga-sines"\nsamples = 256\nsteps = 3\neval_every = 3\n'
                   'iga = [[8, 2]]\n[common]\n"model.width" = 8\n"train.iga.variant" = "sgd"\n'
                   '[archs.relu]\nfreqs = [2, 4]\n')
    assert main(["repro", str(cfg), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "band_error_relu.png").exists()
    assert "IGA p=8 end=2" in (tmp_path / "out" / "table.md").read_text()
    cfg.write_text('experiment = "nope"\n')
    assert main(["repro", str(cfg)]) == 2
    assert "is not one of" in capsys.readouterr().err


def test_two_layer_entk_tends_to_analytic_ntk():
    from inrlab.experiments.iga_twolayer import TwoLayerReLU, analytic_ntk
    from inrlab.ntk import kernel

    x = torch.linspace(-1, 1, 12, dtype=torch.float64)[:, None]
    errs = []
    for width in (100, 20000):
        model = TwoLayerReLU(width, torch.Generator().manual_seed(0))
        k_e, k_a = kernel(model, x, "jacobian"), analytic_ntk(x)
        errs.append(float((k_e - k_a).norm() / k_a.norm()))
    assert errs[1] < 0.03 and errs[1] < errs[0]
