import pytest

from inrlab import InrlabError, RunConfig, preset
from inrlab.config import PRESETS, coerce, from_dict, get_field, set_field


def test_every_preset_validates():
    for name in PRESETS:
        cfg = preset(name).validate()
        assert cfg.preset == name


def test_set_field_parses_strings_to_field_types():
    cfg = RunConfig()
    set_field(cfg, "model.encoding.kind", "fourier")
    set_field(cfg, "model.encoding.sigma", "2.5")
    set_field(cfg, "model.width", "64")
    set_field(cfg, "train.batch_size", "none")
    set_field(cfg, "train.milestones", "100,200")
    assert get_field(cfg, "model.encoding.sigma") == 2.5
    set_field(cfg, "model.encoding.kind", "positional")
    set_field(cfg, "model.encoding.include_input", "false")
    assert cfg.model.width == 64 and cfg.train.batch_size is None
    assert cfg.train.milestones == [100, 200]
    assert cfg.model.encoding.include_input is False


@pytest.mark.parametrize("path,value,msg", [
    ("model.width", "-4", "model.width=-4 is impossible"),
    ("model.encoding.levels", "0", "levels=0 is impossible"),
    ("model.encoding.sigma", "0", "sigma=0.0 is impossible"),
    ("train.lr", "-1", "train.lr=-1.0 is impossible"),
    ("model.norm", "group", "unknown model.norm 'group'"),
])
def test_impossible_values_are_rejected(path, value, msg):
    cfg = preset("ffe")
    if path == "model.encoding.levels":
        cfg = preset("hash")
    set_field(cfg, path, value)
    with pytest.raises(InrlabError, match=msg.replace("(", r"\(")):
        cfg.validate()


def test_unknown_and_mistyped_fields():
    cfg = RunConfig()
    with pytest.raises(InrlabError, match="unknown config field 'model.encoding.sigmaa'"):
        set_field(cfg, "model.encoding.sigmaa", 1)
    with pytest.raises(InrlabError, match="needs a int"):
        set_field(cfg, "model.width", "wide")
    with pytest.raises(InrlabError, match="unknown preset"):
        preset("transformer")
    with pytest.raises(InrlabError, match="unknown config field 'model.foo'"):
        from_dict(RunConfig, {"model": {"foo": 1}})


def test_coerce_rejects_fractional_int():
    with pytest.raises(InrlabError):
        coerce(int, 2.5, "x")
