"""Compression: quantisation, the .inrz round trip, bits per pixel from the file, baselines."""

import numpy as np
import pytest
import torch

from inrlab.codec.weights import decode, dequantise, encode, pillow_curve, plain_copy, quantise
from inrlab.config import ModelConfig, preset
from inrlab.errors import InrlabError
from inrlab.models import build_model
from inrlab.models.norms import set_norm_stats
from inrlab.models.reparam import reparameterize
from inrlab.utils import seed_everything


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantise_error_is_at_most_half_a_step(per_channel):
    w = torch.randn(6, 5) * torch.arange(1, 7)[:, None]
    q, lo, step = quantise(w, 5, per_channel)
    assert q.dtype == np.uint8 and q.max() <= 31 and len(lo) == (6 if per_channel else 1)
    err = (dequantise(q, lo, step) - w).abs()
    bound = torch.tensor(step)[:, None] / 2 + 1e-6 if per_channel else float(step[0]) / 2 + 1e-6
    assert (err <= bound).all()
    q16, lo16, st16 = quantise(w, 12, False)
    assert q16.dtype == np.uint16 and (dequantise(q16, lo16, st16) - w).abs().max() < 1e-2


@pytest.mark.parametrize("norm", ["none", "batch", "cross"])
def test_round_trip_reproduces_the_model(norm):
    cfg = preset("ffe").model
    cfg.width, cfg.depth, cfg.norm = 16, 2, norm
    seed_everything(3)
    model = build_model(cfg, 2, 3)
    model.eval()
    set_norm_stats(model, "frozen")  # as load_run leaves a trained run's model
    assert len(encode(model, cfg, 3)) < 120  # untrained: every tensor is rebuilt from the seed
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # "trained"
        for name, b in model.named_buffers():
            if "running" in name:
                b.add_(0.1 * torch.rand_like(b))
    x = torch.rand(50, 2) * 2 - 1
    data16 = encode(model, cfg, 3, bits=16, per_channel=True)
    data4 = encode(model, cfg, 3, bits=4)
    assert data16[:4] == b"INRZ" and len(data4) < len(data16)
    dec, head = decode(data16)
    assert head["bits"] == 16 and "model.encoding.B" not in str(head)  # FFE's B is rebuilt
    with torch.no_grad():
        torch.testing.assert_close(dec(x), model(x), atol=2e-3, rtol=0)
        assert (decode(data4)[0](x) - model(x)).abs().max() > 1e-3  # 4 bits: visibly lossy
    with pytest.raises(InrlabError, match="bits"):
        encode(model, cfg, 3, bits=0)
    with pytest.raises(InrlabError, match="not an inrlab"):
        decode(b"JUNK" + data4[4:])


def test_fr_layers_are_folded_into_plain_linears():
    cfg = ModelConfig(width=8, depth=3)
    model = build_model(cfg, 2, 3)
    reparameterize(model, 2, 2, 2, None)
    with torch.no_grad():
        model.linears[1].coef.add_(0.1)
    x = torch.rand(20, 2)
    with torch.no_grad():
        torch.testing.assert_close(plain_copy(model)(x), model(x))
        dec, _ = decode(encode(model, cfg, 0, bits=16))
        torch.testing.assert_close(dec(x), model(x), atol=1e-3, rtol=0)


def test_compress_run_counts_the_file(tmp_path):
    from inrlab.cli import main
    from inrlab.codec.weights import compress_run

    run = tmp_path / "run"
    assert main(["fit", "camera", "--preset", "pe", "--signal.size", "24", "--width", "8",
                 "--depth", "2", "--steps", "3", "--quiet", "--out", str(run)]) == 0
    r = compress_run(run, bits=6, per_channel=True, codec="zlib")
    size = (run / "model-6b-pc-zlib.inrz").stat().st_size
    assert r["bytes"] == size and r["bpp"] == pytest.approx(8 * size / (24 * 24))
    assert abs(r["psnr"] - r["psnr_uncompressed"]) < 1.0
    # a run written before a config field existed still loads (the field takes its default)
    import json

    saved = json.loads((run / "config.json").read_text())
    del saved["train"]["fr"]["bias"]
    (run / "config.json").write_text(json.dumps(saved))
    assert compress_run(run, bits=6, per_channel=True, codec="zlib")["bytes"] == size


def test_pillow_baselines_rise_with_quality():
    img = np.random.default_rng(0).random((32, 48, 3)) * 0.2 + np.linspace(0, 0.8, 48)[None, :, None]
    for fmt in ("JPEG", "WEBP"):
        lo, hi = pillow_curve(img, fmt, [10, 90])
        assert lo["bpp"] < hi["bpp"] and lo["psnr"] < hi["psnr"]


def test_rate_distortion_helpers():
    from inrlab.sweep.analyses.compression import frontier, matched

    curve = [{"bpp": 1.0, "psnr": 20.0}, {"bpp": 3.0, "psnr": 30.0}]
    assert matched(curve, 2.0, "psnr") == 25.0 and matched(curve, 0.5, "psnr") is None
    pts = [{"bpp": 0.5, "psnr": 18.0}, {"bpp": 0.9, "psnr": 17.0}, {"bpp": 1.4, "psnr": 26.0}]
    assert frontier(pts, 1.0, "psnr") == 18.0 and frontier(pts, 2.0, "psnr") == 26.0
    assert frontier(pts, 0.4, "psnr") is None
