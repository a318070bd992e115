"""Signals: what is fitted. ``load_signal`` turns a CLI/config name into one."""

from __future__ import annotations

from ..config import SignalConfig
from .base import Signal
from .function1d import Function1D, parse_1d_spec
from .image import EMBEDDED, Image


def load_signal(cfg: SignalConfig) -> Signal:
    """A path or embedded image name → :class:`Image`; ``sines:…`` → :class:`Function1D`."""
    cfg.validate()
    if cfg.name.startswith("sines:"):
        return parse_1d_spec(cfg.name, cfg.samples, cfg.heldout or 0.0, cfg.split_seed)
    return Image(cfg.name, size=cfg.size, gray=cfg.gray,
                 heldout=0.1 if cfg.heldout is None else cfg.heldout, split_seed=cfg.split_seed)


__all__ = ["Signal", "Function1D", "Image", "EMBEDDED", "load_signal"]
