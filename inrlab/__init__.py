"""inrlab: implicit neural representations and their spectral bias.

    >>> import inrlab
    >>> res = inrlab.fit("astronaut", "hash", steps=300, out="runs/astro")
    >>> res.metrics["psnr_heldout"]
"""

import os

# PyTorch's CPU allocator with transparent huge pages (2 MiB) for tensors ≥ 2 MiB: a fresh
# 40 MB tensor (a grid's table gradient each step) then costs ~20 page faults instead of ~10⁴
# (measured: allocating and filling a 10.5 M-float tensor 3× faster on this machine). Read by
# torch at its first allocation; set THP_MEM_ALLOC_ENABLE=0 to opt out. Values are unchanged.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .config import (
    PRESETS,
    ActivationConfig,
    EncodingConfig,
    ModelConfig,
    RunConfig,
    SignalConfig,
    TrainConfig,
    preset,
)
from .errors import DivergedError, InrlabError
from .models import INR, build_model, freeze_statistics
from .problems import Function1D, Image, Signal, load_problem
from .train.trainer import FitResult, Trainer, fit, load_run, predict, run

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "ActivationConfig", "EncodingConfig", "ModelConfig", "RunConfig", "SignalConfig",
    "TrainConfig", "preset", "DivergedError", "InrlabError", "INR", "build_model",
    "freeze_statistics", "Function1D", "Image", "Signal", "load_problem", "FitResult", "Trainer",
    "fit", "load_run", "predict", "run",
]
