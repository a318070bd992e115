"""``patch_kernel``: the eNTK of weighted group sums of an INR's output (spec/iga.md, last section).

For n groups of p points x[g, k] and weights w[g, k], row g of the Jacobian is the gradient of the
group's weighted output sum u_g(θ) = Σ_k w[g, k] f̃(x[g, k]; θ), with f̃ = e·f the output along the
direction e (the surrogate 1/√C Σ_c f_c by default), and K[g, h] = ⟨∂u_g/∂θ, ∂u_h/∂θ⟩ (n, n).
With w = 1 this is the eNTK of the patch-summed output; a one-hot w is the eNTK on one
representative per group; IGA's ``reference`` kernel puts integer counts in w.

Structured route (exact for the models :func:`~inrlab.ntk.structured.unsupported_layer` accepts,
grid encodings excepted): a linear layer z = W a + b has per-point weight gradient g aᵀ, so the
group's is G_gᵀ diag(w_g) A_g (out × in) with G_g (p, out) and A_g (p, in) the group's output
gradients and inputs, and its bias gradient G_gᵀ w_g; K sums the Gram matrices of these blocks
over layers. Cost per layer: N·out·in to form the blocks and n²·out·in for their Gram (N = n·p),
with one forward and one backward pass over the N points; the N × N kernel is never formed.
Jacobian route (any model, the oracle): per group, the gradient of u_g by reverse mode, vmapped
over groups; a batch-coupled model sees each group as its own batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..errors import InrlabError
from ..models.encodings import Grid
from .jacobian import CHUNK_BYTES, trainable
from .kernel import _channels, _prepare, output_directions
from .structured import layer_gradients, unsupported_layer

METHODS = ("auto", "structured", "jacobian")


def patch_method(model: nn.Module, method: str) -> str:
    """``"structured"`` or ``"jacobian"``: ``auto`` picks structured whenever it is exact."""
    if method not in METHODS:
        raise InrlabError(f"unknown eNTK method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "jacobian":
        return method
    why = unsupported_layer(model)
    if why is None and isinstance(model.encoding, Grid) and model.encoding.table.requires_grad:
        why = "encoding (a trainable grid table: its patch sums are not implemented structurally)"
    if why is None:
        return "structured"
    if method == "structured":
        raise InrlabError(f"the structured patch eNTK cannot handle layer {why}: use "
                          f"method='jacobian' (or 'auto')")
    return "jacobian"


def patch_kernel(model: nn.Module, x: torch.Tensor, weights: torch.Tensor, method: str = "auto",
                 dtype: torch.dtype = torch.float64, outputs: str | int = "surrogate") -> torch.Tensor:
    """K (n, n) in ``dtype``: the eNTK of the weighted group sums u_g = Σ_k w[g, k] f̃(x[g, k]).

    ``x`` (n, p, d) the groups' points, ``weights`` (n, p) their weights, ``outputs`` a single
    output direction (``"surrogate"`` or an output index, see :func:`inrlab.ntk.kernel`).
    Like :func:`inrlab.ntk.kernel`, it runs on a ``dtype`` copy and never touches ``model``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise InrlabError(f"patch eNTK points must be an (n, p, d) tensor, got "
                          f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if weights.shape != x.shape[:2]:
        raise InrlabError(f"patch eNTK weights {tuple(weights.shape)} must match the groups "
                          f"{tuple(x.shape[:2])}")
    if outputs in ("trace", "full"):
        raise InrlabError(f"outputs={outputs!r}: the patch eNTK takes one output direction "
                          f"('surrogate' or an output index)")
    n, p, d = x.shape
    route = patch_method(model, method)
    m, flat = _prepare(model, x.reshape(n * p, d), dtype)
    direction = output_directions(outputs, _channels(m, flat), dtype, flat.device)[0]
    w = weights.detach().to(device=flat.device, dtype=dtype)
    if route == "structured":
        k = _structured(m, flat, w, direction)
    else:
        k = _jacobian(m, flat.view(n, p, d), w, direction)
    if not bool(torch.isfinite(k).all()):
        raise InrlabError("the patch eNTK has non-finite entries: the model's parameters or "
                          "gradients overflow; lower the learning rate or ω₀")
    return k.detach()


def _structured(model: nn.Module, x: torch.Tensor, w: torch.Tensor,
                direction: torch.Tensor) -> torch.Tensor:
    """Σ over layers of the Gram matrices of the per-group gradient blocks (module doc)."""
    n, p = w.shape
    layers, _ = layer_gradients(model, x, direction[None])
    k = torch.zeros(n, n, dtype=x.dtype, device=x.device)
    for layer in layers:
        g = layer.grads[0].reshape(n, p, -1) * w[..., None]  # (n, p, out), weighted
        if layer.kind == "linear":
            if layer.weight:  # G_gᵀ diag(w_g) A_g, flattened: (n, out·in)
                _add_gram(k, (g.transpose(1, 2) @ layer.saved.reshape(n, p, -1)).flatten(1))
            if layer.bias:
                b = g.sum(1)
                k += b @ b.T
        else:  # layer-norm affine: per point γ gradient g ⊙ x̂, β gradient g
            if layer.weight:
                gx = (g * layer.saved.reshape(n, p, -1)).sum(1)
                k += gx @ gx.T
            if layer.bias:
                b = g.sum(1)
                k += b @ b.T
    return k


def _add_gram(k: torch.Tensor, b: torch.Tensor, chunks: int = 4) -> None:
    """k += b bᵀ for b (n, D), computing only the blocks on and above the diagonal (k is
    symmetric): (chunks + 1) / (2·chunks) of the full product's multiplications."""
    n = b.shape[0]
    edges = [n * i // chunks for i in range(chunks + 1)]
    for i in range(chunks):
        bi = b[edges[i]:edges[i + 1]]
        for j in range(i, chunks):
            blk = bi @ b[edges[j]:edges[j + 1]].T
            k[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] += blk
            if j > i:
                k[edges[j]:edges[j + 1], edges[i]:edges[i + 1]] += blk.T


def _jacobian(model: nn.Module, x: torch.Tensor, w: torch.Tensor,
              direction: torch.Tensor) -> torch.Tensor:
    """K = J Jᵀ with J (n, P) the per-group gradients of u_g, by vmapped reverse mode."""
    params = trainable(model)
    n_params = sum(v.numel() for v in params.values())

    def u(pr: dict[str, torch.Tensor], xg: torch.Tensor, wg: torch.Tensor) -> torch.Tensor:
        return (functional_call(model, pr, (xg,)) @ direction) @ wg

    per_group = vmap(grad(u), in_dims=(None, 0, 0))
    chunk = max(1, CHUNK_BYTES // (x.element_size() * max(n_params, 1) * x.shape[1]))
    rows = []
    for xc, wc in zip(x.split(chunk), w.split(chunk), strict=True):
        jac = per_group(params, xc, wc)
        rows.append(torch.cat([jac[k].reshape(xc.shape[0], -1) for k in params], 1))
    j = torch.cat(rows)
    return j @ j.T
