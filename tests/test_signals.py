import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from inrlab import Function1D, Image, InrlabError, SignalConfig, load_problem


def test_embedded_image(small_image):
    s = small_image
    assert s.grid_shape == (32, 32) and s.out_dim == 3
    assert s.coords.shape == (1024, 2) and s.coords.min() == -1 and s.coords.max() == 1
    assert s.targets.min() >= -1 and s.targets.max() <= 1
    assert len(s.heldout_idx) == round(0.1 * 1024)
    assert len(set(s.train_idx.tolist()) & set(s.heldout_idx.tolist())) == 0


def test_image_from_file_gray_and_resize(tmp_path):
    arr = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(arr).save(tmp_path / "x.png")
    s = Image(str(tmp_path / "x.png"), gray=True, size=15)
    assert s.grid_shape == (10, 15) and s.out_dim == 1
    s = Image(str(tmp_path / "x.png"), heldout=0.0)
    np.testing.assert_allclose(s.to_image(s.targets), arr / 255, atol=1e-6)


def test_scores_perfect_prediction(small_image):
    m = small_image.score(small_image.targets)
    assert m["psnr"] == float("inf") and m["ssim"] == pytest.approx(1.0)


def test_sines_signal():
    s = load_problem(SignalConfig(name="sines:5,10@512"))
    assert isinstance(s, Function1D) and s.n == 512 and len(s.heldout_idx) == 0
    spec = np.abs(np.fft.rfft(s.targets[:, 0].numpy()))
    assert set(np.argsort(spec)[-2:]) == {10, 20}
    assert list(s.band_bins) == [10, 20]
    m = s.score(torch.zeros(512, 1))
    np.testing.assert_allclose(m["band_error"], [1, 1], atol=1e-6)


@pytest.mark.parametrize("name,msg", [
    ("no/such/file.png", "not found"),
    ("astronot", "unknown image name 'astronot'"),
    ("sines:abc", "bad 1-D spec"),
    ("sines:600@1024", "aliases"),
])
def test_bad_signals(name, msg):
    with pytest.raises(InrlabError, match=msg):
        load_problem(SignalConfig(name=name))


def test_unreadable_image(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InrlabError, match="cannot read image"):
        Image(str(tmp_path / "bad.png"))


def test_nan_function_rejected():
    with pytest.raises(InrlabError, match="NaN"):
        Function1D(lambda x: np.where(x > 0, x, np.nan), samples=16)


def test_kodak_names_resolve_through_the_data_folder(kodak):
    s = Image("kodak:kodim03", size=48)
    assert s.name == "kodim03" and s.grid_shape == (32, 48) and s.out_dim == 3


def test_kodak_name_without_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("INRLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(InrlabError, match="INRLAB_DATA"):
        Image("kodak:kodim03")


@pytest.mark.parametrize("old", ["@kodak/kodim01.png", "kodim01", "kodak/kodim01.png"])
def test_old_kodak_names_name_the_one_form(old, capsys):
    from inrlab.cli import main

    with pytest.raises(InrlabError, match="name Kodak images kodak:kodim01"):
        Image(old)
    assert main(["fit", old, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kodak:kodim01" in err


def test_unit_range_targets_score_like_the_signed_ones():
    """``signal.range = "unit"``: targets in [0, 1] (the normalization code's), the same image
    and the same PSNR / SSIM for the same [0, 1] picture; bad values are one-line errors."""
    signed = Image("astronaut", size=32)
    unit = load_problem(SignalConfig("astronaut", size=32, range="unit"))
    np.testing.assert_allclose(unit.targets.numpy(), (signed.targets.numpy() + 1) / 2, atol=1e-6)
    assert unit.value_range == (0.0, 1.0) and unit.data_range == 1.0
    assert float(unit.targets.min()) >= 0 and float(signed.targets.min()) < 0
    np.testing.assert_allclose(unit.to_image(unit.targets), signed.to_image(signed.targets),
                               atol=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, signed.targets.shape).astype(np.float32)
    a = signed.score(signed.targets.numpy() + 2 * noise)  # the same error in [0, 1] units
    b = unit.score(unit.targets.numpy() + noise)
    for k in ("psnr", "psnr_train", "psnr_heldout", "ssim"):
        assert a[k] == pytest.approx(b[k], abs=1e-3), k
    assert unit.config.range == "unit" and unit.meta["range"] == "unit"
    with pytest.raises(InrlabError, match="unknown signal.range 'half'"):
        SignalConfig("astronaut", range="half").validate()
