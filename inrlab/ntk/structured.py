"""The structured (layer-wise) empirical NTK of an :class:`~inrlab.models.INR` (spec/entk.md §3).

For a linear layer z = W a + b the per-sample gradient w.r.t. W is g aᵀ (g = ∂f/∂z), so the
layer's share of K is (G Gᵀ) ⊙ (A Aᵀ + 1) with G (N × out), A (N × in) stacked over samples.
Layer-norm affine γ, β add (G ⊙ X̂)(G ⊙ X̂)ᵀ + G Gᵀ (G = ∂f/∂y, X̂ the normalised input); a grid
encoding adds Σ_l (W_l W_lᵀ) ⊙ (G_l G_lᵀ) per level l, W_l the sparse N × table interpolation
matrix and G_l (N × F) the gradient w.r.t. the level's features. Every G comes from one backward
pass of Σ_i e·f(x_i) per output direction e, which is exact because samples do not interact:
this is why batch-coupled norms are excluded (:func:`unsupported_layer`) unless they evaluate
with frozen statistics (eval mode), which makes them per-point maps like layer norm.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..models.activations import Finer, Gauss, Sine, Wire
from ..models.encodings import Fourier, Grid, Identity, Positional
from ..models.mlp import INR
from ..models.norms import CoordNorm

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus, nn.LeakyReLU, nn.ELU,
               nn.Identity, Sine, Finer, Gauss, Wire)
PARAMETER_FREE_ENCODINGS = (Identity, Positional, Fourier)


def unsupported_layer(model: nn.Module) -> str | None:
    """None when the structured form is exact for ``model``, else a description of the first
    layer that prevents it (a batch-coupled norm, an unknown module or parameter)."""
    if not isinstance(model, INR):
        return f"the model itself ({type(model).__name__} is not an inrlab INR)"
    enc = model.encoding
    if not isinstance(enc, (*PARAMETER_FREE_ENCODINGS, Grid)):
        return f"encoding ({type(enc).__name__} is not a known encoding)"
    placement = model.cfg.placement()
    for i, (lin, norm, act) in enumerate(zip(model.linears, model.norms, model.acts, strict=True)):
        if placement != "pre" and type(norm) is not nn.Identity:
            return f"norms.{i} (placed {placement!r}; the structured form knows 'pre')"
        if type(lin) is not nn.Linear:
            return f"linears.{i} ({type(lin).__name__} is not a plain nn.Linear)"
        if isinstance(norm, CoordNorm):
            if not norm.per_point:
                return f"norms.{i} ({norm.kind} norm couples the samples of a batch)"
        elif type(norm) is not nn.Identity:
            return f"norms.{i} ({type(norm).__name__} is not a known per-sample norm)"
        if type(act) not in ELEMENTWISE:
            return f"acts.{i} ({type(act).__name__} is not a known elementwise activation)"
    if type(model.head) is not nn.Linear:
        return f"head ({type(model.head).__name__} is not a plain nn.Linear)"
    known = {"head.weight", "head.bias"} | ({"encoding.table"} if isinstance(enc, Grid) else set())
    for i in range(len(model.linears)):
        known |= {f"linears.{i}.weight", f"linears.{i}.bias", f"norms.{i}.weight", f"norms.{i}.bias"}
    for name, _ in model.named_parameters():
        if name not in known:
            return f"{name} (a parameter the structured form does not know)"
    return None


def grid_overlap(index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """W Wᵀ of one level's interpolation matrix W (N × table rows), as a coalesced sparse COO
    (N, N) tensor, given the rows ``index`` (N, 2^d) and weights ``weight`` (N, 2^d) of each
    sample's vertices.

    Only the rows the samples touch matter: they are renumbered 0..U-1 (U ≤ N·2^d) and the
    product is taken sparse × sparse (torch COO), fast for coarse and fine levels alike.
    """
    n, c = index.shape
    rows, inverse = torch.unique(index.reshape(-1), return_inverse=True)
    sample = torch.arange(n, device=index.device).repeat_interleave(c)
    w = torch.sparse_coo_tensor(torch.stack([sample, inverse]), weight.reshape(-1),
                                (n, rows.numel()), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta" notice
        return torch.sparse.mm(w, w.t()).coalesce()


def _add_grid_share(k: torch.Tensor, overlap: torch.Tensor, ga: torch.Tensor,
                    gb: torch.Tensor) -> None:
    """k += overlap ⊙ (ga gbᵀ) for sparse ``overlap`` (N, N) and ga, gb (N, F), touching only
    the pairs of samples that share a vertex when they are few (fine levels)."""
    n = k.shape[0]
    ij, vals = overlap.indices(), overlap.values()
    if vals.numel() > n * n // 4:
        k += overlap.to_dense() * (ga @ gb.T)
    else:
        k.index_put_((ij[0], ij[1]), vals * (ga[ij[0]] * gb[ij[1]]).sum(-1), accumulate=True)


@dataclass
class LayerGradient:
    """One trainable layer's share of a per-sample gradient, for N samples and M output directions.

    ``kind``: ``"linear"`` (z = W a + b: ``saved`` = a (N, in), ``grads[a]`` = ∂(e_a·f)/∂z
    (N, out)), ``"affine"`` (layer-norm γ, β: ``saved`` = x̂ (N, W), ``grads[a]`` = ∂/∂y (N, W))
    or ``"grid"`` (``saved`` None, ``grads[a]`` = ∂/∂features (N, L, F)). ``weight``/``bias``:
    whether the layer's weight (γ, table) and bias (β) are trainable.
    """

    kind: str
    saved: torch.Tensor | None
    grads: list[torch.Tensor]
    weight: bool
    bias: bool


def layer_gradients(model: INR, x: torch.Tensor, directions: torch.Tensor
                    ) -> tuple[list[LayerGradient], tuple[torch.Tensor, torch.Tensor] | None]:
    """Per-layer inputs and output gradients of ``model`` at points ``x`` (N, d) for output
    directions ``directions`` (M, C): one forward pass and M backward passes.

    Returns the layers in forward order (head last) and, for a grid encoding, its interpolation
    (index, weight) (N, L, 2^d) (else None). ``model`` must be in the dtype of ``x`` and pass
    :func:`unsupported_layer`.
    """
    n, m = x.shape[0], directions.shape[0]
    enc = model.encoding
    # (kind, saved tensor, node whose gradient is needed, trainable weight?, trainable bias?)
    layers: list[tuple[str, torch.Tensor | None, torch.Tensor, bool, bool]] = []
    grid = None
    with torch.enable_grad():
        if isinstance(enc, Grid):
            index, weight = enc.interpolation(x)  # (N, L, 2^d)
            grid = (index, weight.to(x.dtype))
            corner = enc.table.detach().index_select(0, index.reshape(-1))
            feats = torch.einsum("nlcf,nlc->nlf", corner.view(*index.shape, enc.features),
                                 weight.to(x.dtype)).requires_grad_()
            h = torch.cat([x, feats.reshape(n, -1)], 1) if enc.include_input else feats.reshape(n, -1)
            if enc.table.requires_grad:
                layers.append(("grid", None, feats, True, False))
        else:
            h = enc(x)
        for lin, norm, act in zip(model.linears, model.norms, model.acts, strict=True):
            z = F.linear(h, lin.weight.detach(), lin.bias.detach())
            if not z.requires_grad:
                z.requires_grad_()
            layers.append(("linear", h.detach(), z, lin.weight.requires_grad, lin.bias.requires_grad))
            if isinstance(norm, CoordNorm):
                xhat = norm.normalize(z)  # per point (checked by unsupported_layer)
                z = xhat * norm.weight.detach() + norm.bias.detach()
                layers.append(("affine", xhat.detach(), z, norm.weight.requires_grad,
                               norm.bias.requires_grad))
            h = act(z)
        head = model.head
        out = F.linear(h, head.weight.detach(), head.bias.detach())  # (N, C)
        nodes = [node for _, _, node, _, _ in layers]
        grads = []  # per direction: the gradient w.r.t. every node
        for a in range(m):
            s = (out @ directions[a]).sum()
            grads.append(torch.autograd.grad(s, nodes, retain_graph=a < m - 1, allow_unused=True))
    result = [LayerGradient(kind, saved, [_zero_if_none(grads[a][k], node) for a in range(m)],
                            w_on, b_on)
              for k, (kind, saved, node, w_on, b_on) in enumerate(layers)]
    result.append(LayerGradient("linear", h.detach(), [directions[a].expand(n, -1) for a in range(m)],
                                head.weight.requires_grad, head.bias.requires_grad))
    return result, grid


def structured_blocks(model: INR, x: torch.Tensor, directions: torch.Tensor,
                      pairs: str = "all") -> torch.Tensor:
    """Kernel blocks K_ab (M, M, N, N) for output directions e_a = ``directions[a]`` (M, C):
    K_ab[i, j] = ⟨∂(e_a·f(x_i))/∂θ, ∂(e_b·f(x_j))/∂θ⟩ over the trainable parameters θ.

    ``model`` must be in the dtype of ``x`` (N, d) and pass :func:`unsupported_layer`.
    ``pairs="diag"`` fills only the blocks a == b (the others stay zero).
    """
    n, m = x.shape[0], directions.shape[0]
    layers, grid = layer_gradients(model, x, directions)
    blocks = torch.zeros(m, m, n, n, dtype=x.dtype, device=x.device)
    pair_list = [(a, b) for a in range(m) for b in range(m) if pairs == "all" or a == b]
    for layer in layers:
        g, saved = layer.grads, layer.saved
        if layer.kind == "grid":
            assert grid is not None
            index, weight = grid
            for lev in range(index.shape[1]):
                overlap = grid_overlap(index[:, lev], weight[:, lev])
                for a, b in pair_list:
                    _add_grid_share(blocks[a, b], overlap, g[a][:, lev], g[b][:, lev])
            continue
        assert saved is not None
        if layer.kind == "linear":
            share = saved @ saved.T if layer.weight else torch.zeros(n, n, dtype=x.dtype,
                                                                      device=x.device)
            if layer.bias:
                share += 1
            for a, b in pair_list:
                blocks[a, b].addcmul_(g[a] @ g[b].T, share)
        else:  # layer-norm affine: γ share (G⊙X̂)(G⊙X̂)ᵀ, β share G Gᵀ
            for a, b in pair_list:
                if layer.weight:
                    blocks[a, b] += (g[a] * saved) @ (g[b] * saved).T
                if layer.bias:
                    blocks[a, b] += g[a] @ g[b].T
    return blocks


def _zero_if_none(grad: torch.Tensor | None, node: torch.Tensor) -> torch.Tensor:
    """A node the output does not depend on (e.g. dead ReLUs everywhere) has no gradient."""
    return torch.zeros_like(node) if grad is None else grad
