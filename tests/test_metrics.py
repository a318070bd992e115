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


def test_fewer_scale_ms_ssim_reproduces_library_at_five_scales(rng):
    import torch
    from pytorch_msssim import ms_ssim as lib

    from inrlab.train.metrics import _ms_ssim_scales

    y = torch.from_numpy(rng.random((1, 3, 200, 180)))
    p = (y + 0.1 * torch.from_numpy(rng.standard_normal(y.shape))).clamp(0, 1)
    assert _ms_ssim_scales(p, y, 1.0, 5) == pytest.approx(float(lib(p, y, data_range=1.0)), rel=1e-9)


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
