"""Building a RunConfig from command-line pieces, shared by every command that takes a signal.

Kept apart from ``inrlab.cli`` (which imports every command module) so that command modules can
use it without a circular import.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .config import DEFAULT_PRESET, PRESETS, RunConfig, field_paths, flatten, load_toml, preset, set_fields
from .errors import InrlabError


def add_config_arguments(p: argparse.ArgumentParser, signal_required: bool = False) -> None:
    """The arguments every run-building command shares: SIGNAL, ``--preset``, ``--config``."""
    p.add_argument("signal", nargs=None if signal_required else "?",
                   help="image path, embedded name, kodak:NAME or 1-D spec (sines:5,10,15[@N])")
    p.add_argument("--preset", choices=sorted(PRESETS), help=f"model preset (default {DEFAULT_PRESET})")
    p.add_argument("--config", help="TOML file with [signal] [model] [train] tables")


def resolve_path(name: str) -> str:
    """``lr`` → ``train.lr``; ``encoding.sigma`` → ``model.encoding.sigma`` (unique suffix)."""
    paths = field_paths()
    if name in paths:
        return name
    hits = [p for p in paths if p.endswith("." + name)]
    if len(hits) > 1:  # the shallowest path wins (``size`` → signal.size, not signal.volume.size)
        depth = min(p.count(".") for p in hits)
        if sum(p.count(".") == depth for p in hits) == 1:
            hits = [p for p in hits if p.count(".") == depth]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise InrlabError(f"option --{name} is ambiguous ({', '.join(hits)}): give the full path")
    raise InrlabError(f"unknown option --{name}: see `inrlab fit --help` and `inrlab fields`")


def parse_overrides(tokens: Sequence[str]) -> dict[str, str]:
    """``["--a.b", "1", "--c=2"]`` → ``{"a.b": "1", "c": "2"}`` with full dotted paths."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise InrlabError(f"unexpected argument {tok!r}: options look like --train.lr 1e-3")
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens):
                raise InrlabError(f"option {tok} needs a value")
            val = tokens[i + 1]
            i += 1
        out[resolve_path(key.replace("-", "_"))] = val
        i += 1
    return out


def build_config(signal: str | None, preset_name: str | None, config_file: str | None,
                 overrides: dict[str, Any]) -> RunConfig:
    """preset → config file → command-line overrides → positional signal, validated."""
    file_data = load_toml(config_file) if config_file else {}
    name = preset_name or file_data.pop("preset", None) or DEFAULT_PRESET
    file_data.pop("preset", None)
    cfg = preset(name)
    set_fields(cfg, [*flatten(file_data).items(), *overrides.items()])
    if signal is not None:
        cfg.signal.name = signal
    return cfg.validate()
