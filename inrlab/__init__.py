"""inrlab: implicit neural representations and their spectral bias.

    >>> import inrlab
    >>> res = inrlab.fit("astronaut", "hash", steps=300, out="runs/astro")
    >>> res.metrics["psnr_heldout"]
"""

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
