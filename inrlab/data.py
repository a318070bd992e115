"""Where benchmark data lives: ``$INRLAB_DATA``, else ``../shared/data`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InrlabError


def data_dir(required: bool = False) -> Path | None:
    """The benchmark data folder, or None (``required=True``: raise a clear error instead)."""
    env = os.environ.get("INRLAB_DATA")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if p.exists():
        return p
    if required:
        raise InrlabError("benchmark data not found: set INRLAB_DATA to the folder holding kodak/")
    return None
