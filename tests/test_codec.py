"""The latent codec: context features, the rate estimate against scipy's Laplace, the .inrc
round trip (bit for bit), bpp from the file, hostile files and commands."""

import struct

import numpy as np
import pytest
import torch

from inrlab.codec import bitstream
from inrlab.codec.image import compress_image, decompress, load_image, macs_per_pixel
from inrlab.codec.latent import CodecSpec, LatentCodec, context, fit, laplace_bits
from inrlab.errors import InrlabError

SPEC = CodecSpec(levels=3, hidden=(6,), refine=1, arm_hidden=4)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A 24×24 crop of astronaut coded in 150 steps: (result, file path)."""
    path = tmp_path_factory.mktemp("codec") / "a.inrc"
    torch.manual_seed(0)
    r = compress_image("astronaut", path, 2e-3, SPEC, steps=150, crop=24)
    return r, path


def test_laplace_bits_match_scipy():
    from scipy.stats import laplace

    y = torch.tensor([-7.0, -1.0, 0.0, 0.0, 2.0, 5.0], dtype=torch.float64)
    mu = torch.tensor([0.3, -0.2, 0.0, 0.45, 1.0, -1.0], dtype=torch.float64)
    b = torch.tensor([0.5, 1.0, 0.1, 2.0, 3.0, 1.5], dtype=torch.float64)
    ref = -np.log2(laplace.cdf(y + 0.5, mu, b) - laplace.cdf(y - 0.5, mu, b))
    np.testing.assert_allclose(laplace_bits(y, mu, b.log()).numpy(), ref, rtol=1e-9)


def test_context_reads_anchors_and_parent_only():
    y = torch.arange(20.0).reshape(4, 5)
    parent = torch.arange(6.0).reshape(2, 3) * 10
    c = context(y, parent)
    assert c.shape == (4, 5, 10)
    assert (c[0, 0, :4] == 0).all() and c[0, 0, 9] == 0  # anchor: no same-level context
    assert c[1, 2, :4].tolist() == [y[0, 2], y[2, 2], y[1, 1], y[1, 3]]  # N, S, W, E
    assert c[1, 2, 9] == 1
    assert c[3, 4, 4] == parent[1, 2] and c[3, 4, 5] == parent[0, 2]  # parent, its N
    assert c[3, 4, 6] == 0  # the parent's S is outside: zero
    # anchors' rows do not depend on non-anchor values (what the decoder has not decoded yet)
    y2 = y.clone()
    odd = (torch.arange(4)[:, None] + torch.arange(5)) % 2 == 1
    y2[odd] = -99
    assert torch.equal(context(y2, parent)[~odd], c[~odd])
    assert torch.equal(context(torch.where(odd, 0.0, y), parent)[odd], c[odd])


def test_round_trip_is_bit_exact_and_bpp_is_the_file(coded, tmp_path):
    r, path = coded
    data = path.read_bytes()
    assert r["bytes"] == len(data) and r["bpp"] == 8 * len(data) / (24 * 24)
    decoded = bitstream.decode(data)
    assert decoded.shape == (24, 24, 3) and decoded.dtype == np.float32
    # the encoder's own output for the same networks and latents (compress_image checked it
    # too); decode twice more: identical bits
    assert np.array_equal(bitstream.decode(data), decoded)
    png = tmp_path / "a.png"
    out = decompress(path, png)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(png)), np.rint(decoded * 255).astype(np.uint8))
    assert out["bpp"] == r["bpp"]
    target = load_image("astronaut", 24)
    assert r["psnr"] > 20  # a real image, not noise (150 steps on 24×24)
    ref = -10 * np.log10(np.mean((np.rint(decoded * 255) / 255 - target) ** 2))
    assert r["psnr"] == pytest.approx(ref)


def test_encoder_output_equals_decoder_output():
    torch.manual_seed(1)
    img = load_image("coffee", 16)
    model = fit(img, 1e-3, SPEC, 20)
    target = torch.tensor(img.transpose(2, 0, 1)[None], dtype=torch.float32)
    nets = bitstream.quantise_networks(model, target, 1e-3)
    data, expected = bitstream.encode(model, nets)
    assert np.array_equal(bitstream.decode(data), expected)
    # the coded size is close to the model's own estimate (the coder wastes little)
    bits = sum(bitstream.laplace_code_bits(q)[1] for q in nets.codes.values())
    ys = [torch.round(p.detach()) for p in model.latents]
    with torch.no_grad():
        for n, p in model.named_parameters():
            if not n.startswith("latents"):
                p.copy_(nets.value(n).float())
        bits += model.rate_bits(ys).item()
    assert 8 * len(data) < bits * 1.1 + 8 * 64


def test_hostile_bitstreams(coded):
    _, path = coded
    data = path.read_bytes()
    with pytest.raises(InrlabError, match="truncated") as e:
        bitstream.decode(data[:-3])
    assert "\n" not in str(e.value)
    with pytest.raises(InrlabError, match="truncated"):
        bitstream.decode(data[:9])
    with pytest.raises(InrlabError, match="version 7"):
        bitstream.decode(data[:4] + bytes([7]) + data[5:])
    with pytest.raises(InrlabError, match="not an inrlab"):
        bitstream.decode(b"JUNK" + data[4:])
    with pytest.raises(InrlabError, match="truncated or padded"):
        bitstream.decode(data + b"\x01")
    bad = bytearray(data)
    struct.pack_into("<B", bad, 13, 9)  # upsample index out of range
    with pytest.raises(InrlabError, match="invalid header"):
        bitstream.decode(bytes(bad))


def test_nan_codec_is_one_line():
    m = LatentCodec(SPEC, 3, 16, 16)
    with torch.no_grad():
        m.synthesis.mlp[0].weight[0, 0] = float("nan")
    with pytest.raises(InrlabError, match="NaN"):
        bitstream.quantise_networks(m, torch.rand(1, 3, 16, 16), 1e-3)


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(InrlabError, match="lambda"):
        fit(np.zeros((16, 16, 3)), -1.0, SPEC, 5)
    with pytest.raises(InrlabError, match="upsample"):
        CodecSpec(upsample="nearest").validate()
    with pytest.raises(InrlabError, match="crop"):
        load_image("astronaut", 4000)


def test_macs_per_pixel_counts_the_layers():
    m = macs_per_pixel(CodecSpec(levels=7, hidden=(16,), refine=1, arm_hidden=8), 3, 256, 256)
    assert m["synthesis"] == 7 * 16 + 16 * 3 + 9 * 3 * 3
    assert m["upsampling"] == 4 * 6
    assert 1.33 < m["context"] / (10 * 8 + 64 + 16) < 1.34


def test_cli_compress_decompress_and_refusals(tmp_path, capsys, monkeypatch):
    from inrlab.cli import main

    monkeypatch.chdir(tmp_path)
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((load_image("astronaut", 24) * 255).astype(np.uint8)).save(src)
    args = ["--steps", "5", "--levels", "3", "--hidden", "4", "--arm-hidden", "4", "--quiet"]
    assert main(["compress", str(src), *args, "--out", "a.inrc"]) == 0
    assert "bpp" in capsys.readouterr().out
    assert main(["decompress", "a.inrc"]) == 0 and (tmp_path / "a.png").is_file()
    before = src.read_bytes()
    for argv in (["compress", str(src), *args, "--out", str(src)],      # onto the input
                 ["decompress", "a.inrc", "--out", "a.inrc"],           # onto the input
                 ["compress", str(src), "--bits", "4"],                 # a run's option
                 ["decompress", "missing.inrc"],
                 ["decompress", str(src)]):                             # not ours
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("inrlab: error:") and err.count("\n") == 1, err
    assert src.read_bytes() == before
    (tmp_path / "cut.inrc").write_bytes((tmp_path / "a.inrc").read_bytes()[:-2])
    assert main(["decompress", "cut.inrc", "--out", "cut.png"]) == 2
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "cut.png").exists()


def test_weight_mode_nan_checkpoint_and_decompress(tmp_path, capsys):
    from inrlab.cli import main

    run = tmp_path / "run"
    assert main(["fit", "camera", "--preset", "pe", "--signal.size", "16", "--width", "8",
                 "--depth", "2", "--steps", "3", "--quiet", "--out", str(run)]) == 0
    assert main(["compress", str(run), "--bits", "8", "--out", str(tmp_path / "m.inrz")]) == 0
    assert main(["decompress", str(tmp_path / "m.inrz")]) == 0
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "m.png")).shape == (16, 16)
    assert main(["compress", str(run), "--lambda", "1e-2"]) == 2
    capsys.readouterr()
    ckpt = next(run.glob("*.pt"))
    state = torch.load(ckpt, weights_only=True)
    model_state = state["model"] if "model" in state else state
    key = next(k for k, v in model_state.items() if v.is_floating_point() and v.numel() > 1)
    model_state[key][0] = float("nan")
    torch.save(state, ckpt)
    assert main(["compress", str(run), "--bits", "8"]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and err.count("\n") == 1, err
