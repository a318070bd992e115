"""``kernel(model, x)``: the empirical NTK, routed to the fastest exact method the model supports.

Outputs for a model with C outputs (``outputs=``):

* ``"surrogate"`` (default): the kernel of f̃ = (1/√C) Σ_c f_c, (N, N);
* ``"trace"``: Σ_c K_c, the sum of the per-output kernels, (N, N);
* an int c: the kernel of output c alone, (N, N);
* ``"full"``: the (C·N, C·N) kernel, **output-major**: row ``c·N + i`` is output c at sample i,
  so block [c·N:(c+1)·N, c'·N:(c'+1)·N] is K_{cc'}.

The computation runs on a copy of the model in ``dtype`` (float64 by default: eigenvalues spanning
eight orders of magnitude are not measurable in float32). The caller's model (parameters, modes,
norm statistics, gradients) is never touched, no autograd graph leaks out, and it may be called
inside a training step (under ``torch.no_grad()`` too).
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jacrev

from ..errors import InrlabError
from ..models import coupled_now
from ..models.encodings import Grid
from ..models.norms import CoordNorm
from .jacobian import jacobian_blocks, kernel_vector_product, trainable
from .structured import structured_blocks, unsupported_layer

METHODS = ("auto", "structured", "jacobian")


def float_copy(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A copy of ``model`` in ``dtype`` on its device, without gradients or caches; norms in
    training mode are switched to the equivalent eval mode with batch statistics."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        if p.grad is not None:
            memo[id(p.grad)] = None  # not copied
    for mod in model.modules():
        if isinstance(mod, Grid) and mod._cache is not None:
            memo[id(mod._cache)] = None
    out = copy.deepcopy(model, memo).to(dtype)
    for p in out.parameters():
        p.grad = None
    for mod in out.modules():
        if isinstance(mod, CoordNorm) and mod.training:
            # same output (batch statistics) without the running-statistics update, which
            # torch.func cannot trace and the kernel does not need
            mod.train(False)
            mod.stats = "batch"
    return out


def output_directions(outputs: str | int, channels: int, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor:
    """The output directions (M, C) whose kernels ``outputs`` combines (see module doc)."""
    if isinstance(outputs, bool) or not isinstance(outputs, (str, int)):
        raise InrlabError(f"outputs={outputs!r}: use 'surrogate', 'trace', 'full' or an output index")
    if isinstance(outputs, int):
        if not 0 <= outputs < channels:
            raise InrlabError(f"outputs={outputs} is out of range: the model has {channels} outputs "
                              f"(0..{channels - 1})")
        return torch.eye(channels, dtype=dtype, device=device)[outputs:outputs + 1]
    if outputs == "surrogate":
        return torch.full((1, channels), 1 / math.sqrt(channels), dtype=dtype, device=device)
    if outputs in ("trace", "full"):
        return torch.eye(channels, dtype=dtype, device=device)
    raise InrlabError(f"unknown outputs {outputs!r}: use 'surrogate', 'trace', 'full' or an index")


def resolve_method(model: nn.Module, method: str) -> str:
    """``"structured"`` or ``"jacobian"`` for ``model``: ``auto`` picks structured whenever it is
    exact; a forced ``structured`` on a model it cannot handle raises, naming the layer."""
    if method not in METHODS:
        raise InrlabError(f"unknown eNTK method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "jacobian":
        return method
    why = unsupported_layer(model)
    if why is None:
        return "structured"
    if method == "structured":
        raise InrlabError(f"the structured eNTK cannot handle layer {why}: use method='jacobian' "
                          f"(or 'auto')")
    return "jacobian"


def _prepare(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> tuple[nn.Module, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise InrlabError(f"eNTK points must be a 2-D tensor (N, d), got "
                          f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.shape[0] == 0:
        raise InrlabError("eNTK needs at least one point: pass x with N ≥ 1 rows")
    in_dim = getattr(model, "in_dim", x.shape[1])
    if x.shape[1] != in_dim:
        raise InrlabError(f"points have {x.shape[1]} coordinates but the model takes {in_dim}: "
                          f"pass x of shape (N, {in_dim})")
    if not dtype.is_floating_point:
        raise InrlabError(f"dtype {dtype} is not a floating-point type: use torch.float64")
    m = float_copy(model, dtype)
    dev = next(m.parameters()).device
    return m, x.detach().to(device=dev, dtype=dtype)


def _channels(model: nn.Module, x: torch.Tensor) -> int:
    out_dim = getattr(model, "out_dim", None)
    if out_dim is None:
        with torch.no_grad():
            out_dim = model(x[:2] if not coupled_now(model) else x).shape[1]
    return int(out_dim)


def kernel(model: nn.Module, x: torch.Tensor, method: str = "auto",
           dtype: torch.dtype = torch.float64, outputs: str | int = "surrogate") -> torch.Tensor:
    """The empirical NTK of ``model`` on points ``x`` (N, d): (N, N), or (C·N, C·N) for
    ``outputs="full"``, in ``dtype`` on the model's device.

    ``method``: ``"structured"`` (layer-wise exact form, per-sample models), ``"jacobian"``
    (torch.func Jacobian contraction, any model; the oracle) or ``"auto"`` (structured when exact).
    Batch-coupled models are differentiated as one function of the whole batch ``x`` (in the
    caller's train/eval mode), so their kernel depends on which points are passed together.
    """
    route = resolve_method(model, method)
    m, xx = _prepare(model, x, dtype)
    dirs = output_directions(outputs, _channels(m, xx), dtype, xx.device)
    _check_memory(dirs.shape[0] * xx.shape[0], dtype, xx.device)
    pairs = "all" if outputs == "full" else "diag"
    blocks_fn = structured_blocks if route == "structured" else jacobian_blocks
    blocks = blocks_fn(m, xx, dirs, pairs).detach()
    k = _assemble(blocks, outputs)
    if not bool(torch.isfinite(k).all()):
        bad = int((~torch.isfinite(k)).sum())
        raise InrlabError(f"the eNTK has {bad} non-finite entries: the model's parameters or "
                          f"gradients overflow at these points; check the model (lower the learning "
                          f"rate, or a smaller ω₀) before computing its kernel")
    return k


def _check_memory(rows: int, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a dense kernel whose working set (≈ 4 matrices of rows²) exceeds the memory."""
    need = 4 * rows * rows * torch.finfo(dtype).bits // 8
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[1]
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise InrlabError(f"a dense {rows}×{rows} eNTK needs about {need / 2**30:.0f} GiB, more than "
                          f"the {have / 2**30:.0f} GiB available: use fewer points, or lanczos() / "
                          f"kernel_matvec() which never form the kernel")


def _assemble(blocks: torch.Tensor, outputs: str | int) -> torch.Tensor:
    m, _, n, _ = blocks.shape
    if outputs == "full":
        return blocks.permute(0, 2, 1, 3).reshape(m * n, m * n)
    if outputs == "trace":
        return blocks.diagonal(dim1=0, dim2=1).sum(-1)
    return blocks[0, 0]


def kernel_matvec(model: nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.float64,
                  outputs: str | int = "surrogate"):
    """A function v ↦ K v for the kernel :func:`kernel` would return, without forming K.

    v has shape (N,) (or (C·N,) output-major for ``outputs="full"``); each call costs one
    backward and one forward-mode pass over ``x``. Useful for Lanczos on large N.
    """
    m, xx = _prepare(model, x, dtype)
    dirs = output_directions(outputs, _channels(m, xx), dtype, xx.device)
    n, mm = xx.shape[0], dirs.shape[0]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        v = torch.as_tensor(v, dtype=dtype, device=xx.device)
        with torch.enable_grad():
            if outputs == "full":
                return kernel_vector_product(m, xx, dirs, v.reshape(mm, n)).reshape(-1).detach()
            if outputs == "trace":
                return sum(kernel_vector_product(m, xx, dirs[a:a + 1], v[None])[0]
                           for a in range(mm)).detach()
            return kernel_vector_product(m, xx, dirs, v[None])[0].detach()

    return matvec


def measurement_kernel(model: nn.Module, problem: Any, idx: torch.Tensor,
                       dtype: torch.dtype = torch.float64,
                       outputs: str | int = "surrogate") -> torch.Tensor:
    """The measurement-space eNTK K_m = J_m J_mᵀ of ``problem`` on its measurements ``idx``
    (n,), J_m = ∂m̂/∂θ of the problem's operator applied to the field: (n, n), or (C·n, C·n) for
    ``outputs="full"`` (output-major, as :func:`kernel`). Exact for any differentiable operator:
    the Jacobian of A∘f by reverse mode over the batch, in chunks of output directions."""
    if len(idx) == 0:
        raise InrlabError("the measurement eNTK needs at least one measurement")
    m = float_copy(model, dtype)
    dev = next(m.parameters()).device
    batch = problem.batch(torch.as_tensor(idx).cpu()).to(dev)
    x = batch.x.to(dtype)
    with torch.no_grad():
        channels = problem.forward(m(x), batch).shape[1]
    dirs = output_directions(outputs, channels, dtype, dev)
    _check_memory(dirs.shape[0] * len(idx), dtype, dev)
    params = trainable(m)

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return problem.forward(functional_call(m, p, (x,)), batch).to(dtype) @ dirs.T  # (n, M)

    n_params = sum(p.numel() for p in params.values())
    chunk = max(1, 2**28 // (8 * (n_params + x.numel() * 64)))
    jac = jacrev(f, chunk_size=chunk)(params)
    mm, n = dirs.shape[0], len(idx)
    j = torch.cat([jac[k].reshape(n, mm, -1) for k in params], dim=2).detach()  # (n, M, P)
    return _assemble(torch.einsum("iap,jbp->abij", j, j), outputs)
