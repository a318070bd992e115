"""Radiance fields for rendering problems: position (+ view direction) → density and colour.

:class:`RadianceField` composes inrlab's pieces: the position network is an encoding followed by
hidden layers (Linear → norm → activation) exactly as in :class:`inrlab.models.INR` (so PE MLPs
in the nerf-pytorch style, hash grids in the instant-NGP style, SIREN and FINER fields are all
``model.encoding`` / ``model.activation`` choices, and FR can reparameterize ``linears``); its
head emits a raw density and ``model.view.geo_features`` geometry features. A small ReLU colour
network maps [features, encoded view direction] to raw RGB. View directions are encoded by real
spherical harmonics (:class:`SphericalHarmonics`) or by a positional encoding.

The field returns *raw* outputs; the rendering operator (``inrlab.problems.nerf``) applies the
density activation and the RGB sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .encodings import Positional
from .mlp import hidden_layer, hidden_linears, make_linear


class SphericalHarmonics(nn.Module):
    """Real spherical harmonics Y_lm of unit directions (N, 3), bands l < ``degree``: (N, degree²).

    Orthonormal on the sphere (∫ Y_i Y_j dΩ = δ_ij; ``tests/test_nerf.py`` checks it by
    quadrature). Coefficients are the standard closed forms of the real Y_lm in Cartesian form."""

    def __init__(self, degree: int = 4):
        super().__init__()
        if not 1 <= degree <= 5:
            raise ValueError("spherical harmonics degree must lie in 1 … 5")
        self.degree, self.in_dim, self.out_dim = degree, 3, degree * degree

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        x, y, z = d.unbind(-1)
        xx, yy, zz = x * x, y * y, z * z
        out = [torch.full_like(x, 0.28209479177387814)]
        if self.degree > 1:
            out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
        if self.degree > 2:
            out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                    0.31539156525252005 * (3 * zz - 1), -1.0925484305920792 * x * z,
                    0.5462742152960396 * (xx - yy)]
        if self.degree > 3:
            out += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
                    -0.4570457994644658 * y * (5 * zz - 1), 0.3731763325901154 * z * (5 * zz - 3),
                    -0.4570457994644658 * x * (5 * zz - 1), 1.445305721320277 * z * (xx - yy),
                    -0.5900435899266435 * x * (xx - 3 * yy)]
        if self.degree > 4:
            out += [2.5033429417967046 * x * y * (xx - yy),
                    -1.7701307697799304 * y * z * (3 * xx - yy),
                    0.9461746957575601 * x * y * (7 * zz - 1),
                    -0.6690465435572892 * y * z * (7 * zz - 3),
                    0.10578554691520431 * (35 * zz * zz - 30 * zz + 3),
                    -0.6690465435572892 * x * z * (7 * zz - 3),
                    0.47308734787878004 * (xx - yy) * (7 * zz - 1),
                    -1.7701307697799304 * x * z * (xx - 3 * yy),
                    0.6258357354491761 * (xx * (xx - 3 * yy) - yy * (3 * xx - yy))]
        return torch.stack(out, -1)


class RadianceField(nn.Module):
    """f: (N, 6) = [position in [-1, 1]³, unit view direction] → (N, 4) = [raw density, raw RGB].

    ``linears[i]``, ``norms[i]``, ``acts[i]`` form hidden layer i of the position network (as in
    :class:`inrlab.models.INR`); ``head`` gives 1 + ``view.geo_features`` outputs; ``colour`` is the
    view-dependent branch. ``occupancy`` ((G, G, G) float32, or None when G = 0) is the empty-space
    skipping grid of the rendering problem: running max of the density per cell, +inf until the
    first update; a buffer so that checkpoints carry it.
    """

    def __init__(self, cfg: ModelConfig, grid: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.in_dim, self.out_dim = cfg, 6, 4
        self.encoding = cfg.encoding.setup(3)
        self.linears = hidden_linears(cfg, self.encoding.out_dim)
        self.norms = nn.ModuleList(cfg.setup_norm() for _ in range(cfg.depth))
        self.acts = nn.ModuleList(cfg.activation.setup(first=i == 0) for i in range(cfg.depth))
        v = cfg.view
        self.head = make_linear(cfg.width, 1 + v.geo_features, cfg.activation.head_scales())
        for i, lin in enumerate(self.linears):
            cfg.activation.init_linear(lin, first=i == 0)
        cfg.activation.init_linear(self.head, first=False)
        self.view_encoding = (SphericalHarmonics(v.sh_degree) if v.dir_encoding == "sh"
                              else Positional(3, v.dir_frequencies, include_input=True))
        cdims = [v.geo_features + self.view_encoding.out_dim] + [v.colour_width] * v.colour_depth
        layers: list[nn.Module] = []
        for a, b in zip(cdims[:-1], cdims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.colour = nn.Sequential(*layers, nn.Linear(cdims[-1], 3))
        self.register_buffer("occupancy", torch.full((grid,) * 3, float("inf")) if grid else None)

    def features(self, pos: torch.Tensor) -> torch.Tensor:
        """Last hidden activations (N, width) of the position network at ``pos`` (N, 3)."""
        h = self.encoding(pos)
        for lin, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            h = hidden_layer(lin, norm, act, h, self.cfg.placement())
        return h

    def density(self, pos: torch.Tensor) -> torch.Tensor:
        """Raw density (N,) at positions ``pos`` (N, 3) (no view branch)."""
        return self.head(self.features(pos))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x[:, :3]))
        rgb = self.colour(torch.cat([out[:, 1:], self.view_encoding(x[:, 3:])], 1))
        return torch.cat([out[:, :1], rgb], 1)


class SDFField(RadianceField):
    """f: (N, 6) → (N, 5) = [signed distance, raw RGB, log s] for NeuS-style surface rendering.

    The distance is the network's first head output plus the analytic sphere ‖p‖ − ``radius``
    (p in the normalised [-1, 1]³), so training starts from a sphere as NeuS's geometric
    initialisation does, for any encoding. ``log_s`` is the learnable log sharpness of the
    logistic density Φ_s(x) = sigmoid(s·x), s = exp(log_s), broadcast to every point so that the
    rendering operator (which sees outputs only) can use it. No occupancy grid: NeuS's opacity
    needs consecutive samples."""

    def __init__(self, cfg: ModelConfig, radius: float = 0.5, log_s: float = 3.0):
        super().__init__(cfg, grid=0)
        self.out_dim, self.radius = 5, radius
        self.log_s = nn.Parameter(torch.tensor(float(log_s)))

    def sdf(self, pos: torch.Tensor) -> torch.Tensor:
        """Signed distance (N,) at normalised positions ``pos`` (N, 3) (negative inside)."""
        return self.density(pos) + pos.norm(dim=1) - self.radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = x[:, :3]
        out = self.head(self.features(pos))
        rgb = self.colour(torch.cat([out[:, 1:], self.view_encoding(x[:, 3:])], 1))
        sdf = out[:, :1] + pos.norm(dim=1, keepdim=True) - self.radius
        return torch.cat([sdf, rgb, self.log_s.expand(x.shape[0], 1)], 1)
