"""Fused pointwise kernels for the periodic and Gaussian activations (sine, FINER, Gauss, WIRE).

Each activation y = φ(z) is a ``torch.autograd.Function`` whose forward is one pointwise kernel
``φ(z)`` and whose backward is one pointwise kernel ``g · φ'(z)``, recomputed from the saved input
z (nothing else is saved, so memory matches the eager graph's best case and double backward still
works: the backward is made of differentiable torch ops on the saved input).

A kernel runs either as the eager torch formula (one memory pass per op) or compiled by
``torch.compile`` (inductor: one vectorized C++ loop on CPU, one Triton kernel on CUDA, i.e. one
memory pass for the whole forward and one for the whole backward). The compiled kernel evaluates
the same formula in the same order; it may differ from eager in the last bit (vectorized math
libraries), which the tests bound.

Backend (``set_backend`` or the ``INRLAB_KERNELS`` environment variable):

* ``"auto"`` (default): compiled for tensors of at least ``COMPILE_MIN_NUMEL`` elements when
  ``torch.compile`` works here (the first failure switches to eager for the rest of the process,
  with one warning); smaller tensors (which would not repay the compile time) run the plain
  formula under ordinary autograd. 3-D grid encodings on CPU use the C++ grid kernel
  (``grid_kernel``, built on first use; a failed build warns once and they keep their torch
  paths);
* ``"compiled"``: compiled for every size, and the C++ grid kernel for grids of every dimension
  (a failure raises ``InrlabError``);
* ``"eager"``: never compile; also the reference paths elsewhere (grid encodings gather and
  index_add instead of their sparse matrix products or the C++ kernel): what ``inrlab bench
  step-time --kernels eager auto`` compares against.

Inside ``torch.func`` transforms (vmap, jacrev, jvp: the eNTK engine, FreSh) the modules call the
plain formula (``*_formula``), which those transforms differentiate like any torch code; the
Functions themselves also support vmap (``generate_vmap_rule``) and forward-mode AD (``jvp``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InrlabError

BACKENDS = ("auto", "compiled", "eager")
COMPILE_MIN_NUMEL = 2**20  # below this (e.g. 4096 points × 256), compile time would not pay off
ENVELOPE_CUT = 40.0  # exp(-40) ≈ 4e-18: the Gaussian envelope is exactly 0 beyond it

_state: dict[str, Any] = {"backend": None, "broken": False}
_compiled: dict[str, Callable[..., torch.Tensor]] = {}


def set_backend(name: str) -> None:
    """Choose the kernel backend ``"auto"``, ``"compiled"`` or ``"eager"`` (see the module doc)."""
    if name not in BACKENDS:
        raise InrlabError(f"unknown kernel backend {name!r}: choose one of {', '.join(BACKENDS)}")
    _state["backend"] = name


def get_backend() -> str:
    """The active backend (``INRLAB_KERNELS`` when ``set_backend`` was not called; else auto)."""
    if _state["backend"] is None:
        set_backend(os.environ.get("INRLAB_KERNELS", "auto"))
    return _state["backend"]


# --------------------------------------------------------------------------- formulas
# z: pre-activations (any shape); g: upstream gradient (same shape). All pointwise.


def envelope_formula(u: torch.Tensor) -> torch.Tensor:
    """exp(-u²), exactly 0 where u² ≥ ``ENVELOPE_CUT`` (avoids denormal floats downstream)."""
    u2 = u * u
    return torch.where(u2 < ENVELOPE_CUT, torch.exp(-u2), torch.zeros((), dtype=u.dtype,
                                                                       device=u.device))


def sine_formula(z: torch.Tensor, omega: float) -> torch.Tensor:
    """sin(ω z)."""
    return torch.sin(omega * z)


def sine_grad(z: torch.Tensor, g: torch.Tensor, omega: float) -> torch.Tensor:
    """g · ω cos(ω z)."""
    return g * (omega * torch.cos(omega * z))


def finer_formula(z: torch.Tensor, omega: float) -> torch.Tensor:
    """sin(ω (|z| + 1) z), the scale (|z| + 1) detached."""
    return torch.sin(omega * (z.abs().detach() + 1) * z)


def finer_grad(z: torch.Tensor, g: torch.Tensor, omega: float) -> torch.Tensor:
    """g · s cos(s z), s = ω (|z| + 1) held constant (FINER's detached scale)."""
    s = omega * (z.abs().detach() + 1)
    return g * (s * torch.cos(s * z))


def gauss_formula(z: torch.Tensor, scale: float) -> torch.Tensor:
    """exp(-(s z)²) with the tail cut of ``envelope_formula``."""
    return envelope_formula(scale * z)


def gauss_grad(z: torch.Tensor, g: torch.Tensor, scale: float) -> torch.Tensor:
    """g · (-2 s u e^{-u²}), u = s z, 0 where the envelope is cut."""
    u = scale * z
    return g * (-2 * scale * u * envelope_formula(u))


def wire_formula(z: torch.Tensor, omega: float, scale: float) -> torch.Tensor:
    """cos(ω z) · exp(-(s z)²) with the tail cut of ``envelope_formula``."""
    return torch.cos(omega * z) * envelope_formula(scale * z)


def wire_grad(z: torch.Tensor, g: torch.Tensor, omega: float, scale: float) -> torch.Tensor:
    """g · e(u) · (-ω sin(ω z) - 2 s u cos(ω z)), u = s z, e the cut envelope."""
    u = scale * z
    w = omega * z
    return g * (envelope_formula(u) * (-omega * torch.sin(w) - 2 * scale * u * torch.cos(w)))


KERNELS: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "sine": (sine_formula, sine_grad),
    "finer": (finer_formula, finer_grad),
    "gauss": (gauss_formula, gauss_grad),
    "wire": (wire_formula, wire_grad),
}


# --------------------------------------------------------------------------- dispatch


def _compiled_kernel(key: str) -> Callable[..., torch.Tensor]:
    if key not in _compiled:
        kind, part = key.split(".")
        fn = KERNELS[kind][0 if part == "fwd" else 1]
        _compiled[key] = torch.compile(fn, fullgraph=True)
    return _compiled[key]


def use_compiled(z: torch.Tensor) -> bool:
    """Whether the backend compiles the kernels for a plain tensor like ``z``."""
    backend = get_backend()
    return backend == "compiled" or (backend == "auto" and not _state["broken"]
                                     and z.numel() >= COMPILE_MIN_NUMEL)


def _run(key: str, *args: Any) -> torch.Tensor:
    """Kernel ``key`` ("sine.fwd", "wire.bwd", …): compiled unless the backend is eager or
    compile failed before, the tensors are batched by a transform, or a graph must be recorded
    (double backward); otherwise the eager formula."""
    kind, part = key.split(".")
    eager = KERNELS[kind][0 if part == "fwd" else 1]
    backend = get_backend()
    if (backend == "eager" or _state["broken"]
            or torch._C._functorch.is_functorch_wrapped_tensor(args[0])
            or (torch.is_grad_enabled()
                and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args))):
        return eager(*args)
    try:
        return _compiled_kernel(key)(*args)
    except Exception as e:  # inductor raises many types (no compiler, no Triton)  # noqa: BLE001
        if backend == "compiled":
            raise InrlabError(f"torch.compile of the {kind} kernel failed "
                              f"({type(e).__name__}): use kernel backend 'eager'") from None
        _state["broken"] = True
        warnings.warn(f"inrlab: torch.compile unavailable ({type(e).__name__}); fused "
                      f"activations run eager", stacklevel=2)
        return eager(*args)


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    z, *params = inputs
    ctx.save_for_backward(z)
    ctx.save_for_forward(z)
    ctx.params = tuple(params)


def _make(kind: str) -> type[torch.autograd.Function]:
    """The autograd Function of activation ``kind`` (forward, backward, jvp, vmap rule)."""

    def forward(z: torch.Tensor, *params: float) -> torch.Tensor:
        return _run(f"{kind}.fwd", z, *params)

    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        (z,) = ctx.saved_tensors
        return (_run(f"{kind}.bwd", z, g, *ctx.params), *([None] * len(ctx.params)))

    def jvp(ctx: Any, z_t: torch.Tensor, *params_t: Any) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return KERNELS[kind][1](z, z_t, *ctx.params)

    return type(f"{kind.capitalize()}Fn", (torch.autograd.Function,), {
        "generate_vmap_rule": True, "forward": staticmethod(forward),
        "setup_context": staticmethod(_setup_context), "backward": staticmethod(backward),
        "jvp": staticmethod(jvp),
        "__doc__": f"Fused {kind} activation: {KERNELS[kind][0].__doc__}"})


FUNCTIONS: dict[str, type[torch.autograd.Function]] = {k: _make(k) for k in KERNELS}


def apply(kind: str, z: torch.Tensor, *params: float) -> torch.Tensor:
    """Activation ``kind`` of z (any shape) with ``params`` (ω and/or s); same shape as z.

    Large plain tensors go through the fused, compiled Function (``use_compiled``); otherwise,
    under ``torch.func`` transforms and inside a ``torch.compile`` trace, the formula runs and
    autograd (or the transform, or the trace) differentiates it, as an unfused activation.
    """
    if (torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(z)
            or not use_compiled(z)):
        return KERNELS[kind][0](z, *params)  # (when compiling: traced into the caller's graph)
    return FUNCTIONS[kind].apply(z, *params)
