"""Where benchmark data lives: ``$INRLAB_DATA``, else ``../shared/data`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InrlabError


def data_dir(required: bool = False) -> Path | None:
    """The benchmark data folder (holding ``kodak/`` …), or None when there is none (an
    InrlabError naming the fix when ``required``)."""
    env = os.environ.get("INRLAB_DATA")
    if env:
        p = Path(env)
    else:
        p = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if p.exists():
        return p
    if required:
        raise InrlabError(f"benchmark data folder {str(p)!r} not found: set INRLAB_DATA to the "
                          f"folder that holds kodak/")
    return None
