"""Trainer diagnostics (band errors, eNTK spectra at chosen steps), point sampling and plots."""

import json

import numpy as np
import pytest
import torch

from inrlab import Image
from inrlab.errors import InrlabError
from inrlab.ntk import eigh, kernel
from inrlab.ntk.points import sample_points
from inrlab.problems import Function1D
from inrlab.train.trainer import fit


def test_diagnostics_written_and_consistent(tmp_path):
    sig = Function1D.sines([2, 6], samples=128)
    res = fit(sig, "pe", steps=40, out=tmp_path / "run", progress=False,
              overrides={"model.width": 32, "train.diagnostics_every": 10,
                         "train.ntk_steps": [0, 40], "train.ntk_points": 24})
    d = tmp_path / "run" / "diagnostics"
    bands = [json.loads(line) for line in (d / "band_error.jsonl").read_text().splitlines()]
    assert [b["step"] for b in bands] == [0, 10, 20, 30, 40]
    assert len(bands[0]["error"]) == 2  # one Δ_k per sine (band_bins)
    assert np.mean(bands[-1]["error"]) < np.mean(bands[0]["error"])
    spectra = [json.loads(line) for line in (d / "ntk.jsonl").read_text().splitlines()]
    assert [s["step"] for s in spectra] == [0, 40]
    lam = np.array(spectra[-1]["eigenvalues"])
    assert len(lam) == 24 and spectra[-1]["lambda_max"] == lam[0]
    # the final record is the kernel of the final model on the same seeded points
    idx, _ = sample_points(sig, 24, "random", seed=0, pool=sig.train_idx)
    np.testing.assert_allclose(eigh(kernel(res.model, sig.coords[idx])), lam, rtol=1e-8, atol=1e-12)
    assert (d / "band_error.png").exists() and (d / "ntk_spectra.png").exists()


def test_diagnostics_off_by_default(tmp_path):
    fit(Function1D.sines([2], samples=64), "relu", steps=3, out=tmp_path / "r", progress=False,
        overrides={"model.width": 8})
    assert not (tmp_path / "r" / "diagnostics").exists()


def test_sample_points():
    img = Image("astronaut", size=32)
    idx, shape = sample_points(img, 100, "regular")
    assert shape is not None and len(idx) == shape[0] * shape[1] <= 100
    assert len(torch.unique(idx)) == len(idx)
    ridx, none = sample_points(img, 100, "random", seed=3)
    assert none is None and len(torch.unique(ridx)) == 100
    assert torch.equal(ridx, sample_points(img, 100, "random", seed=3)[0])
    with pytest.raises(InrlabError, match="between 1 and 1024"):
        sample_points(img, 5000)
    with pytest.raises(InrlabError, match="sampling"):
        sample_points(img, 10, "sobol")


def test_cli_ntk(tmp_path, capsys):
    from inrlab.cli import main

    out = tmp_path / "ntk"
    rc = main(["ntk", "sines:3,9@64", "--preset", "relu", "--compare", "pe", "--points", "32",
               "--model.width", "16", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "spectrum.json").read_text())
    assert set(data["models"]) == {"relu", "pe"} and data["points"] == 32
    for r in data["models"].values():
        lam = r["eigenvalues"]
        assert len(lam) == 32 and r["lambda_max"] == lam[0] and r["lambda_min"] == lam[-1]
        assert len(r["mean_frequency"]) == 8  # regular sampling: eigenvector frequencies
    for name in ("eigenvalue_histogram.png", "eigenvalues_sorted.png", "eigenvalues_normalized.png"):
        assert (out / name).exists()
    assert main(["ntk", "sines:3@64", "--preset", "relu", "--points", "65"]) == 2
    assert "between 1 and 64" in capsys.readouterr().err


def test_cli_ntk_definition(tmp_path, capsys):
    """--definition head: the output layer's kernel alone, below the full one (a PSD part)."""
    from inrlab.cli import main

    base = ["ntk", "sines:3@64", "--preset", "relu", "--points", "16", "--model.width", "8"]
    for d in ("full", "head"):
        assert main([*base, "--definition", d, "--out", str(tmp_path / d)]) == 0
    full, head = (json.loads((tmp_path / d / "spectrum.json").read_text()) for d in ("full", "head"))
    assert head["definition"] == "head"
    assert head["models"]["relu"]["lambda_max"] < full["models"]["relu"]["lambda_max"]
    with pytest.raises(SystemExit):
        main([*base, "--definition", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_ntk_kind_fields_apply_to_models_that_have_them(tmp_path, capsys):
    """--compare relu ffe --model.encoding.sigma 2: sigma is a Fourier-features field; it sets the
    FFE model and is skipped for the identity-encoded ReLU (it used to be refused for relu)."""
    from inrlab.cli import main

    base = ["ntk", "sines:3@64", "--preset", "relu", "--compare", "ffe", "--points", "16",
            "--model.width", "16"]
    assert main([*base, "--model.encoding.sigma", "2", "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "spectrum.json").read_text())
    assert data["overrides"]["model.encoding.sigma"] == "2" and set(data["models"]) == {"relu", "ffe"}
    assert main([*base, "--model.encoding.sigma", "30", "--out", str(tmp_path / "b")]) == 0
    lam = {s: json.loads((tmp_path / s / "spectrum.json").read_text())["models"]["ffe"]["lambda_max"]
           for s in "ab"}
    assert lam["a"] != lam["b"]  # sigma reached the FFE model
    # a field neither model's kind has is still refused in one line
    assert main([*base, "--model.encoding.finest_resolution", "8", "--out", str(tmp_path / "c")]) == 2
    assert "finest_resolution" in capsys.readouterr().err
