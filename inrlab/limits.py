"""Size guards: estimate what a request costs before allocating it, and refuse with a clear error.

Each limit has a default and an environment variable that raises (or lowers) it:

=============================  ==============================================  ====================
limit                          default                                         environment variable
=============================  ==============================================  ====================
memory of one allocation plan  3/4 of the machine's physical memory            INRLAB_MAX_MEMORY_GB
image pixels (decoded)         89,478,485 (Pillow's decompression-bomb limit)  INRLAB_MAX_IMAGE_PIXELS
FreSh candidates               1000                                            INRLAB_MAX_FRESH_CANDIDATES
runs one sweep file plans      100,000                                         INRLAB_MAX_SWEEP_RUNS
text/JSON file inrlab parses   64 MB                                           INRLAB_MAX_FILE_MB
=============================  ==============================================  ====================
"""

from __future__ import annotations

import os

from .errors import InrlabError

GIB = 2**30
DEFAULT_IMAGE_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS (a 1024×1024×3 ×~28 bitmap)
DEFAULT_FRESH_CANDIDATES = 1000
DEFAULT_SWEEP_RUNS = 100_000
DEFAULT_FILE_MB = 64  # a run's config.json is ~3 kB, a 400-view transforms file ~1 MB


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InrlabError(f"environment variable {name}={raw!r} is not a number: unset it or give "
                          f"e.g. {name}={default:g}") from None
    if not value > 0 or value == float("inf"):
        raise InrlabError(f"environment variable {name}={raw!r} must be a finite number > 0")
    return value


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GIB


def memory_limit() -> int:
    """Bytes one request may plan to allocate (``INRLAB_MAX_MEMORY_GB``, default 3/4 of RAM)."""
    return int(_env_number("INRLAB_MAX_MEMORY_GB", _physical_memory() * 0.75 / GIB) * GIB)


def check_memory(what: str, nbytes: float, fix: str) -> None:
    """Raise an :class:`InrlabError` when ``what`` would need more than :func:`memory_limit`.

    ``fix`` says how to ask for less (e.g. "use fewer samples"); the message adds how to raise
    the limit."""
    limit = memory_limit()
    if nbytes > limit:
        raise InrlabError(f"{what} needs about {nbytes / GIB:,.1f} GiB, over the memory limit of "
                          f"{limit / GIB:,.1f} GiB: {fix}, or raise the limit with "
                          f"INRLAB_MAX_MEMORY_GB")


def max_image_pixels() -> int:
    """Largest image (width × height) that is decoded (``INRLAB_MAX_IMAGE_PIXELS``)."""
    return int(_env_number("INRLAB_MAX_IMAGE_PIXELS", DEFAULT_IMAGE_PIXELS))


def max_fresh_candidates() -> int:
    """Most candidate values one FreSh sweep scores (``INRLAB_MAX_FRESH_CANDIDATES``)."""
    return int(_env_number("INRLAB_MAX_FRESH_CANDIDATES", DEFAULT_FRESH_CANDIDATES))


def max_sweep_runs() -> int:
    """Most runs one sweep file may plan (``INRLAB_MAX_SWEEP_RUNS``)."""
    return int(_env_number("INRLAB_MAX_SWEEP_RUNS", DEFAULT_SWEEP_RUNS))


def max_file_bytes() -> int:
    """Largest text/JSON file inrlab reads and parses itself (``INRLAB_MAX_FILE_MB``)."""
    return int(_env_number("INRLAB_MAX_FILE_MB", DEFAULT_FILE_MB) * 2**20)
