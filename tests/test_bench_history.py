import json

import pytest

from inrlab.benchmarks import BENCHMARKS, history
from inrlab.errors import InrlabError


def test_bench_all_appends_records_and_plot_draws_them(tmp_path, monkeypatch):
    monkeypatch.setitem(history.TIERS["quick"], "step-time",
                        ["--size", "16", "--repeats", "1", "--presets", "relu", "hash"])
    hist = tmp_path / "history.jsonl"
    args = type("A", (), {"quick": True, "only": ["step-time"], "history": str(hist),
                          "results": str(tmp_path / "res")})()
    for _ in range(2):
        assert BENCHMARKS["all"][1](args) == 0
    recs = [json.loads(line) for line in hist.read_text().splitlines()]
    ratios = [r for r in recs if r["figure"] == "ratio"]
    assert len(ratios) == 4
    assert {r["key"] for r in ratios} == {"preset=relu kernels=auto", "preset=hash kernels=auto"}
    assert all(r["machine"]["torch"] and r["tier"] == "quick" and "commit" in r for r in recs)
    out = tmp_path / "h.png"
    pargs = type("P", (), {"history": str(hist), "figures": ["step-time:ratio"],
                           "out": str(out)})()
    assert BENCHMARKS["plot"][1](pargs) == 0
    assert out.stat().st_size > 1000


def test_plot_errors_are_one_line(tmp_path):
    pargs = type("P", (), {"history": str(tmp_path / "none.jsonl"), "figures": ["x:y"],
                           "out": str(tmp_path / "h.png")})()
    with pytest.raises(InrlabError, match="no benchmark history"):
        history.plot(pargs)
