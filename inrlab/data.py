"""Where benchmark data lives: the folder named by ``INRLAB_DATA`` (CI: ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path | None:
    """``$INRLAB_DATA``, else ``../shared/data`` beside the repository root when it exists."""
    env = os.environ.get("INRLAB_DATA")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return p if p.exists() else None
