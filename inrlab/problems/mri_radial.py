"""``mri:NAME`` with ``signal.mri.trajectory radial``: k-space sampled along radial spokes,
the operator a non-uniform FFT (torchkbnufft's Kaiser–Bessel ``KbNufft`` / ``KbNufftAdjoint``).

Trajectory: ``signal.mri.spokes`` S spokes through DC at golden-angle increments
(θ_s = s · 111.246° mod 180°, s = 0 … S−1), each with N readout samples at
k = (i − N//2)·2π/N rad/pixel, i = 0 … N−1 (the Cartesian grid's frequencies along the spoke).
Measurement (s, i) of ``measurement_shape`` (S, N) is one sample as two channels (real,
imaginary); the rows are the spokes sorted by angle, so IGA's blocks hold neighbouring samples.

Operator: A x = NUFFT(x)/N (unnormalised NUFFT, image origin at pixel N//2, as torchkbnufft), the
scale of the orthonormal FFT, so the Cartesian noise and PSNR scales carry over; interpolation by
a precomputed sparse matrix (``calc_tensor_spmatrix``: exact Kaiser–Bessel weights, no table).

Simulation without the inverse crime, as for Cartesian: the NUFFT of the source on the 2× finer
grid (2N points at spacing h/2) at the same physical frequencies (k/2 on that grid), × 1/4 for the
4× denser sum, with the phase of the fine grid's origin moved onto the N grid's (a half-pixel
shift for odd N); then optional complex noise. The truth is the Cartesian one: |IFFT| of the
fully sampled N×N k-space of the same fine image.

Baselines: the density-compensated adjoint (Pipe–Menon weights from
``calc_density_compensation_function``, the image then scaled by the least-squares factor that
best fits the measured data, since the weights carry no absolute scale) and TV compressed sensing
(:func:`~.mri.fista_tv` through the NUFFT, step 1/(1.05·‖A‖²) with ‖A‖² by power iteration).
``reference()`` is the density-compensated adjoint's real part.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import numpy as np
import torch

from ..errors import InrlabError
from .base import Batch
from .mri import MRI, fista_tv

GOLDEN_ANGLE = math.pi * (math.sqrt(5) - 1) / 2  # 180°/φ = 111.246°, in radians


def _tkbn() -> Any:
    """torchkbnufft, imported with TorchScript off: its scripted ``jit.fork`` interpolation leaves
    inter-op threads that abort the interpreter at exit with torch 2.13 ("terminate called without
    an active exception", about one run in three); as plain Python it does not."""
    if "torchkbnufft" in sys.modules:
        return sys.modules["torchkbnufft"]
    was = torch.jit._state._enabled.enabled
    torch.jit._state.disable()
    try:
        import torchkbnufft
    except ImportError:
        raise InrlabError("radial MRI needs torchkbnufft: pip install 'torchkbnufft>=1.4'") from None
    finally:
        if was:
            torch.jit._state.enable()
    return torchkbnufft


def radial_trajectory(n: int, spokes: int) -> np.ndarray:
    """(2, S·N) float64 k-space coordinates (rad/pixel; rows ky, kx) of ``spokes`` golden-angle
    spokes sorted by angle, N samples each (spoke-major)."""
    theta = np.sort((np.arange(spokes) * GOLDEN_ANGLE) % math.pi)
    k = (np.arange(n) - n // 2) * 2 * math.pi / n
    return np.stack([np.outer(np.sin(theta), k).ravel(), np.outer(np.cos(theta), k).ravel()])


class Nufft:
    """A x = NUFFT(x)/N and its adjoint for N×N images on one trajectory, in any dtype/device."""

    def __init__(self, n: int, ktraj: np.ndarray):
        """``ktraj``: (2, M) rad/pixel."""
        self.n, self.ktraj = n, ktraj
        self._ops: dict[tuple[torch.dtype, torch.device], tuple[Any, ...]] = {}

    def _op(self, dtype: torch.dtype, device: torch.device) -> tuple[Any, ...]:
        key = (dtype, device)
        if key not in self._ops:
            tkbn = _tkbn()
            k = torch.tensor(self.ktraj, dtype=dtype)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sparse invariant checks")
                mats = tuple(m.to(device) for m in tkbn.calc_tensor_spmatrix(k, im_size=(self.n,) * 2))
            size = (self.n, self.n)
            self._ops[key] = (tkbn.KbNufft(size, dtype=dtype).to(device),
                              tkbn.KbNufftAdjoint(size, dtype=dtype).to(device), k.to(device), mats)
        return self._ops[key]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(F, N, N) real or complex → (F, M) complex samples."""
        real = images.real.dtype if images.is_complex() else images.dtype
        fwd, _, k, mats = self._op(real, images.device)
        x = images.to(torch.complex128 if real == torch.float64 else torch.complex64)
        return fwd(x[:, None], k, interp_mats=mats)[:, 0] / self.n

    def adjoint(self, samples: torch.Tensor) -> torch.Tensor:
        """(F, M) complex → (F, N, N) complex: Aᴴ."""
        _, adj, k, mats = self._op(samples.real.dtype, samples.device)
        return adj(samples[:, None], k, interp_mats=mats)[:, 0] / self.n

    def forward_np(self, image: np.ndarray) -> np.ndarray:
        """(N, N) → (M,) complex128 in float64."""
        return self.forward(torch.from_numpy(np.asarray(image, np.complex128))[None]).numpy()[0]

    def adjoint_np(self, samples: np.ndarray) -> np.ndarray:
        """(M,) complex → (N, N) complex128 in float64."""
        return self.adjoint(torch.from_numpy(samples.astype(np.complex128))[None]).numpy()[0]


def simulate_radial(fine: np.ndarray, ktraj: np.ndarray) -> np.ndarray:
    """(M,) complex128 samples of the fine (2N, 2N) image at ``ktraj`` (2, M) rad/pixel of the
    N grid, on the scale and origin of :class:`Nufft` (see the module doc)."""
    n = fine.shape[0] // 2
    phase = np.exp(-0.5j * (n - 2 * (n // 2)) * ktraj.sum(0))
    # Nufft(2N) divides by 2N; the fine sum is 4× denser than the N grid's: × 2N / (4N)
    return Nufft(2 * n, ktraj / 2).forward_np(fine) * phase / 2


class RadialMRI(MRI):
    """Radial MRI of an N×N real image through the NUFFT (see the module doc).

    Attributes (besides :class:`MRI`'s coords and truth):
        ktraj: (2, S·N) float64 trajectory (rad/pixel), spokes sorted by angle.
        kspace: (S·N,) complex128 measured samples.
        y: (S·N, 2) float32 (real, imaginary) of ``kspace``; ``train_idx`` all of them.
        dcf: (S·N,) float64 density-compensation weights.
        baselines: {"dc_adjoint": (N, N), "tv": (N, N)} magnitude images.
    """

    def _sample(self, fine: np.ndarray, full: np.ndarray, peak: float, info: dict[str, Any]) -> None:
        c, n = self.config.mri, self.n
        self.ktraj = radial_trajectory(n, c.spokes)
        self.nufft = Nufft(n, self.ktraj)
        k = simulate_radial(fine, self.ktraj)
        if c.noise > 0:
            rng = np.random.default_rng(c.noise_seed)
            k = k + c.noise * peak * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
        self.kspace = k
        self.y = torch.tensor(np.stack([k.real, k.imag], -1), dtype=torch.float32)
        self.measurement_shape = (c.spokes, n)
        self.train_idx = torch.arange(k.size)
        self.data_range = 2 * peak
        dcf = _tkbn().calc_density_compensation_function(torch.from_numpy(self.ktraj), im_size=(n, n))
        self.dcf = dcf.real.reshape(-1).double().numpy()
        dc = self.nufft.adjoint_np(self.dcf * k)
        adc = self.nufft.forward_np(dc)
        dc = dc * (np.vdot(adc, k).real / max(np.vdot(adc, adc).real, 1e-300))
        self._reference_real = dc.real
        step = 1 / (1.05 * self.operator_norm_sq())
        tv = fista_tv(lambda z: self.nufft.adjoint_np(self.nufft.forward_np(z) - k).real, dc.real,
                      c.tv_weight, c.tv_iterations, step)
        self.baselines = {"dc_adjoint": np.abs(dc), "tv": np.abs(tv)}
        nyquist = math.pi / 2 * n
        self.meta = {
            "kind": "mri", **info, "size": n, "trajectory": "radial", "spokes": c.spokes,
            "samples": int(k.size), "acceleration": nyquist / c.spokes,
            "sampling": (f"{c.spokes} golden-angle spokes (111.25° apart, sorted by angle), {n} "
                         f"readout samples each at k = (i − {n // 2})·2π/{n}; R = (π/2·N)/S = "
                         f"{nyquist / c.spokes:.2f} against radial Nyquist"),
            "operator": "torchkbnufft KbNufft / N (unnormalised NUFFT, origin at pixel N//2, sparse "
                        "Kaiser–Bessel interpolation); real field; loss MSE over (real, imaginary) "
                        "of the samples",
            "simulation": (f"NUFFT of the source sampled on a {2 * n}² grid at spacing h/2 (2× "
                           f"finer) at the same physical frequencies, × 1/4, origin phase moved to "
                           f"the {n}² grid's; truth = |IFFT| of the full {n}×{n} Cartesian k-space"),
            "noise": c.noise, "noise_seed": c.noise_seed if c.noise > 0 else None,
            "baselines": (f"density-compensated adjoint (Pipe–Menon weights, least-squares scale "
                          f"on the data); TV-CS through the NUFFT (FISTA, {c.tv_iterations} "
                          f"iterations, step {step:.3g}, denoise_tv_chambolle weight "
                          f"{c.tv_weight:g}·step)"),
        }

    def operator_norm_sq(self, iterations: int = 30) -> float:
        """‖A‖² over real images, by power iteration on x ↦ Re AᴴA x (seeded start)."""
        x = np.random.default_rng(0).standard_normal((self.n, self.n))
        lam = 0.0
        for _ in range(iterations):
            x = self.nufft.adjoint_np(self.nufft.forward_np(x)).real
            lam = float(np.linalg.norm(x))
            x = x / lam
        return lam

    # ------------------------------------------------------------------ operator
    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(real, imaginary) (B, 2) of A applied to the image ``out`` (N², 1) at the batch's
        samples."""
        k = self.nufft.forward(out[:, 0].reshape(1, self.n, self.n))[0]
        return torch.view_as_real(k)[batch.idx.to(out.device)]

    def apply_operator(self, batch: Batch, values: torch.Tensor) -> torch.Tensor:
        """The batch's samples of A applied to each column of ``values`` (N², F) as an image:
        (B, 2, F) (real, imaginary), one batched NUFFT."""
        k = self.nufft.forward(values.T.reshape(-1, self.n, self.n))  # (F, M)
        k = k[:, batch.idx.to(values.device)].T  # (B, F)
        return torch.stack([k.real, k.imag], 1)

    def kernel(self, model: torch.nn.Module, idx: torch.Tensor, method: str = "auto",
               dtype: torch.dtype = torch.float64, outputs: str | int = "surrogate") -> torch.Tensor:
        """:meth:`MRI.kernel` by the matrix-free operator route only: torchkbnufft's autograd
        functions do not support ``torch.func`` (no ``setup_context``), so the Jacobian route
        (``jacrev`` of A∘f: grid encodings, batch-coupled norms) is refused."""
        if self.kernel_route(model, method) == "jacobian":
            raise InrlabError("radial MRI's eNTK needs the operator route (torchkbnufft does not "
                              "support torch.func): use a per-sample model and ntk method auto, "
                              "or signal.mri.trajectory cartesian")
        return super().kernel(model, idx, method, dtype, outputs)

    # ------------------------------------------------------------------ scoring and pictures
    def _measured_pair(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.nufft.forward_np(img)
        return (np.stack([k.real, k.imag], -1), np.stack([self.kspace.real, self.kspace.imag], -1))

    def _sampling_panels(self, where: Any, measured: Any) -> None:
        ky, kx = self.ktraj
        where.scatter(kx, ky, s=1)
        where.set_aspect("equal")
        where.set_title(f"{self.meta['spokes']} golden-angle spokes")
        measured.imshow(np.log10(np.abs(self.kspace).reshape(self.measurement_shape) + 1e-6),
                        cmap="viridis", aspect="auto")
        measured.set_title("measured log10 |k| (spoke × readout)")

    def _sampling_title(self) -> str:
        return f"radial, {self.meta['spokes']} spokes (R = {self.meta['acceleration']:.2f})"
