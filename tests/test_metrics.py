import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inrlab.train.metrics import (
    band_error_1d,
    band_error_2d,
    ms_ssim,
    psnr,
    radial_bands,
    ssim,
)


def _pair(rng, shape=(64, 64, 3), noise=0.05):
    y = rng.random(shape)
    return np.clip(y + noise * rng.standard_normal(shape), 0, 1), y


def test_psnr_matches_skimage(rng):
    p, y = _pair(rng)
    assert psnr(p, y) == pytest.approx(peak_signal_noise_ratio(y, p, data_range=1.0), rel=1e-9)
    assert psnr(y, y) == float("inf")


@pytest.mark.parametrize("shape", [(64, 64, 3), (48, 40)])
def test_ssim_matches_skimage(rng, shape):
    p, y = _pair(rng, shape, noise=0.1)
    ref = structural_similarity(y, p, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False,
                                channel_axis=-1 if len(shape) == 3 else None)
    assert ssim(p, y) == pytest.approx(ref, abs=2e-3)


def test_ms_ssim_behaviour(rng):
    y = rng.random((192, 192, 3))
    assert ms_ssim(y, y) == pytest.approx(1.0, abs=1e-6)
    a = ms_ssim(np.clip(y + 0.02 * rng.standard_normal(y.shape), 0, 1), y)
    b = ms_ssim(np.clip(y + 0.2 * rng.standard_normal(y.shape), 0, 1), y)
    assert 1 > a > b > 0
    assert ms_ssim(y[:64, :64], y[:64, :64]) == pytest.approx(1.0, abs=1e-6)  # fewer scales
    assert ms_ssim(y[:16, :16], y[:16, :16]) is None


def test_ms_ssim_matches_pytorch_msssim_at_five_scales(rng):
    """An independent implementation: pytorch-msssim (they differ in padding details by ~1e-4)."""
    import torch
    from pytorch_msssim import ms_ssim as lib

    y = rng.random((192, 176, 3))
    p = np.clip(y + 0.1 * rng.standard_normal(y.shape), 0, 1)
    ref = float(lib(*(torch.from_numpy(a).permute(2, 0, 1)[None] for a in (p, y)), data_range=1.0))
    assert ms_ssim(p, y) == pytest.approx(ref, abs=5e-4)


def test_ms_ssim_scale_count_on_small_images(rng):
    """Fewer scales below 176 px, and each count is the largest that torchmetrics accepts."""
    y = rng.random((100, 120))
    p = np.clip(y + 0.1 * rng.standard_normal(y.shape), 0, 1)
    four = ms_ssim(p, y)
    assert four is not None and 0 < four < 1
    assert ms_ssim(p[:98, :98], y[:98, :98]) != pytest.approx(four, abs=1e-6)  # 3 scales at 98
    assert ms_ssim(p[:22, :22], y[:22, :22]) is not None and ms_ssim(p[:21], y[:21]) is None


def test_band_error_1d_against_hand_dft():
    n = 256
    x = np.linspace(-1, 1, n)
    y = np.sin(2 * np.pi * 5 * x) + np.sin(2 * np.pi * 20 * x)
    f = np.sin(2 * np.pi * 5 * x)  # low frequency learnt, high one missing
    k = np.arange(n)
    dft = lambda s, b: np.sum(s * np.exp(-2j * np.pi * b * k / n))  # noqa: E731
    bins = np.array([10, 40])
    expect = [abs(dft(y, b) - dft(f, b)) / abs(dft(y, b)) for b in bins]
    np.testing.assert_allclose(band_error_1d(f, y, bins), expect, rtol=1e-9)
    assert band_error_1d(f, y, bins)[0] < 0.05 and band_error_1d(f, y, bins)[1] > 0.95


def test_band_error_2d(rng):
    y = rng.random((32, 32))
    np.testing.assert_allclose(band_error_2d(y, y, 4), 0, atol=1e-12)
    np.testing.assert_allclose(band_error_2d(np.zeros_like(y), y, 4), 1, atol=1e-12)
    b = radial_bands((32, 32), 4)
    assert b[0, 0] == 0 and b[16, 16] == 3 and b.max() == 3
