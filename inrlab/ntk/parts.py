"""The eNTK restricted to some parameters, and the definitions papers use for "the NTK" of a
coordinate network, so that their spectrum claims can be checked under each one.

A definition maps (model, points x (N, d)) to an (N, N) kernel (float64, surrogate output):

* ``full``: every trainable parameter (:func:`inrlab.ntk.kernel`);
* ``hidden``: every parameter but the output layer's (``head.*``);
* ``head``: the output layer alone (the kernel of the last hidden features, H Hᵀ + 1);
* ``no_affine``: the norm layers' γ, β held fixed (``norms.*`` not differentiated);
* ``ntk_param``: the NTK parameterization of the same function: a linear layer's weight W is
  written W = ω / √fan_in, so its share of the kernel is divided by its fan-in (biases, norm
  affines and grid tables unchanged). Kernels of architectures whose layers have very different
  fan-ins (e.g. 128 Fourier features vs 10 grid features) compare on this scale in NTK theory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import InrlabError
from .kernel import float_copy, kernel


def parameter_kernel(model: nn.Module, x: torch.Tensor, keep: Callable[[str], bool],
                     method: str = "auto") -> torch.Tensor:
    """The eNTK (N, N) of ``model`` on ``x`` (N, d) over the trainable parameters whose name
    passes ``keep`` (the others are held fixed); zero when none does."""
    m = float_copy(model)
    names = [n for n, p in m.named_parameters() if p.requires_grad and keep(n)]
    if not names:
        return torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    for n, p in m.named_parameters():
        p.requires_grad_(n in names)
    return kernel(m, x, method)


def _ntk_param(model: nn.Module, x: torch.Tensor, method: str) -> torch.Tensor:
    total = None
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        k = parameter_kernel(model, x, lambda n, name=name: n == name, method)
        if p.ndim == 2 and name.endswith(".weight") and name != "encoding.table":
            k = k / p.shape[1]  # fan-in of a linear layer's weight (out, in)
        total = k if total is None else total + k
    if total is None:
        raise InrlabError("the model has no trainable parameters: its eNTK is zero")
    return total


DEFINITIONS: dict[str, Callable[[nn.Module, torch.Tensor, str], torch.Tensor]] = {
    "full": lambda m, x, method: kernel(m, x, method),
    "hidden": lambda m, x, method: parameter_kernel(m, x, lambda n: not n.startswith("head."),
                                                    method),
    "head": lambda m, x, method: parameter_kernel(m, x, lambda n: n.startswith("head."), method),
    "no_affine": lambda m, x, method: parameter_kernel(m, x, lambda n: not n.startswith("norms."),
                                                       method),
    "ntk_param": _ntk_param,
}


def definition_kernel(model: nn.Module, x: torch.Tensor, definition: str,
                      method: str = "auto") -> torch.Tensor:
    """The eNTK (N, N) of ``model`` on ``x`` (N, d) under ``definition`` (module doc)."""
    if definition not in DEFINITIONS:
        raise InrlabError(f"unknown eNTK definition {definition!r}: choose one of "
                          f"{', '.join(DEFINITIONS)}")
    return DEFINITIONS[definition](model, x, method)
