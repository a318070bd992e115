import json
import re
import subprocess
import sys

import pytest

from inrlab.cli import main
from inrlab.cli_config import parse_overrides


def test_fit_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["fit", "astronaut", "--preset", "mpe", "--steps", "20", "--out", str(out),
               "--size", "48", "--quiet", "--eval_every", "10", "--encoding.finest_resolution", "48",
               "--model.width=32"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 20 and m["psnr"] > 20
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["width"] == 32 and cfg["signal"]["size"] == 48
    assert (out / "reconstruction.png").stat().st_size > 0
    assert "PSNR" in capsys.readouterr().out
    # --resume on a finished run reports it without retraining
    assert main(["fit", "astronaut", "--preset", "mpe", "--steps", "20", "--out", str(out),
                 "--size", "48", "--quiet", "--eval_every", "10",
                 "--encoding.finest_resolution", "48", "--model.width=32", "--resume"]) == 0


def test_config_file(tmp_path):
    (tmp_path / "c.toml").write_text('preset = "relu"\n[signal]\nname = "sines:3@128"\n'
                                     '[model]\nwidth = 16\n[train]\nsteps = 5\neval_every = 5\n')
    assert main(["fit", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["preset"] == "relu" and cfg["model"]["width"] == 16


def test_override_parsing():
    assert parse_overrides(["--lr", "1e-3", "--encoding.sigma=3", "--norm", "cross"]) == {
        "train.lr": "1e-3", "model.encoding.sigma": "3", "model.norm": "cross"}


@pytest.mark.parametrize("args,msg", [
    (["fit", "no_such.png"], "not found"),
    (["fit", "astronot"], "unknown image name"),
    (["fit", "camera", "--width", "-3"], "model.width=-3 is impossible"),
    (["fit", "camera", "--preset", "hash", "--levels", "0"], "levels=0 is impossible"),
    (["fit", "camera", "--preset", "ffe", "--sigma", "0"], "sigma=0.0 is impossible"),
    (["fit", "camera", "--kind", "x"], "ambiguous"),
    (["fit", "camera", "--bogus", "1"], "unknown option --bogus"),
    (["fit", "--config", "missing.toml"], "config file"),
])
def test_bad_input_is_one_line(args, msg, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inrlab: error:") and msg in err and "\n" not in err


def test_unknown_preset_from_shell():
    r = subprocess.run([sys.executable, "-m", "inrlab.cli", "fit", "camera", "--preset", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_malformed_toml(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[model\nwidth = 3")
    assert main(["fit", "--config", str(tmp_path / "c.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_fit_help_lists_every_config_field_with_its_comment(capsys):
    from inrlab.config import field_paths

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    for path in field_paths():
        assert re.search(rf"--{re.escape(path)}(?![\w.-])", out), path
    assert "[fourier] std of the Gaussian frequency matrix B" in out
    assert "--lr FLOAT" in out and "--steps" in out
