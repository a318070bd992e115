"""The measurement-space eNTK K_m = A K Aᵀ of a *linear* operator A, matrix-free (spec/problems.md).

For a per-sample model the gradient of the field at point p is, layer by layer, an outer product:
∂f(x_p)/∂W = g_p h_pᵀ (g = ∂f/∂z, h the layer input), ∂f/∂b = g_p, and for a layer-norm affine
∂f/∂γ = g_p ⊙ x̂_p, ∂f/∂β = g_p. Stacked over the P query points these are feature matrices
Φ_l (P × F_l) with J = [Φ_1 … Φ_L], so the measurement Jacobian is J_m = A J = [A Φ_1 … A Φ_L]
and K_m = Σ_l (A Φ_l)(A Φ_l)ᵀ. The problem applies A to feature columns however it is cheapest
(a sparse ray matrix for CT: cost nnz(A)·F instead of n·P·F; FFTs for MRI: F·N² log N, independent
of how many k-space entries are asked for), in chunks of columns, so neither J (n × params) nor the
P × P point kernel is ever formed. Exact (no approximation); the Jacobian of A∘f is the oracle.

Scope: parameter-free encodings (identity, positional, Fourier), plain linear layers, layer norm,
elementwise activations, and a one-channel field; batch-coupled norms only in eval with frozen
statistics (then per point, through :meth:`CoordNorm.normalize`). Grid encodings (sparse table
gradients) and batch-coupled norms computing batch statistics (samples interact) take the Jacobian
route (:func:`supports`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..models.encodings import Grid
from ..models.norms import CoordNorm
from .kernel import _check_memory, float_copy, output_directions
from .structured import _zero_if_none, unsupported_layer

ApplyFn = Callable[[torch.Tensor], torch.Tensor]  # (P, F) field-value columns → (n, C_m, F)
CHUNK_ELEMENTS = 2**23  # bound on one P × F block of features


def supports(model: nn.Module) -> bool:
    """True when :func:`linear_operator_kernel` is exact for ``model``."""
    return (unsupported_layer(model) is None and not isinstance(model.encoding, Grid)
            and model.head.out_features == 1)


def _feature_blocks(model: nn.Module, x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The per-point gradient features Φ (P, F) of every trainable parameter, in column blocks
    of at most CHUNK_ELEMENTS entries."""
    p = x.shape[0]
    factors: list[tuple[str, torch.Tensor, torch.Tensor, bool, bool]] = []
    with torch.enable_grad():
        h = model.encoding(x)
        for lin, norm, act in zip(model.linears, model.norms, model.acts, strict=True):
            z = F.linear(h, lin.weight.detach(), lin.bias.detach()).requires_grad_()
            factors.append(("linear", h.detach(), z, lin.weight.requires_grad, lin.bias.requires_grad))
            if isinstance(norm, CoordNorm):
                xhat = norm.normalize(z)  # per point (checked by unsupported_layer)
                z = xhat * norm.weight.detach() + norm.bias.detach()
                factors.append(("affine", xhat.detach(), z, norm.weight.requires_grad,
                                norm.bias.requires_grad))
            h = act(z)
        out = F.linear(h, model.head.weight.detach(), model.head.bias.detach())
        nodes = [node for _, _, node, _, _ in factors]
        grads = torch.autograd.grad(out.sum(), nodes, allow_unused=True)
    head = model.head
    factors.append(("linear", h.detach(), out, head.weight.requires_grad, head.bias.requires_grad))
    for k, (kind, saved, node, w_on, b_on) in enumerate(factors):
        g = torch.ones_like(out) if node is out else _zero_if_none(grads[k], node).detach()
        if kind == "linear":
            if w_on:
                rows = max(1, CHUNK_ELEMENTS // max(1, p * saved.shape[1]))
                for o in range(0, g.shape[1], rows):
                    gc = g[:, o:o + rows]
                    yield (gc[:, :, None] * saved[:, None, :]).reshape(p, -1)
            if b_on:
                yield g
        else:
            if w_on:
                yield g * saved
            if b_on:
                yield g


def linear_operator_kernel(model: nn.Module, x: torch.Tensor, apply: ApplyFn,
                           dtype: torch.dtype = torch.float64,
                           outputs: str | int = "surrogate") -> torch.Tensor:
    """K_m = A K Aᵀ (n·C_m or n rows, as :func:`inrlab.ntk.kernel`'s ``outputs``) for the query
    points ``x`` (P, d) of n measurements and ``apply``: field-value columns (P, F) → A applied
    to each, (n, C_m, F). ``model`` must pass :func:`supports`."""
    m = float_copy(model, dtype)
    dev = next(m.parameters()).device
    xx = x.detach().to(device=dev, dtype=dtype)
    k: torch.Tensor | None = None
    with torch.no_grad():
        for phi in _feature_blocks(m, xx):
            z = apply(phi)  # (n, C_m, F)
            n, c, _ = z.shape
            if k is None:
                _check_memory(n * c, dtype, dev)
                k = torch.zeros(c * n, c * n, dtype=dtype, device=dev)
            zf = z.permute(1, 0, 2).reshape(c * n, -1)
            k.addmm_(zf, zf.T)
    assert k is not None
    output_directions(outputs, c, dtype, dev)  # validates ``outputs`` against the C_m channels
    if outputs == "full":
        return k
    blocks = k.view(c, n, c, n).permute(0, 2, 1, 3)  # (C_m, C_m, n, n)
    if outputs == "surrogate":  # f̃ = (1/√C_m) Σ_c m_c
        return blocks.sum((0, 1)) / c
    if outputs == "trace":
        return blocks.diagonal(dim1=0, dim2=1).sum(-1)
    return blocks[outputs, outputs].clone()
