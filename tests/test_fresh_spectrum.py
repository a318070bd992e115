"""FreSh spectra against a hand-written DFT, and the Wasserstein distance against SciPy."""

import itertools

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from inrlab.errors import InrlabError
from inrlab.fresh.spectrum import make_cubic, spectrum_vector, spectrum_vectors, wasserstein


def hand_dft(a: np.ndarray) -> np.ndarray:
    """DFT over every axis but the last (channels), as explicit exponential-matrix products."""
    out = a.astype(np.complex128)
    for ax in range(a.ndim - 1):
        n = a.shape[ax]
        m = np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n)
        out = np.moveaxis(np.tensordot(m, np.moveaxis(out, ax, 0), axes=1), 0, ax)
    return out


def hand_spectrum(a: np.ndarray, k: int, radial: bool = False) -> np.ndarray:
    mag = np.abs(hand_dft(a)).sum(-1)
    n = a.shape[0]
    v = np.zeros(k)
    for idx in itertools.product(range(n), repeat=a.ndim - 1):
        if radial:
            f = [i if i < (n + 1) // 2 else i - n for i in idx]  # signed frequency
            t = int(round(np.sqrt(sum(x * x for x in f))))
        else:
            if max(idx) > k:
                continue
            t = sum(idx)
        if 1 <= t <= k:
            v[t - 1] += mag[idx]
    return v / v.sum()


@pytest.mark.parametrize("shape,k", [((40, 2), 12), ((16, 16, 3), 8), ((8, 8, 8, 2), 4)])
def test_diagonal_spectrum_matches_hand_dft(rng, shape, k):
    a = rng.normal(size=shape)
    np.testing.assert_allclose(spectrum_vector(a, k).numpy(), hand_spectrum(a, k), rtol=1e-9)


def test_radial_spectrum_matches_hand_dft(rng):
    a = rng.normal(size=(16, 16, 2))
    np.testing.assert_allclose(spectrum_vector(a, 8, "radial").numpy(),
                               hand_spectrum(a, 8, radial=True), rtol=1e-9)
    a1 = rng.normal(size=(30, 1))  # 1-D: both binnings are rfft bins
    np.testing.assert_allclose(spectrum_vector(a1, 10, "radial").numpy(), hand_spectrum(a1, 10))


def test_batch_matches_single_and_sums_to_one(rng):
    a = rng.normal(size=(3, 16, 16, 3))
    batch = spectrum_vectors(a, 8)
    for i in range(3):
        torch.testing.assert_close(batch[i], spectrum_vector(a[i], 8))
    torch.testing.assert_close(batch.sum(1), torch.ones(3, dtype=torch.float64))


def test_sinusoid_peaks_at_its_frequency_after_square_resize():
    # 3 cycles along the 32-pixel axis of a 32×48 image: the square resize (32×32) keeps bin 3
    y = np.cos(2 * np.pi * 3 * np.arange(32) / 32)[:, None, None] * np.ones((1, 48, 1))
    v = spectrum_vector(y, 8).numpy()
    assert v.argmax() == 2 and v[2] > 0.95
    x1 = np.sin(2 * np.pi * 5 * np.arange(64) / 64)[:, None]
    assert spectrum_vector(x1, 16).numpy()[4] == pytest.approx(1.0, abs=1e-9)


def test_non_square_resize_is_antialiased_like_the_reference(rng):
    # a 2×48×32 non-square batch (long axis 48 → 32, below the 1 024 cap): the reference resizes
    # with torchvision's antialiased bilinear resize, i.e. F.interpolate(antialias=True)
    a = torch.tensor(rng.normal(size=(2, 48, 32, 3)), dtype=torch.float32)
    want = F.interpolate(a.movedim(-1, 1), size=(32, 32), mode="bilinear", align_corners=False,
                         antialias=True).movedim(1, -1)
    plain = F.interpolate(a.movedim(-1, 1), size=(32, 32), mode="bilinear", align_corners=False,
                          antialias=False).movedim(1, -1)
    got = make_cubic(a)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (got - plain).abs().max() > 0.1  # antialiasing changes the result: the test can fail
    # the spectrum vector of the non-square signal is the hand spectrum of that resized square
    np.testing.assert_allclose(spectrum_vector(a[0], 12).numpy(),
                               hand_spectrum(want[0].double().numpy(), 12), rtol=1e-6)
    # the other orientation, and a square image over the cap, are antialiased too
    wide = a.transpose(1, 2)
    torch.testing.assert_close(make_cubic(wide), F.interpolate(
        wide.movedim(-1, 1), size=(32, 32), mode="bilinear", antialias=True).movedim(1, -1),
        rtol=0, atol=1e-6)
    sq = a[:, :32, :32]
    torch.testing.assert_close(make_cubic(sq, max_side=16), F.interpolate(
        sq.movedim(-1, 1), size=(16, 16), mode="bilinear", antialias=True).movedim(1, -1),
        rtol=0, atol=1e-6)
    assert make_cubic(sq) is sq  # already square and under the cap: untouched


def test_wasserstein_matches_scipy(rng):
    k = 64
    for _ in range(5):
        a, b = rng.random(k), rng.random(k) ** 3
        a, b = a / a.sum(), b / b.sum()
        support = np.arange(1, k + 1)
        ref = scipy.stats.wasserstein_distance(support, support, u_weights=a, v_weights=b)
        assert float(wasserstein(torch.tensor(a), torch.tensor(b))) == pytest.approx(ref, rel=1e-10)
    # broadcasting: (R, K) against (1, K)
    batch = torch.tensor(rng.dirichlet(np.ones(k), size=4))
    tgt = torch.tensor(rng.dirichlet(np.ones(k)))[None]
    d = wasserstein(batch, tgt)
    assert d.shape == (4,) and float(d[2]) == pytest.approx(float(wasserstein(batch[2], tgt[0])))


def test_spectrum_errors(rng):
    with pytest.raises(InrlabError, match="fewer than --bins 20"):
        spectrum_vector(rng.normal(size=(32, 32, 1)), 20)
    with pytest.raises(InrlabError, match="constant"):
        spectrum_vector(np.full((32, 32, 3), 0.3, np.float32), 8)
    with pytest.raises(InrlabError, match="unknown binning"):
        spectrum_vector(rng.normal(size=(32, 1)), 8, "polar")
    with pytest.raises(InrlabError, match="at least 1"):
        spectrum_vector(rng.normal(size=(32, 1)), 0)
