"""The eNTK by Jacobian contraction (torch.func), the general route and the test oracle, and
kernel–vector products (jvp of vjp) for kernels too large to hold.

Per-sample models: J (N × P) is built by ``vmap(jacrev)`` over chunks of samples. Batch-coupled
models (batch/global/cross norms): the whole batch is one function f(θ) → (N, C) and J comes from
``jacrev`` over its N outputs (chunked vector–Jacobian products). Memory O(N·M·P) for J.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ..models import coupled_now

CHUNK_BYTES = 2**28  # bound on one chunk of per-sample Jacobians


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters θ of ``model``, detached, by name."""
    return {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}


def jacobian(model: nn.Module, x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """J (N, M, P): ∂(e_a·f(x_i))/∂θ for output directions e_a = ``directions[a]`` (M, C),
    θ all trainable parameters flattened in ``named_parameters`` order."""
    params = trainable(model)
    n_params = sum(p.numel() for p in params.values())
    n, m = x.shape[0], directions.shape[0]

    def flat(jac: dict[str, torch.Tensor], lead: int) -> torch.Tensor:
        return torch.cat([jac[k].reshape(lead, m, -1) for k in params], dim=2)

    if coupled_now(model):
        def f_batch(p: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(model, p, (x,)) @ directions.T  # (N, M)

        chunk = max(1, CHUNK_BYTES // (8 * max(n_params, 1) + 8 * n * 1024))
        return flat(jacrev(f_batch, chunk_size=chunk)(params), n)

    def f_one(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (xi[None],))[0] @ directions.T  # (M,)

    per_sample = vmap(jacrev(f_one), in_dims=(None, 0))
    chunk = max(1, CHUNK_BYTES // (8 * m * max(n_params, 1)))
    return torch.cat([flat(per_sample(params, xc), xc.shape[0]) for xc in x.split(chunk)])


def jacobian_blocks(model: nn.Module, x: torch.Tensor, directions: torch.Tensor,
                    pairs: str = "all") -> torch.Tensor:
    """Kernel blocks K_ab = J_a J_bᵀ (M, M, N, N); ``pairs="diag"`` fills only a == b."""
    jac = jacobian(model, x, directions)  # (N, M, P)
    m, n = directions.shape[0], x.shape[0]
    blocks = torch.zeros(m, m, n, n, dtype=jac.dtype, device=jac.device)
    for a in range(m):
        for b in range(m):
            if pairs == "all" or a == b:
                blocks[a, b] = jac[:, a] @ jac[:, b].T
    return blocks


def kernel_vector_product(model: nn.Module, x: torch.Tensor, directions: torch.Tensor,
                          v: torch.Tensor) -> torch.Tensor:
    """K v without forming K: v (M, N) → (M, N), (K v)_a = Σ_b K_ab v_b = J_a (Σ_b J_bᵀ v_b).

    One vector–Jacobian product (a backward pass of the batch) then one Jacobian–vector product
    (forward mode); exact for batch-coupled models too.
    """
    params = trainable(model)

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return (functional_call(model, p, (x,)) @ directions.T).T  # (M, N)

    _, pullback = vjp(f, params)
    (jt_v,) = pullback(v)
    return jvp(f, (params,), (jt_v,))[1]
