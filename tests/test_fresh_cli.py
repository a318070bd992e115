"""``inrlab fresh`` and ``inrlab fit --fresh`` end to end."""

import json

from inrlab.cli import main


def test_fresh_command(tmp_path, capsys):
    out = tmp_path / "f"
    rc = main(["fresh", "astronaut", "--preset", "siren", "--sweep", "omega0_first=10:50:20",
               "--out", str(out), "--inits", "3", "--bins", "8", "--size", "32", "--width", "32"])
    assert rc == 0
    data = json.loads((out / "fresh.json").read_text())
    assert [r["value"] for r in data["ranking"]] and len(data["ranking"]) == 3
    assert data["best"] == data["ranking"][0]["value"]
    assert {"value", "distance", "stderr"} <= set(data["ranking"][0])
    assert data["field"] == "model.activation.omega0_first" and data["inits"] == 3
    assert (out / "fresh.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "<- best" in text and "distance" in text


def test_fit_with_fresh(tmp_path):
    out = tmp_path / "run"
    rc = main(["fit", "astronaut", "--preset", "siren", "--size", "32", "--width", "32",
               "--steps", "3", "--eval_every", "3", "--quiet", "--out", str(out),
               "--fresh", "omega0_first=10:90:40", "--fresh-inits", "2", "--fresh-bins", "8"])
    assert rc == 0
    fresh = json.loads((out / "fresh.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["activation"]["omega0_first"] == fresh["best"]
    assert (out / "metrics.json").exists()


def test_fresh_errors_are_one_line(tmp_path, capsys):
    for argv, msg in [
        (["--sweep", "model.encoding.kind=1:2:1"], "not numeric"),
        (["--sweep", "omega0_first=50:10:10"], "reversed"),
        (["--sweep", "omega0_first=10:50:10", "--bins", "64"], "fewer than --bins 64"),
        (["--sweep", "nothing_here=1:2:1"], "unknown config field"),
    ]:
        rc = main(["fresh", "astronaut", "--preset", "siren", "--size", "32", "--inits", "1",
                   "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1, err


def test_select_and_fit_api(tmp_path):
    from inrlab import Image
    from inrlab.fresh import select_and_fit

    sig = Image("astronaut", size=32)
    res, fit = select_and_fit(sig, "siren", "model.activation.omega0_first", [20, 60], inits=2,
                              bins=8, out=tmp_path / "r", steps=2, progress=False,
                              overrides={"model.width": 16})
    assert fit.config.model.activation.omega0_first == res.best
    assert fit.config.model.width == 16
    assert (tmp_path / "r" / "fresh.json").exists() and (tmp_path / "r" / "metrics.json").exists()
