"""Spectra: eigenvalues against numpy, eigenvector frequencies against hand-made modes, Lanczos
against the dense spectrum."""

import numpy as np
import pytest
import torch

from inrlab.errors import InrlabError
from inrlab.ntk import eigenvector_frequencies, eigh, kernel, lanczos, report, summary
from tests.test_ntk import small_model


def test_eigh_matches_numpy_and_summary(rng):
    a = rng.standard_normal((30, 12))
    k = a @ a.T + np.diag(np.linspace(1e-3, 1, 30))
    lam = eigh(torch.from_numpy(k))
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(lam, np.sort(np.linalg.eigvalsh(k))[::-1], rtol=1e-12)
    s = summary(lam)
    assert s["lambda_max"] == lam[0] and s["lambda_min"] == lam[-1]
    assert s["condition"] == pytest.approx(lam[0] / lam[-1])
    assert s["mean"] == pytest.approx(np.trace(k) / 30)
    assert s["variance"] == pytest.approx(np.var(lam))
    assert summary(np.array([1.0, 0.0]))["condition"] == float("inf")


def test_eigh_bad_input():
    with pytest.raises(InrlabError, match="non-finite"):
        eigh(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(InrlabError, match="square"):
        eigh(np.ones((2, 3)))


def test_eigenvector_frequencies_1d_and_2d():
    n = 64
    t = np.arange(n)
    modes = [np.cos(2 * np.pi * 3 * t / n), np.cos(2 * np.pi * 20 * t / n)]
    k = 5 * np.outer(modes[0], modes[0]) + 1 * np.outer(modes[1], modes[1])
    lam, vec = eigh(k, vectors=True)
    f = eigenvector_frequencies(vec[:, :2], (n,), n_bands=8)
    np.testing.assert_allclose(f["mean_frequency"], [3 / n, 20 / n], atol=1e-9)
    assert f["band_energy"][0, 0] == pytest.approx(1) and f["band_energy"][1, 5] == pytest.approx(1)
    h, w = 16, 16
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    mode = np.cos(2 * np.pi * (4 * yy / h + 3 * xx / w)).ravel()
    f2 = eigenvector_frequencies(mode[:, None], (h, w))
    assert f2["mean_frequency"][0] == pytest.approx(np.hypot(4 / h, 3 / w))
    with pytest.raises(InrlabError, match="full regular grid"):
        eigenvector_frequencies(mode[:10, None], (h, w))


def test_eigenvector_frequencies_3d():
    d, h, w = 8, 12, 10
    zz, yy, xx = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    mode = np.cos(2 * np.pi * (2 * zz / d + 3 * yy / h + 1 * xx / w)).ravel()
    f = eigenvector_frequencies(mode[:, None], (d, h, w), n_bands=8)
    r = np.sqrt((2 / d) ** 2 + (3 / h) ** 2 + (1 / w) ** 2)
    assert f["mean_frequency"][0] == pytest.approx(r)
    band = min(int(r / np.sqrt(0.75) * 8), 7)  # shells of width √(3/4) / 8
    assert f["band_energy"][0, band] == pytest.approx(1)
    with pytest.raises(InrlabError, match="1-, 2- and 3-D"):
        eigenvector_frequencies(np.ones((16, 1)), (2, 2, 2, 2))


def test_report_on_a_model_grid():
    model = small_model("pe", out_dim=1)
    xs = torch.linspace(-1, 1, 12)
    x = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    r = report(kernel(model, x), grid_shape=(12, 12), n_vectors=4)
    assert r["eigenvalues"].shape == (144,) and r["band_energy"].shape == (4, 8)
    np.testing.assert_allclose(r["band_energy"].sum(1), 1)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_lanczos_matches_dense(norm):
    model = small_model("pe", norm=norm, out_dim=1)
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    lam = eigh(kernel(model, x))
    np.testing.assert_allclose(lanczos(model, x, k=3), lam[:3], rtol=1e-8)
    np.testing.assert_allclose(lanczos(model, x, k=2, which="smallest"), lam[-2:],
                               rtol=1e-6, atol=1e-10 * lam[0])
    with pytest.raises(InrlabError, match="1 ≤ k"):
        lanczos(model, x, k=40)
    with pytest.raises(InrlabError, match="did not converge"):
        lanczos(model, x, k=2, which="smallest", ncv=5, maxiter=2)
