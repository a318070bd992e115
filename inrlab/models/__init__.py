"""Models: encodings, activations, normalizations and the INR that composes them."""

from .mlp import INR, build_model
from .norms import batch_coupled, coupled_now, freeze_statistics, set_norm_stats
from .predict import predict

__all__ = ["INR", "build_model", "batch_coupled", "coupled_now", "freeze_statistics", "set_norm_stats",
           "predict"]
