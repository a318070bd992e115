"""Components register themselves: per-kind config sections, kind switching, plugins, old configs."""

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from inrlab import InrlabError, RunConfig, fit, preset
from inrlab.config import (
    EncodingConfig,
    TechniqueConfig,
    field_paths,
    from_dict,
    get_field,
    merge,
    set_field,
    set_fields,
)
from inrlab.models.encodings import FourierEncoding, HashEncoding, PositionalEncoding
from inrlab.registry import ENCODINGS, TECHNIQUES
from inrlab.techniques import Technique

FAST = {"model.width": 16, "model.depth": 2, "train.eval_every": 5, "train.checkpoint_every": 5,
        "signal.size": 16}


# --------------------------------------------------------------------------- a plugin encoding:
# everything a new encoding needs is this one class (here in a test module)


class Square(nn.Module):
    """[x, x²]: (N, d) → (N, 2d)."""

    def __init__(self, in_dim: int, gain: float):
        super().__init__()
        self.in_dim, self.out_dim, self.gain = in_dim, 2 * in_dim, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.gain * x * x], dim=1)


@ENCODINGS.register()
@dataclass
class SquareEncoding(EncodingConfig):
    """[x, gain·x²] (a toy encoding for the tests)."""

    kind: str = "square"
    gain: float = 1.0  # factor of the squared coordinates

    def setup(self, in_dim: int) -> nn.Module:
        return Square(in_dim, self.gain)


def test_a_registered_encoding_is_a_config_path_and_fits(tmp_path):
    assert "model.encoding.gain" in field_paths()
    res = fit("camera", "relu", steps=5, progress=False, out=tmp_path / "run",
              overrides={**FAST, "model.encoding.gain": 2.0, "model.encoding.kind": "square"})
    assert isinstance(res.model.encoding, Square) and res.model.encoding.gain == 2.0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["encoding"] == {"kind": "square", "gain": 2.0}
    again = fit("camera", "relu", steps=5, progress=False, out=tmp_path / "run", resume=True,
                overrides={**FAST, "model.encoding.kind": "square", "model.encoding.gain": 2.0})
    assert again.metrics["steps"] == 5


@dataclass
class EchoConfig(TechniqueConfig):
    weight: float = 1.0  # loss factor


class Echo(Technique):
    """A plugin technique with its own section ``train.echo``."""

    name = "echo"
    config = EchoConfig

    def loss(self, model, batch, pred, step):
        return self.cfg.echo.weight * super().loss(model, batch, pred, step)


def test_a_plugin_technique_owns_its_section():
    TECHNIQUES.register()(Echo)
    try:
        cfg = from_dict(RunConfig, {"train": {"technique": "echo", "echo": {"weight": 0.5}}})
        assert cfg.train.echo.weight == 0.5 and cfg.train.iga.end == 25
        set_field(cfg, "train.echo.weight", "2")
        assert cfg.to_dict()["train"]["echo"] == {"weight": 2.0}
    finally:
        del TECHNIQUES["echo"]
    assert not hasattr(RunConfig().train, "echo")


# --------------------------------------------------------------------------- kinds and paths


def test_setting_the_kind_switches_the_section_in_any_order():
    for items in ([("model.encoding.sigma", 5), ("model.encoding.kind", "fourier")],
                  [("model.encoding.kind", "fourier"), ("model.encoding.sigma", 5)]):
        cfg = preset("relu")
        set_fields(cfg, items)
        assert isinstance(cfg.model.encoding, FourierEncoding) and cfg.model.encoding.sigma == 5
    cfg = preset("relu")
    merge(cfg, {"model": {"encoding": {"n_frequencies": 3, "kind": "positional"}}})
    assert cfg.model.encoding == PositionalEncoding(n_frequencies=3)


def test_switching_kind_carries_shared_fields():
    cfg = preset("hash")  # include_input = False, levels 16
    set_field(cfg, "model.encoding.kind", "positional")
    assert cfg.model.encoding.include_input is False
    cfg = preset("mpe")
    set_field(cfg, "model.encoding.kind", "hash")
    assert isinstance(cfg.model.encoding, HashEncoding) and cfg.model.encoding.levels == 8


def test_a_field_of_another_kind_is_a_one_line_error():
    with pytest.raises(InrlabError, match=r"'model.encoding.sigma' belongs to the fourier "
                                          r".*set model.encoding.kind first") as e:
        set_field(preset("relu"), "model.encoding.sigma", 5)
    assert "\n" not in str(e.value)
    with pytest.raises(InrlabError, match="unknown model.encoding.kind 'fourrier': choose one of "
                                          "identity, positional, fourier"):
        set_field(preset("relu"), "model.encoding.kind", "fourrier")
    with pytest.raises(InrlabError, match="model.encoding.kind was assigned directly"):
        cfg = preset("relu")
        cfg.model.encoding.kind = "fourier"
        cfg.validate()


def test_shared_settings_skip_runs_whose_kind_lacks_them():
    cfg = preset("relu")
    set_fields(cfg, [("model.encoding.n_frequencies", 10), ("model.width", 8)],
               optional=["model.encoding.n_frequencies"])
    assert cfg.model.width == 8 and not hasattr(cfg.model.encoding, "n_frequencies")


def test_family_constructor_builds_the_kind():
    enc = EncodingConfig(kind="hash", levels=4)
    assert type(enc) is HashEncoding and enc.levels == 4
    with pytest.raises(InrlabError, match="belongs to the fourier"):
        EncodingConfig(kind="identity", sigma=3)


# --------------------------------------------------------------------------- old configs


OLD_ENCODING = {"kind": "hash", "include_input": False, "n_frequencies": 6, "sigma": 10.0,
                "n_features": 128, "levels": 16, "base_resolution": 16, "finest_resolution": 512,
                "features_per_level": 2, "log2_table_size": 19, "init_scale": 1e-4}


def test_configs_saved_with_every_kinds_fields_still_load():
    old = {"model": {"encoding": OLD_ENCODING, "activation": {
        "kind": "sine", "omega0_first": 20.0, "omega0_hidden": 30.0, "first_bias_scale": None,
        "scale": 10.0}}, "train": {"iga": {"end": 7}, "fr": {"low": 8}}}
    cfg = from_dict(RunConfig, old)
    assert cfg.model.encoding == HashEncoding(include_input=False)
    assert cfg.model.activation.omega0_first == 20.0 and not hasattr(cfg.model.activation, "scale")
    assert get_field(cfg, "train.iga.end") == 7 and cfg.train.fr.low == 8


def test_an_old_config_that_set_an_unused_field_says_how_to_convert():
    with pytest.raises(InrlabError, match=r"model.encoding.sigma=3.0 belongs to another "
                                          r"model.encoding kind than 'hash'.*delete the line"):
        from_dict(RunConfig, {"model": {"encoding": {**OLD_ENCODING, "sigma": 3.0}}})
