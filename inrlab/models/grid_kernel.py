"""A fused C++ kernel for the grid encodings' interpolation on CPU (``Grid``, models/encodings.py).

Forward: level by level (the levels shared out among the threads), for each sample the cell,
its 2^d corner rows (dense or hashed, the same integers as ``Grid.interpolation``) and
multilinear weights (the same float operations, bit for bit), and Σ_c w_c · table[row_c]; then
one pass writes the encoding's output rows (N, [d] + L·F) (coordinates if ``include_input``,
then each level's F features). Nothing of size N·L·2^d is materialised; corners are computed a
few samples ahead and their table rows prefetched. Backward (table gradient): the same traversal
adding g · w_c into the gradient's row; each level owns its own rows of the table, so the levels
run in parallel without races, and each row sums its contributions in sample order: the
additions of ``index_add`` over the flattened (N, L, 2^d) corners (the reference path's
backward), so the table gradient is exactly the reference's. The forward sums the 2^d corners
in corner order (the reference's batched product may order or fuse them differently: equal up
to float rounding). The gradient's memory is reused between steps (``_gradient_buffer``).

Built on first use with ``torch.utils.cpp_extension.load_inline`` (g++ and ninja; cached in
torch's extension directory, so later processes only load it). If the build fails (no
compiler), ``available()`` is False after one warning and the grid keeps its other paths.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ..errors import InrlabError

_SOURCE = r"""
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/set.h>
#include <torch/library.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr uint64_t kPrimes[3] = {1ull, 2654435761ull, 805459861ull};

struct Level {
  int64_t res, offset, rows, mask;  // cells per axis, first table row, rows, hash mask (0: dense)
};

// The 2^D corner rows (absolute) and weights of the sample at x (D coordinates) on one level:
// the operations of Grid.interpolation, in its order and precision. Per axis i the two vertex
// terms (v_i and v_i + 1 scaled by the dense stride^i, or times the hash prime π_i) and the two
// weights (1 − f_i, f_i); corner c (bit i: offset along axis i) combines them in axis order.
template <typename T, int D>
__attribute__((always_inline)) inline void corners(const T* x, const Level& lv, int64_t* row, T* w) {
  uint64_t term[D][2];
  T a[D][2];
  const T r = static_cast<T>(lv.res);
  const bool dense = lv.mask == 0;
  uint64_t scale = 1;  // dense: (R + 1)^i
  for (int i = 0; i < D; ++i) {
    T c = x[i];
    c = c < T(-1) ? T(-1) : (c > T(1) ? T(1) : c);
    const T pos = ((c + T(1)) * T(0.5)) * r;  // (x + 1) / 2 · R: halving is exact either way
    int64_t b = static_cast<int64_t>(pos);  // floor: pos ≥ 0
    if (b > lv.res - 1) b = lv.res - 1;
    if (!(b >= 0)) b = 0;  // NaN coordinates: a valid row, NaN weights (never out of bounds)
    const T f = pos - static_cast<T>(b);
    a[i][0] = T(1) - f;
    a[i][1] = f;
    const uint64_t k = dense ? scale : kPrimes[i];
    term[i][0] = static_cast<uint64_t>(b) * k;
    term[i][1] = static_cast<uint64_t>(b + 1) * k;
    scale *= static_cast<uint64_t>(lv.res + 1);
  }
  // weights: the products of Grid.interpolation, a_0 · a_1 · a_2 left to right
  if constexpr (D == 1) {
    w[0] = a[0][0];
    w[1] = a[0][1];
  } else {
    T w01[4];
    for (int c = 0; c < 4; ++c) w01[c] = a[0][c & 1] * a[1][c >> 1];
    if constexpr (D == 2) {
      for (int c = 0; c < 4; ++c) w[c] = w01[c];
    } else {
      for (int c = 0; c < 8; ++c) w[c] = w01[c & 3] * a[2][c >> 2];
    }
  }
  const uint64_t off = static_cast<uint64_t>(lv.offset);
  if (dense) {  // Σ_i v_i (R + 1)^i + offset
    for (int c = 0; c < (1 << D); ++c) {
      uint64_t k = 0;
      for (int i = 0; i < D; ++i) k += term[i][(c >> i) & 1];
      row[c] = static_cast<int64_t>(k + off);
    }
  } else {  // XOR_i v_i π_i mod 2^T + offset
    const uint64_t mask = static_cast<uint64_t>(lv.mask);
    for (int c = 0; c < (1 << D); ++c) {
      uint64_t h = 0;
      for (int i = 0; i < D; ++i) h ^= term[i][(c >> i) & 1];
      row[c] = static_cast<int64_t>((h & mask) + off);
    }
  }
}

std::vector<Level> levels(const at::Tensor& res, const at::Tensor& offsets, int64_t n_dense,
                          int64_t mask) {
  const int64_t* r = res.data_ptr<int64_t>();
  const int64_t* o = offsets.data_ptr<int64_t>();
  std::vector<Level> out;
  for (int64_t l = 0; l < res.numel(); ++l)
    out.push_back({r[l], o[l], o[l + 1] - o[l], l < n_dense ? 0 : mask});
  return out;
}

// Levels (largest first) handed out one at a time to the threads: a level's table rows stay in
// cache while all samples visit them (sample-major order, all levels per sample, was 4× slower)
// (one thread below 2^15 sample-levels: small calls are not worth waking the others)
template <typename Fn>
void over_levels(const std::vector<Level>& lv, int64_t n, const Fn& fn) {
  const int64_t nl = static_cast<int64_t>(lv.size());
  std::atomic<int64_t> next{0};
  const int64_t workers = n * nl < (1 << 15) ? 1 : std::min<int64_t>(at::get_num_threads(), nl);
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; ++worker)
      for (int64_t t = next++; t < nl; t = next++) fn(nl - 1 - t);
  });
}

// Calls fn(s, row, w) for every sample s of level lv in order, with its corners computed
// kLookahead samples ahead and their table rows prefetched (the rows are random accesses into a
// table larger than the caches: this keeps several cache misses in flight)
constexpr int kLookahead = 8;

template <typename T, int D, int RW, typename Fn>
inline void for_samples(const T* x, int64_t n, const Level& lv, int64_t F, const T* base,
                        const Fn& fn) {
  int64_t row[kLookahead][1 << D];
  T w[kLookahead][1 << D];
  auto ahead = [&](int64_t s) {
    const int k = static_cast<int>(s % kLookahead);
    corners<T, D>(x + s * D, lv, row[k], w[k]);
    for (int c = 0; c < (1 << D); ++c) __builtin_prefetch(base + row[k][c] * F, RW, 1);
  };
  for (int64_t s = 0; s < std::min<int64_t>(kLookahead, n); ++s) ahead(s);
  for (int64_t s = 0; s < n; ++s) {
    const int k = static_cast<int>(s % kLookahead);
    fn(s, row[k], w[k]);
    if (s + kLookahead < n) ahead(s + kLookahead);
  }
}

template <typename T, int D, int FT>
void forward_impl(const at::Tensor& x, const at::Tensor& table, const std::vector<Level>& lv,
                  int64_t f_rt, at::Tensor& out) {
  const int64_t n = x.size(0);
  const int64_t F = FT > 0 ? FT : f_rt;
  const T* xp = x.data_ptr<T>();
  const T* tp = table.data_ptr<T>();
  T* op = out.data_ptr<T>();
  over_levels(lv, n, [&](int64_t l) {
    T* ol = op + l * n * F;
    for_samples<T, D, 0>(xp, n, lv[l], F, tp, [&](int64_t s, const int64_t* row, const T* w) {
      T* o = ol + s * F;
      if constexpr (FT > 0) {  // sums in registers
        T acc[FT > 0 ? FT : 1] = {};
        for (int c = 0; c < (1 << D); ++c) {
          const T* t = tp + row[c] * FT;
          for (int f = 0; f < FT; ++f) acc[f] += w[c] * t[f];
        }
        for (int f = 0; f < FT; ++f) o[f] = acc[f];
      } else {
        for (int64_t f = 0; f < F; ++f) o[f] = T(0);
        for (int c = 0; c < (1 << D); ++c) {
          const T* t = tp + row[c] * F;
          for (int64_t f = 0; f < F; ++f) o[f] += w[c] * t[f];
        }
      }
    });
  });
}

template <typename T, int D, int FT>
void backward_impl(const at::Tensor& x, const at::Tensor& g, const std::vector<Level>& lv,
                   int64_t f_rt, at::Tensor& grad) {
  // g: (L, N, F) contiguous; grad: (T, F), every row written here
  const int64_t n = x.size(0);
  const int64_t F = FT > 0 ? FT : f_rt;
  const T* xp = x.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  T* dp = grad.data_ptr<T>();
  over_levels(lv, n, [&](int64_t l) {
    const Level& lvl = lv[l];
    std::memset(dp + lvl.offset * F, 0, sizeof(T) * lvl.rows * F);
    const T* gl = gp + l * n * F;
    for_samples<T, D, 1>(xp, n, lvl, F, dp, [&](int64_t s, const int64_t* row, const T* w) {
      const T* gs = gl + s * F;
      for (int c = 0; c < (1 << D); ++c) {
        T* d = dp + row[c] * F;
        for (int64_t f = 0; f < F; ++f) d[f] += gs[f] * w[c];
      }
    });
  });
}

template <typename T, int D>
void dispatch_f(bool fwd, const at::Tensor& x, const at::Tensor& a, const std::vector<Level>& lv,
                int64_t F, at::Tensor& out) {
  if (F == 2) {
    fwd ? forward_impl<T, D, 2>(x, a, lv, F, out) : backward_impl<T, D, 2>(x, a, lv, F, out);
  } else if (F == 1) {
    fwd ? forward_impl<T, D, 1>(x, a, lv, F, out) : backward_impl<T, D, 1>(x, a, lv, F, out);
  } else {
    fwd ? forward_impl<T, D, 0>(x, a, lv, F, out) : backward_impl<T, D, 0>(x, a, lv, F, out);
  }
}

template <typename T>
void dispatch(bool fwd, const at::Tensor& x, const at::Tensor& a, const std::vector<Level>& lv,
              int64_t F, at::Tensor& out) {
  switch (x.size(1)) {
    case 1: dispatch_f<T, 1>(fwd, x, a, lv, F, out); break;
    case 2: dispatch_f<T, 2>(fwd, x, a, lv, F, out); break;
    case 3: dispatch_f<T, 3>(fwd, x, a, lv, F, out); break;
    default: TORCH_CHECK(false, "grid kernel: 1-, 2- or 3-D coordinates");
  }
}

void check(const at::Tensor& x, const at::Tensor& a) {
  TORCH_CHECK(x.is_cpu() && a.is_cpu() && x.is_contiguous() && a.is_contiguous(),
              "grid kernel: contiguous CPU tensors");
  TORCH_CHECK(x.scalar_type() == a.scalar_type(), "grid kernel: one dtype");
}

// the encoding's output (N, [D] + L·F): the coordinates (include_input) then each level's F
// features; computed level-major into (L, N, F), then one pass over the samples writes the rows
// (instead of a transposing copy and a concatenation)
template <typename T>
void assemble(const at::Tensor& x, const at::Tensor& lnf, bool include_input, at::Tensor& out) {
  const int64_t n = lnf.size(1), nl = lnf.size(0), F = lnf.size(2), D = x.size(1);
  const int64_t width = out.size(1), lead = include_input ? D : 0;
  const T* xp = x.data_ptr<T>();
  const T* fp = lnf.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      T* o = op + s * width;
      for (int64_t i = 0; i < lead; ++i) o[i] = xp[s * D + i];
      for (int64_t l = 0; l < nl; ++l)
        for (int64_t f = 0; f < F; ++f) o[lead + l * F + f] = fp[(l * n + s) * F + f];
    }
  });
}

at::Tensor grid_forward(const at::Tensor& x, const at::Tensor& table, const at::Tensor& res,
                        const at::Tensor& offsets, int64_t n_dense, int64_t mask,
                        bool include_input) {
  check(x, table);
  const auto lv = levels(res, offsets, n_dense, mask);
  const int64_t F = table.size(1), nl = static_cast<int64_t>(lv.size());
  at::Tensor lnf = at::empty({nl, x.size(0), F}, table.options());
  at::Tensor out = at::empty({x.size(0), (include_input ? x.size(1) : 0) + nl * F},
                             table.options());
  if (x.scalar_type() == at::kDouble) {
    dispatch<double>(true, x, table, lv, F, lnf);
    assemble<double>(x, lnf, include_input, out);
  } else {
    dispatch<float>(true, x, table, lv, F, lnf);
    assemble<float>(x, lnf, include_input, out);
  }
  return out;
}

// writes the table gradient into grad (T, F) (every row)
void grid_backward(const at::Tensor& x, const at::Tensor& g, const at::Tensor& res,
                   const at::Tensor& offsets, int64_t n_dense, int64_t mask, at::Tensor grad) {
  check(x, g);
  check(x, grad);
  const auto lv = levels(res, offsets, n_dense, mask);
  const int64_t F = g.size(2);
  const int64_t rows = offsets.data_ptr<int64_t>()[offsets.numel() - 1];
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == rows && grad.size(1) == F,
              "grid kernel: gradient shape");
  if (x.scalar_type() == at::kDouble) dispatch<double>(false, x, g, lv, F, grad);
  else dispatch<float>(false, x, g, lv, F, grad);
}

// how many tensors use the memory of t (1: t alone)
int64_t memory_users(const at::Tensor& t) { return t.storage().use_count(); }

// a new contiguous tensor of shape size on the memory of t (no view: no base, own autograd meta)
at::Tensor share_memory(const at::Tensor& t, at::IntArrayRef size) {
  at::Tensor out = at::empty({0}, t.options());
  out.set_(t.storage(), 0, size);
  return out;
}

}  // namespace

TORCH_LIBRARY(inrlab_grid, m) {
  m.def("forward(Tensor x, Tensor table, Tensor res, Tensor offsets, int n_dense, int mask, "
        "bool include_input) -> Tensor", &grid_forward);
  m.def("backward_lnf(Tensor x, Tensor g_lnf, Tensor res, Tensor offsets, int n_dense, int mask, "
        "Tensor(a!) grad) -> ()", &grid_backward);
  m.def("memory_users(Tensor t) -> int", &memory_users);
  m.def("share_memory(Tensor t, int[] size) -> Tensor", &share_memory);
}
"""

AUTO_DIMS = (3,)  # coordinate dimensions where backend "auto" uses the kernel (docs/benchmarks.md)

_state: dict[str, Any] = {"ops": None, "broken": False, "compile_seconds": None}


def _build() -> Any:
    """Compile (or load from torch's extension cache) the kernel; its ops namespace."""
    from torch.utils import cpp_extension

    cpp_extension.load_inline(
        name="inrlab_grid", cpp_sources=[_SOURCE], is_python_module=False,
        no_implicit_headers=True,
        # -ffp-contract=off: no fused multiply-adds, so the weights and the gradient's products
        # and sums are the reference's float operations exactly
        extra_cflags=["-O3", "-ffp-contract=off", "-fno-tree-slp-vectorize", "-fopenmp"],
        # at::parallel_for is inline OpenMP; libgomp.so.1 resolves to the runtime torch loaded
        extra_ldflags=["-fopenmp"])
    return torch.ops.inrlab_grid


def available(strict: bool = False) -> bool:
    """Whether the kernel can run here (built on the first call; a failed build warns once and
    stays failed for the process, or with ``strict`` raises ``InrlabError``)."""
    if _state["ops"] is not None:
        return True
    if _state["broken"] and not strict:
        return False
    t0 = time.perf_counter()
    try:
        _state["ops"] = _build()
    except Exception as e:  # no compiler, no ninja, a broken toolchain  # noqa: BLE001
        if strict:
            raise InrlabError(f"building the C++ grid kernel failed ({type(e).__name__}): "
                              f"use kernel backend 'eager' or install g++ and ninja") from None
        _state["broken"] = True
        warnings.warn(f"inrlab: C++ grid kernel unavailable ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); grid encodings use their "
                      f"torch paths", stacklevel=2)
        return False
    _state["compile_seconds"] = time.perf_counter() - t0
    return True


def _grid_args(grid: Any) -> tuple:
    """The level description the kernel takes from a ``Grid``: resolutions, row offsets, the
    number of dense levels and the hash mask (all on CPU)."""
    return grid.res.cpu(), grid.offsets.cpu(), grid._n_dense, grid._hash_mask


class FusedInterpolation(torch.autograd.Function):
    """The grid encoding's output (N, [d] + L·F) at coordinates ``x`` (N, d): the coordinates
    (``include_input``) and Σ_c w · table[row] per level, computed by the C++ kernel; gradient
    for ``table`` only (``x`` must not require one)."""

    @staticmethod
    def forward(table: torch.Tensor, x: torch.Tensor, args: tuple,  # type: ignore[override]
                include_input: bool, memory: dict | None) -> torch.Tensor:
        return _state["ops"].forward(x, table.detach(), *args, include_input)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        table, ctx.x, ctx.args, include_input, ctx.memory = inputs
        ctx.lead = ctx.x.shape[1] if include_input else 0
        ctx.shape, ctx.dtype = table.shape, table.dtype

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        n, f = g.shape[0], ctx.shape[1]
        # (L, N, F): each level reads its own block
        g_lnf = g[:, ctx.lead:].reshape(n, ctx.args[0].numel(), f).transpose(0, 1).contiguous()
        grad = _gradient_buffer(ctx.memory, ctx.shape, ctx.dtype)
        _state["ops"].backward_lnf(ctx.x, g_lnf, *ctx.args, grad)
        return grad, None, None, None, None


def _gradient_buffer(memory: dict | None, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized (T, F) tensor for the table gradient: the memory of the previous one when
    nothing uses it any more (``memory["grad"]``, a 1-D alias of it, is then the only tensor on
    it: the optimizer dropped ``table.grad``), else new memory, remembered for next time.

    A new table-sized tensor is fresh pages from the OS (glibc maps allocations above 32 MB
    anew): ≈ 10 000 page faults, each page zeroed by the kernel, 19 ms against 1.7 ms for
    zeroing warm memory (3-D hash table, 42 MB, this CPU). The returned tensor is new (not a
    view), so autograd stores it as ``.grad`` without a copy, and while it is alive (a kept or
    accumulated ``.grad``) its memory is not reused."""
    # (the aliases are made in C++: a Python storage object would hold on to the memory)
    ops = _state["ops"]
    if memory is None:
        return torch.empty(shape, dtype=dtype)
    mem = memory.get("grad")
    if (mem is not None and mem.dtype == dtype and mem.numel() == shape.numel()
            and ops.memory_users(mem) == 1):
        return ops.share_memory(mem, list(shape))
    grad = torch.empty(shape, dtype=dtype)
    memory["grad"] = ops.share_memory(grad, [grad.numel()])
    return grad


def interpolate(grid: Any, x: torch.Tensor) -> torch.Tensor:
    """``grid``'s output (N, out_dim) at ``x`` (N, d) through the kernel (``available()`` must
    be True; CPU, x not requiring grad, x and the table in one dtype). The table gradient's
    memory is reused from step to step through ``grid._kernel_memory``."""
    return FusedInterpolation.apply(grid.table, x.contiguous(), _grid_args(grid),
                                    grid.include_input, getattr(grid, "_kernel_memory", None))
