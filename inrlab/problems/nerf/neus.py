"""NeuS-style multi-view surface reconstruction (``neus:DIR``) on the same Blender-format scenes.

The field is a signed distance function with a colour branch (:class:`inrlab.models.radiance.
SDFField`). Rendering follows NeuS's discrete formulation: consecutive samples p_k, p_{k+1} of a
ray give the section opacity α_k = max((Φ_s(f(p_k)) − Φ_s(f(p_{k+1}))) / Φ_s(f(p_k)), 0) with
Φ_s the logistic sigmoid of learnable sharpness s, then alpha compositing over the background.
The loss adds the eikonal term λ·mean(‖∇f‖ − 1)² at the ray samples (``signal.nerf.
eikonal_weight``): the operator returns it as a fourth channel of each ray's measurement, the mean
over the ray's samples, and :meth:`NeuS.loss` weights it. Samples are stratified inside the scene
box; the occupancy grid is not used (the opacity needs consecutive samples).

Evaluation adds the surface: marching cubes of f on a ``signal.nerf.mesh_resolution``³ grid over
the scene box (:func:`inrlab.geometry.marching_cubes`), scored against the generator's
``mesh.obj`` by Chamfer distance and normal consistency (:func:`inrlab.geometry.
chamfer_normal_consistency`, scene units).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...config import ModelConfig, SignalConfig
from ...errors import InrlabError
from ...models.radiance import SDFField
from ..base import Batch
from .problem import NeRF
from .rendering import Samples, composite_alpha, scatter, sdf_alpha


class NeuS(NeRF):
    """Surface reconstruction of the scene in ``root`` with an SDF field."""

    outputs = (*NeRF.outputs, "mesh.ply")

    def __init__(self, root: str | Path, cfg: SignalConfig | None = None):
        super().__init__(root, cfg if cfg is not None else SignalConfig(f"neus:{root}"))
        if self.nerf.fine_samples:
            raise InrlabError(f"signal.nerf.fine_samples={self.nerf.fine_samples}: coarse + fine "
                              f"sampling is for nerf: scenes; NeuS renders stratified samples "
                              f"only: set it to 0")
        self.out_dim = 5
        self.meta["kind"] = "neus"
        gt = self.root / "mesh.obj"
        self.gt_mesh_path = gt if gt.exists() else None

    def build_model(self, cfg: ModelConfig) -> nn.Module:
        return SDFField(cfg)

    def batch(self, idx: torch.Tensor) -> Batch:
        """As NeRF's batch, with ``x`` requiring grad (the eikonal term differentiates f in x)."""
        b = super().batch(idx)
        b.x.requires_grad_(True)
        return b

    def render_samples(self, out: torch.Tensor, samples: Samples
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raw_sdf, raw_rest = scatter(out, samples.keep)  # (B, S), (B, S, 4)
        s = torch.exp(out[:, 4].mean()) if out.shape[0] else out.new_ones(())
        valid = samples.keep[:, :-1] & samples.keep[:, 1:]
        alpha = sdf_alpha(raw_sdf, valid, s)
        return composite_alpha(alpha, torch.sigmoid(raw_rest[..., :3]), samples.t, self.background)

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B, 4): rendered colour and, while training, each ray's mean (‖∇f‖ − 1)² (0 when
        gradients are off, e.g. in evaluation)."""
        s = Samples(batch.extra["t"], batch.extra["keep"], batch.x, batch.extra["delta"])
        colour = self.render_samples(out, s)[0]
        eik = colour.new_zeros(colour.shape[0])
        if torch.is_grad_enabled() and batch.x.requires_grad and out.shape[0]:
            g = torch.autograd.grad(out[:, 0].sum(), batch.x, create_graph=True)[0][:, :3]
            e = (g.norm(dim=1) - 1) ** 2
            ray = torch.nonzero(s.keep.reshape(-1)).squeeze(1) // s.keep.shape[1]
            count = torch.bincount(ray, minlength=len(eik)).clamp_min(1)
            eik = eik.index_add(0, ray, e) / count
        return torch.cat([colour, eik[:, None]], 1)

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Colour MSE + eikonal_weight · mean eikonal residual."""
        mse = torch.mean((pred[:, :3] - y) ** 2)
        if pred.shape[1] < 4:
            return mse
        return mse + self.nerf.eikonal_weight * pred[:, 3].mean()

    def residual(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pred[:, :3] - y

    # ------------------------------------------------------------------ the surface
    @torch.no_grad()
    def extract_mesh(self, model: nn.Module, resolution: int | None = None) -> Any:
        """The zero level set of the field as a Trimesh in scene (world) coordinates, by marching
        cubes on a (resolution + 1)³ vertex grid over [-bound, bound]³."""
        from ...geometry import grid_points, marching_cubes

        n = (resolution or self.nerf.mesh_resolution) + 1
        p = next(model.parameters())
        pts = torch.from_numpy(grid_points((n, n, n))).to(p.device, p.dtype)
        was = model.training
        model.eval()
        try:
            sdf = torch.cat([model.sdf(pts[i:i + 2**16]) for i in range(0, len(pts), 2**16)])
        finally:
            model.train(was)
        b = self.nerf.bound
        return marching_cubes(-sdf.view(n, n, n).float().cpu().numpy(), level=0.0, lo=-b, hi=b)

    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """NeRF's view metrics; with ``structural`` also the extracted mesh's Chamfer distance
        and normal consistency against the scene's ``mesh.obj`` (None without it)."""
        out = super().evaluate(model, structural)
        if structural:
            out.update({"chamfer": None, "normal_consistency": None})
            if self.gt_mesh_path is not None:
                import trimesh

                from ...geometry import chamfer_normal_consistency

                m = chamfer_normal_consistency(self.extract_mesh(model),
                                               trimesh.load(self.gt_mesh_path, force="mesh"),
                                               n=30_000)
                out.update({"chamfer": m["chamfer"],
                            "normal_consistency": m["normal_consistency"]})
        return out

    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """NeRF's pictures plus ``mesh.ply``, the extracted surface."""
        from ...geometry import export_ply

        super().save_outputs(model, out, history)
        export_ply(self.extract_mesh(model), out / "mesh.ply")


def build_neus(cfg: SignalConfig) -> NeuS:
    """``neus:DIR`` → the :class:`NeuS` problem of the Blender-format scene in DIR."""
    return NeuS(cfg.name.split(":", 1)[1], cfg)
