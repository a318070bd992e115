"""Coordinate encodings. Each is an ``nn.Module`` that knows ``in_dim`` and ``out_dim``.

All take coordinates ``x`` of shape (N, d) in [-1, 1] and return features (N, out_dim).
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..config import EncodingConfig
from ..errors import InrlabError
from ..registry import ENCODINGS
from . import grid_kernel, kernels


class Identity(nn.Module):
    """Raw coordinates."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Positional(nn.Module):
    """NeRF positional encoding [x, sin(2^i π x), cos(2^i π x)]_{i<L}: d·(2L + 1) dims."""

    def __init__(self, in_dim: int, n_frequencies: int, include_input: bool = True):
        super().__init__()
        self.in_dim, self.include_input = in_dim, include_input
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_frequencies))
        self.out_dim = in_dim * 2 * n_frequencies + (in_dim if include_input else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, :, None] * self.freqs).flatten(1)  # (N, d·L)
        parts = [x] if self.include_input else []
        return torch.cat(parts + [torch.sin(z), torch.cos(z)], dim=1)


class Fourier(nn.Module):
    """Gaussian Fourier features [sin(2π B x), cos(2π B x)], B ~ N(0, σ²) of shape (m, d)."""

    def __init__(self, in_dim: int, sigma: float, n_features: int):
        super().__init__()
        self.in_dim, self.out_dim, self.sigma = in_dim, 2 * n_features, sigma
        self.register_buffer("B", torch.randn(n_features, in_dim) * sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 2 * math.pi * x @ self.B.T
        return torch.cat([torch.sin(z), torch.cos(z)], dim=1)


_PRIMES = (1, 2654435761, 805459861)


class Grid(nn.Module):
    """Multiresolution grid of learnable vertex features, dense (multigrid) or hashed (instant-NGP).

    Level l has resolution R_l = ⌊R_min · b^l⌋ cells per axis, b = (R_max / R_min)^(1/(L-1)), and
    (R_l + 1)^d vertices. A dense level stores every vertex; a hashed level whose vertices do not
    fit into 2^T entries indexes them by the spatial hash XOR_i(v_i · π_i) mod 2^T (Müller et al.
    2022). A sample is bi/trilinearly interpolated at each level; the levels' features are
    concatenated (optionally after the raw coordinates). All tables live in one parameter
    ``table`` of shape (Σ_l size_l, F), level l at rows ``offsets[l]:offsets[l+1]``.
    """

    def __init__(self, in_dim: int, levels: int, base_resolution: int, finest_resolution: int,
                 features_per_level: int, hashed: bool, log2_table_size: int = 19,
                 include_input: bool = True, init_scale: float = 1e-4,
                 dense_when_fits: bool = True):
        super().__init__()
        if in_dim not in (1, 2, 3):
            raise InrlabError(f"grid encodings support 1-, 2- and 3-D coordinates, got {in_dim}-D")
        self.in_dim, self.levels, self.hashed = in_dim, levels, hashed
        self.features, self.include_input = features_per_level, include_input
        growth = (finest_resolution / base_resolution) ** (1 / max(levels - 1, 1))
        res = [int(math.floor(base_resolution * growth**l + 1e-9)) for l in range(levels)]
        res[-1] = finest_resolution if levels > 1 else base_resolution
        cap = 2**log2_table_size
        if not hashed:
            sizes = [(r + 1) ** in_dim for r in res]
        elif dense_when_fits:  # instant-NGP: a level that fits in the table is stored densely
            sizes = [min((r + 1) ** in_dim, cap) for r in res]
        else:
            sizes = [cap] * levels
        self.resolutions = res
        self.register_buffer("res", torch.tensor(res, dtype=torch.long), persistent=False)
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        dense = [not hashed or (dense_when_fits and (r + 1) ** in_dim <= cap) for r in res]
        self.register_buffer("dense", torch.tensor(dense), persistent=False)
        self.register_buffer("offsets", torch.tensor([0] + sizes).cumsum(0), persistent=False)
        self.table = nn.Parameter(torch.empty(sum(sizes), features_per_level))
        nn.init.uniform_(self.table, -init_scale, init_scale)
        self.register_buffer("_pair", torch.arange(2), persistent=False)  # vertex offsets 0, 1
        # levels stored densely: a prefix, since resolutions (and so vertex counts) grow
        self._n_dense = sum(dense)
        self._hash_mask = cap - 1  # hashed levels hold exactly 2^T entries
        if not all(dense[: self._n_dense]):
            raise AssertionError("dense grid levels must precede hashed ones")
        self.out_dim = levels * features_per_level + (in_dim if include_input else 0)
        self._cache: tuple | None = None
        self._kernel_memory: dict = {}  # the C++ kernel's reusable gradient memory (grid_kernel)

    def __getstate__(self) -> dict:
        # the cache holds a weak reference (not picklable); neither is worth copying
        return {**self.__dict__, "_cache": None, "_kernel_memory": {}}

    def interpolation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows into ``table`` and weights of the 2^d vertices around each sample, per level.

        Returns ``index`` (N, L, 2^d) long, absolute rows of ``table``, and ``weight``
        (N, L, 2^d). The features of level l are Σ_c weight[:, l, c] · table[index[:, l, c]];
        corner c has offset bit i = (c >> i) & 1 along axis i.

        Computed per axis (the two vertex coordinates and their two weights, (N, L, 2) each) and
        combined by broadcasting over a (2,)·d corner block whose flattened order is c: a few
        passes over (N, L, 2^d) instead of many over (N, L, 2^d, d). The indices are the same
        integers as the per-corner formula; the weights the same products (1 − f or f per axis,
        multiplied in axis order).
        """
        n, d, nl = x.shape[0], self.in_dim, self.levels
        u = (x.clamp(-1, 1) + 1) / 2  # (N, d) in [0, 1]
        pos = u[:, None, :] * self.res[None, :, None].to(x.dtype)  # (N, L, d)
        base = torch.minimum(pos.floor().long(), (self.res - 1)[None, :, None])
        frac = pos - base
        vert2 = base[..., None] + self._pair  # (N, L, d, 2): vertex coordinates v, v + 1
        w2 = torch.stack([1 - frac, frac], dim=-1)  # (N, L, d, 2): their weights
        block = (n, nl) + (2,) * d  # corner block; axis i varies along dim 2 + (d − 1 − i)

        def axis(t: torch.Tensor, i: int, levels: slice = slice(None)) -> torch.Tensor:
            """Axis i of ``t`` (N, L, d, 2) as (N, L', 1, …, 2, …, 1), broadcastable to block."""
            t = t[:, levels, i]
            return t.view(t.shape[:2] + tuple(2 if j == d - 1 - i else 1 for j in range(d)))

        w = axis(w2, 0)
        for i in range(1, d):  # products in axis order
            w = w * axis(w2, i)
        # rows are written into one (N, L, 2, …, 2) tensor by out= ops (no concatenation pass);
        # under torch.func transforms and compile traces, which refuse out=, concatenated
        functional = (torch._C._functorch.is_functorch_wrapped_tensor(x)
                      or torch.compiler.is_compiling())
        idx = None if functional else torch.empty(block, dtype=torch.long, device=x.device)
        parts: list[torch.Tensor] = []

        def put(levels: slice, op: Any, a: torch.Tensor, b: torch.Tensor | int) -> torch.Tensor:
            """Rows of ``levels`` = op(a, b), broadcast to the block; returns them (a view)."""
            if idx is None:
                parts.append(op(a, b).expand((n, levels.stop - levels.start) + block[2:]))
                return parts[-1]
            return op(a, b, out=idx[:, levels])

        k = self._n_dense  # the dense levels come first (resolutions grow with the level)
        if k:  # row Σ_i v_i · stride^i (Horner) + the level's offset
            dense = slice(0, k)
            stride = (self.res[:k] + 1).view((1, k) + (1,) * d)
            v0 = axis(vert2, 0, dense) + self.offsets[:k].view((1, k) + (1,) * d)
            acc: torch.Tensor | int = 0
            if d > 1:
                acc = axis(vert2, d - 1, dense)
                for i in reversed(range(1, d - 1)):
                    acc = acc * stride + axis(vert2, i, dense)
                acc = acc * stride
            put(dense, torch.add, v0, acc)
        if k < nl:  # hashed levels: XOR_i(v_i · π_i) mod 2^T (a power of two), + the level offset
            hashed = slice(k, nl)
            h = axis(vert2, 0, hashed) * _PRIMES[0]
            for i in range(1, d - 1):
                h = h ^ (axis(vert2, i, hashed) * _PRIMES[i])
            last = axis(vert2, d - 1, hashed) * _PRIMES[d - 1] if d > 1 else 0
            rows = put(hashed, torch.bitwise_xor, h, last)
            # h ≥ 0 (non-negative vertex coordinates times positive primes, XOR), so h mod 2^T
            # = h & (2^T − 1)
            off = self.offsets[k:-1].view((1, nl - k) + (1,) * d)
            if idx is None:
                parts[-1] = (rows & self._hash_mask) + off
            else:
                rows.bitwise_and_(self._hash_mask).add_(off)
        if idx is None:
            idx = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return idx.reshape(n, nl, 2**d), w.reshape(n, nl, 2**d)

    def _cached_interpolation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``interpolation(x)``, reused while the same unchanged tensor ``x`` comes back (the
        full-batch case: the vertex indices and weights depend on the coordinates alone), and a
        dict that memoizes what is derived from them (the sparse matrices of ``_sparse``)."""
        # keyed on the tensor's identity (a weak reference: a freed tensor's memory can be reused
        # by new coordinates at the same address) and its in-place version counter
        if self._cache is None or self._cache[0]() is not x or self._cache[1] != x._version:
            self._cache = (weakref.ref(x), x._version, *self.interpolation(x), {})
        return self._cache[2], self._cache[3], self._cache[4]

    def _sparse(self, idx: torch.Tensor, w: torch.Tensor,
                memo: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The interpolation as sparse CSR matrices (int32 indices) in the table's dtype:
        ``gather`` (N·L, T), out = gather @ table, and its transpose ``scatter`` (T, N·L), the
        table gradient being scatter @ grad_out.

        ``gather`` row r = n·L + l holds the 2^d corners of sample n at level l in order;
        ``scatter`` comes from a stable sort of the corner rows, so each table row lists its
        contributions in sample order (the order index_add accumulates them). Corners that hash
        to one entry stay as repeated (row, column) pairs, which the products sum.
        """
        key = self.table.dtype
        if key not in memo:
            n, l, c = idx.shape
            t, dev = self.table.shape[0], idx.device
            cols, vals = idx.reshape(-1).int(), w.reshape(-1).to(self.table.dtype)
            crow = torch.arange(0, n * l * c + 1, c, device=dev, dtype=torch.int32)
            order = torch.sort(cols, stable=True).indices
            counts = torch.bincount(cols, minlength=t)
            srow = torch.zeros(t + 1, device=dev, dtype=torch.int32)
            srow[1:] = counts.cumsum(0)
            with warnings.catch_warnings():  # torch flags sparse CSR as "beta" on first use
                warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
                memo[key] = (torch.sparse_csr_tensor(crow, cols, vals, (n * l, t)),
                             torch.sparse_csr_tensor(srow, (order // c).int(), vals[order],
                                                     (t, n * l)))
        return memo[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        reference = kernels.get_backend() == "eager" or x.device.type != "cpu"
        formula = (torch.compiler.is_compiling() or x.requires_grad or wrapped(x)
                   or wrapped(self.table))
        if not formula and self._use_kernel(x):
            # CPU: the fused C++ kernel (interpolation, gather and table gradient in one pass
            # each, nothing of size N·L·2^d stored, output rows written once), training and
            # inference alike
            return grid_kernel.interpolate(self, x)
        if formula:
            # coordinate gradients, torch.func transforms (vmap, jacrev) and torch.compile traces
            # (inductor fuses the gather): autograd through the interpolation
            out = self._gather(*self.interpolation(x))
        elif not (torch.is_grad_enabled() and self.table.requires_grad):
            # inference (e.g. evaluation between training steps): fresh interpolation, no graph;
            # the training cache stays as it is
            idx, w = self.interpolation(x)
            out = self._gather(idx, w) if reference else gather_rows(self.table, idx, w)
        else:
            idx, w, memo = self._cached_interpolation(x)
            # CPU: coordinates seen once (mini-batches) use GatherInterpolation; coordinates that
            # come back (full batch) the sparse matrix products, built at their second use. CUDA
            # (gather + atomic adds), more than 2^31 corner entries and the reference "eager"
            # kernel backend: autograd through the gather
            if reference or idx.numel() >= 2**31 - 1:
                out = self._gather(idx, w)
            elif memo.setdefault("uses", 0) == 0:
                memo["uses"] = 1
                out = GatherInterpolation.apply(self.table, idx, w)
            else:
                gather, scatter = self._sparse(idx, w, memo)
                out = SparseInterpolation.apply(self.table, gather, scatter)
        out = out.reshape(n, -1)
        return torch.cat([x, out], dim=1) if self.include_input else out

    def _use_kernel(self, x: torch.Tensor) -> bool:
        """Whether the C++ kernel (``grid_kernel``) computes the features of plain coordinates
        ``x``: on CPU, coordinates and table in one float dtype, with kernel backend ``auto`` for
        the dimensions in ``grid_kernel.AUTO_DIMS`` and ``compiled`` for all (``eager``: never).
        Builds the kernel at the first call that wants it (a failed build warns once and this
        returns False from then on; under ``compiled`` it raises)."""
        backend = kernels.get_backend()
        return (backend != "eager" and x.device.type == "cpu" and self.table.device.type == "cpu"
                and x.dtype == self.table.dtype and x.dtype in (torch.float32, torch.float64)
                and (backend == "compiled" or self.in_dim in grid_kernel.AUTO_DIMS)
                and grid_kernel.available(strict=backend == "compiled"))

    def _gather(self, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Interpolated features (N, L, F) by gathering the corner rows and weighting them (the
        reference: plain autograd ops)."""
        n, l, c = idx.shape
        # index_select's backward is a plain index_add (table[idx] would sort for index_put)
        corner = self.table.index_select(0, idx.reshape(-1)).view(n, l, c, self.features)
        return torch.einsum("nlcf,nlc->nlf", corner, w.to(self.table.dtype))


def _as_elements(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows of ``t`` (R, F) as a 1-D tensor of R·k elements sharing its memory, and k: F/2
    complex numbers per row when F is even (a pair of floats added or copied as one element, the
    same float operations), else F reals. Index ops on 1-D tensors of 8-byte elements run
    several times faster on CPU than row by row on (R, 2) floats."""
    f = t.shape[1]
    if f % 2 == 0 and t.dtype in (torch.float32, torch.float64) and t.is_contiguous():
        return torch.view_as_complex(t.view(-1, 2)), f // 2
    return t.reshape(-1), f


def _element_index(idx: torch.Tensor, k: int) -> torch.Tensor:
    """Element positions of rows ``idx`` (M,) in an ``_as_elements`` view with k per row: (M·k,)."""
    if k == 1:
        return idx
    return (idx[:, None] * k + torch.arange(k, device=idx.device)).reshape(-1)


def gather_rows(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_c w[n, l, c] · table[idx[n, l, c]]: (N, L, F) from ``table`` (T, F), ``idx`` and ``w``
    (N, L, C), no autograd graph. The same products and sums as ``Grid._gather``'s einsum
    (a batched (1 × C)·(C × F) matrix product per sample and level)."""
    n, l, c = idx.shape
    f = table.shape[1]
    elems, k = _as_elements(table.detach())
    corner = elems.index_select(0, _element_index(idx.reshape(-1), k))
    if corner.is_complex():
        corner = torch.view_as_real(corner)
    return torch.bmm(w.to(table.dtype).view(n * l, 1, c), corner.view(n * l, c, f)).view(n, l, f)


def add_rows(rows: int, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """(rows, F) zeros with ``src[m]`` (M, F) added to row ``idx[m]`` (M,), in the order of m:
    ``torch.zeros(rows, F).index_add_(0, idx, src)``, the same sums, on the 1-D element view
    (``_as_elements``)."""
    f = src.shape[1]
    out = torch.zeros(rows, f, dtype=src.dtype, device=src.device)
    elems, k = _as_elements(out)
    s, _ = _as_elements(src.contiguous())
    elems.index_add_(0, _element_index(idx, k), s)
    return out


class GatherInterpolation(torch.autograd.Function):
    """out = Σ_c w · table[idx] (N, L, F), gradient for ``table`` only (coordinates seen once).

    Forward ``gather_rows``; backward ``add_rows`` of g ⊗ w, the products and the accumulation
    order of the reference (index_select's backward, an index_add in sample order), but on the
    1-D element view: 5× faster than index_add over (T, 2) rows on this CPU. The indices and
    weights are constants (the coordinates do not require gradients).
    """

    @staticmethod
    def forward(table: torch.Tensor, idx: torch.Tensor,  # type: ignore[override]
                w: torch.Tensor) -> torch.Tensor:
        return gather_rows(table, idx, w)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        table, ctx.idx, ctx.w = inputs
        ctx.rows = table.shape[0]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        src = g[:, :, None, :] * ctx.w.to(g.dtype)[..., None]  # (N, L, C, F)
        return add_rows(ctx.rows, ctx.idx.reshape(-1), src.reshape(-1, g.shape[-1])), None, None


class SparseInterpolation(torch.autograd.Function):
    """out = gather @ table (N·L, F); d table = scatter @ d out, scatter = gatherᵀ (CSR).

    With fixed coordinates the interpolation is a constant sparse matrix with 2^d entries per
    row; its transpose, built once in CSR (rows sorted by table entry), turns the table gradient
    into a sparse × dense product: each table row sums its contributions in one place (no
    scatter_add over N·L·2^d rows, no atomics, deterministic).
    """

    @staticmethod
    def forward(table: torch.Tensor, gather: torch.Tensor,  # type: ignore[override]
                scatter: torch.Tensor) -> torch.Tensor:
        return _spmm(gather, table)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.scatter = inputs[2]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        return _spmm(ctx.scatter, g), None, None


def _spmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for sparse CSR ``a`` (M, K) and dense ``b`` (K, F) on CPU: (M, F), the same
    product written straight into a new tensor (addmm with β = 0, which never reads it): ``a @ b``
    would also zero-fill and copy an (M, F) result, two extra passes over the table gradient."""
    out = torch.empty(a.shape[0], b.shape[1], dtype=b.dtype, device=b.device)
    return torch.addmm(out, a, b, beta=0, out=out)


# --------------------------------------------------------------------------- configs, one per kind


@ENCODINGS.register()
@dataclass
class IdentityEncoding(EncodingConfig):
    """Raw coordinates."""

    kind: str = "identity"

    def setup(self, in_dim: int) -> nn.Module:
        return Identity(in_dim)


@ENCODINGS.register()
@dataclass
class PositionalEncoding(EncodingConfig):
    """NeRF positional encoding (:class:`Positional`)."""

    kind: str = "positional"
    include_input: bool = True  # concatenate the raw coordinates
    n_frequencies: int = 6  # frequencies 2^i·π, i < n_frequencies
    positive: ClassVar[tuple[str, ...]] = ("n_frequencies",)

    def setup(self, in_dim: int) -> nn.Module:
        return Positional(in_dim, self.n_frequencies, self.include_input)


@ENCODINGS.register()
@dataclass
class FourierEncoding(EncodingConfig):
    """Gaussian Fourier features (:class:`Fourier`)."""

    kind: str = "fourier"
    sigma: float = 10.0  # std of the Gaussian frequency matrix B
    n_features: int = 128  # rows of B (output has 2·n_features dims)
    positive: ClassVar[tuple[str, ...]] = ("sigma", "n_features")

    def setup(self, in_dim: int) -> nn.Module:
        return Fourier(in_dim, self.sigma, self.n_features)


@ENCODINGS.register()
@dataclass
class MultigridEncoding(EncodingConfig):
    """Dense multiresolution grid of learnable vertex features (:class:`Grid`)."""

    kind: str = "multigrid"
    include_input: bool = True  # concatenate the raw coordinates
    levels: int = 16  # grid levels, resolutions growing geometrically from base to finest
    base_resolution: int = 16  # coarsest grid cells per axis
    finest_resolution: int = 512  # finest grid cells per axis
    features_per_level: int = 2  # k learnable scalars per vertex
    init_scale: float = 1e-4  # table values ~ U(-init_scale, init_scale)
    positive: ClassVar[tuple[str, ...]] = ("levels", "base_resolution", "finest_resolution",
                                           "features_per_level")

    def validate(self) -> None:
        super().validate()
        if self.finest_resolution < self.base_resolution:
            raise InrlabError(f"model.encoding.finest_resolution={self.finest_resolution} is below "
                              f"base_resolution={self.base_resolution}: make finest ≥ base")
        if not math.isfinite(self.init_scale) or self.init_scale < 0:
            raise InrlabError(f"model.encoding.init_scale={self.init_scale} must be a finite "
                              f"number ≥ 0")

    def setup(self, in_dim: int) -> nn.Module:
        return Grid(in_dim, self.levels, self.base_resolution, self.finest_resolution,
                    self.features_per_level, hashed=False, include_input=self.include_input,
                    init_scale=self.init_scale)


@ENCODINGS.register()
@dataclass
class HashEncoding(MultigridEncoding):
    """instant-NGP hash grid: levels that outgrow the table are hashed (:class:`Grid`)."""

    kind: str = "hash"
    log2_table_size: int = 19  # entries per level = 2^log2_table_size (4 … 26)

    def validate(self) -> None:
        super().validate()
        if not 4 <= self.log2_table_size <= 26:
            raise InrlabError("model.encoding.log2_table_size must lie in 4..26")

    def setup(self, in_dim: int) -> nn.Module:
        return Grid(in_dim, self.levels, self.base_resolution, self.finest_resolution,
                    self.features_per_level, hashed=True, log2_table_size=self.log2_table_size,
                    include_input=self.include_input, init_scale=self.init_scale)
