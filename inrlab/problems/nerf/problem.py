"""NeRF: novel-view synthesis from a Blender-format scene (``nerf:DIR``).

Measurements are the pixels of the training views, ``measurement_shape = (views, H, W)``; a batch
of measurement indices is a batch of rays. The field (:class:`inrlab.models.radiance.
RadianceField`) is queried at the kept samples of those rays and the operator is volume rendering
(:mod:`.rendering`); the loss is the MSE of pixel colours. Evaluation renders test views (PSNR,
SSIM; LPIPS is absent: no package here ships its network weights). Empty-space skipping uses an
occupancy grid stored in the field (``signal.nerf.grid``), updated before training steps.

Coarse + fine (``signal.nerf.fine_samples`` = F > 0, mip-NeRF style: one field queried twice,
see ``docs/rendering.md`` for why not nerf-pytorch's two networks). A batch then carries the
coarse samples and F importance samples per ray drawn from the coarse weights of the field being
trained (a no-grad eval-mode pass in :meth:`NeRF.batch`: the trainer queries the field once per
batch, at ``batch.x``); ``batch.x`` holds both sets and :meth:`NeRF.forward` renders the coarse
colour and the colour of the sorted union, so every measurement has 6 channels
[fine RGB, coarse RGB] and the loss is the mean of both MSEs. IGA's eNTK, ``measure`` and the
evaluation all go through the same two renders.

Settings live in ``signal.nerf`` (:class:`inrlab.config.NeRFConfig`); the colour branch of the
field in ``model.view``. Training needs mini-batches of rays (``train.batch_size``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...config import ModelConfig, SignalConfig
from ...errors import InrlabError
from ...models.radiance import RadianceField
from ...train.metrics import psnr, ssim
from ..base import Batch, GridData, Problem
from .blender import Views, load_views
from .cameras import camera_rays, turntable_poses
from .rendering import (
    Samples,
    kept_inputs,
    march,
    render_merged,
    render_outputs,
    sample_pdf,
    update_occupancy,
)


class NeRF(Problem):
    """Radiance-field fitting of the Blender-format scene in folder ``root``."""

    group_layout = "slices"  # IGA: P×P patches of neighbouring pixels within one view
    outputs = ("test_views.png", "test_depth.png", "turntable.gif", "summary.png")

    def __init__(self, root: str | Path, cfg: SignalConfig | None = None):
        root = Path(root)
        self.config = cfg if cfg is not None else SignalConfig(f"nerf:{root}")
        n = self.nerf = self.config.nerf
        n.validate()
        if not root.is_dir():
            raise InrlabError(f"scene folder {str(root)!r} not found: give a Blender-format folder "
                              f"(make one with `inrlab scene render MESH --out DIR`)")
        self.root = root
        self.train_views = load_views(root, "train", n.downscale, n.white_background, n.train_views)
        self.test_views = load_views(root, "test", n.downscale, n.white_background, n.test_views)
        v, h, w = len(self.train_views), self.train_views.height, self.train_views.width
        o, d = camera_rays(self.train_views.c2w, h, w, self.train_views.focal)
        self.origins, self.dirs = o.reshape(-1, 3), d.reshape(-1, 3)
        self.y = self.train_views.images.reshape(-1, 3)
        self.name = root.name
        self.in_dim, self.out_dim = 6, 4
        self.measurement_shape = (v, h, w)
        self.train_idx = torch.arange(v * h * w)
        self.data_range = 1.0
        self.background = 1.0 if n.white_background else 0.0
        self.grid: torch.Tensor | None = None  # occupancy of the field being trained (step())
        self.field: nn.Module | None = None  # the field that places fine samples (step())
        self.meta = {"kind": "nerf", "root": str(root), "train_views": v,
                     "test_views": len(self.test_views), "size": [h, w],
                     "focal": self.train_views.focal}

    # ------------------------------------------------------------------ field and training
    def build_model(self, cfg: ModelConfig) -> nn.Module:
        return RadianceField(cfg, self.nerf.grid)

    def step(self, model: nn.Module, step: int) -> None:
        """Bind the occupancy grid of ``model`` and update it every ``grid_every`` steps after
        ``grid_warmup`` (eval mode: batch-coupled norms keep their running statistics)."""
        n = self.nerf
        self.grid = getattr(model, "occupancy", None)
        self.field = model
        if self.grid is None or step < n.grid_warmup or (step - n.grid_warmup) % n.grid_every:
            return
        was = model.training
        model.eval()
        try:
            update_occupancy(self.grid, model.density, n.grid_decay, n.density_activation)
        finally:
            model.train(was)

    def _march(self, origins: torch.Tensor, dirs: torch.Tensor, jitter: bool,
               grid: torch.Tensor | None) -> Samples:
        n = self.nerf
        if grid is not None and not bool(torch.isfinite(grid).all()):
            grid = None  # not updated yet: every cell is occupied
        if grid is not None:
            origins, dirs = origins.to(grid.device), dirs.to(grid.device)
        return march(origins, dirs, n.near, n.far, n.ray_samples, n.bound, jitter, grid,
                     n.grid_threshold)

    def _fine(self, origins: torch.Tensor, dirs: torch.Tensor, coarse: Samples,
              weights: torch.Tensor, jitter: bool, grid: torch.Tensor | None) -> Samples:
        """``fine_samples`` importance samples (B, F) of rays (B, 3) + (B, 3) drawn from the
        coarse ``weights`` (B, S) of the strata of ``coarse``, kept by the same box and grid
        rules; ``delta`` is 0 (they are rendered merged with the coarse samples)."""
        n = self.nerf
        if grid is not None and not bool(torch.isfinite(grid).all()):
            grid = None
        edges = torch.linspace(n.near, n.far, n.ray_samples + 1, device=weights.device,
                               dtype=coarse.t.dtype)
        t = sample_pdf(edges, weights, n.fine_samples, jitter).to(coarse.t.dtype)
        keep, x = kept_inputs(origins.to(t.device), dirs.to(t.device), t, n.bound, grid,
                              n.grid_threshold)
        return Samples(t, keep, x, 0.0)

    def batch(self, idx: torch.Tensor) -> Batch:
        """Rays of pixels ``idx`` (B,): stratified samples (kept ones in ``x``), target colours.
        With ``fine_samples``, also importance samples placed by the bound field (``x`` = coarse
        then fine inputs; on the field's device)."""
        if len(idx) == 0:
            raise InrlabError("a batch needs at least one ray: set train.batch_size > 0")
        o, d = self.origins[idx], self.dirs[idx]
        s = self._march(o, d, True, self.grid)
        extra: dict[str, Any] = {"t": s.t, "keep": s.keep, "delta": s.delta}
        if not self.nerf.fine_samples:
            return Batch(idx, s.x, self.y[idx], extra)
        if self.field is None:
            raise InrlabError("coarse + fine sampling needs the field that places the fine "
                              "samples: call problem.step(model, step) before problem.batch")
        model = self.field
        p = next(model.parameters())
        s = Samples(s.t.to(p.device), s.keep.to(p.device), s.x.to(p.device), s.delta)
        was = model.training
        model.eval()  # batch-coupled norms: this batch's statistics, running ones untouched
        try:
            with torch.no_grad():
                w = self.render_samples(model(s.x.to(p.dtype)), s)[1]
        finally:
            model.train(was)
        f = self._fine(o, d, s, w, True, self.grid)
        extra.update(t=s.t, keep=s.keep, t_fine=f.t, keep_fine=f.keep)
        return Batch(idx.to(p.device), torch.cat([s.x, f.x]), self.y[idx].to(p.device), extra)

    def full_batch(self) -> Batch:
        raise InrlabError(f"{self.name}: NeRF draws new rays and samples every step, so it needs "
                          f"mini-batches: set train.batch_size below the {self.n_train} training "
                          f"rays (e.g. --train.batch_size 1024)")

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Pixel colours (B, 3) rendered from the field's raw outputs (P, 4) at ``batch.x``; with
        fine samples (B, 6): the colour of the coarse + fine union, then the coarse colour."""
        s = Samples(batch.extra["t"], batch.extra["keep"], batch.x, batch.extra["delta"])
        if "t_fine" not in batch.extra:
            return self.render_samples(out, s)[0]
        pc = int(s.keep.sum())
        f = Samples(batch.extra["t_fine"], batch.extra["keep_fine"], batch.x[pc:], 0.0)
        return torch.cat([self.render_fine(out[:pc], s, out[pc:], f)[0],
                          self.render_samples(out[:pc], s)[0]], 1)

    def render_fine(self, out_c: torch.Tensor, coarse: Samples, out_f: torch.Tensor,
                    fine: Samples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Colour (B, 3), weights (B, S + F), opacity (B,) and depth (B,) of the sorted union of
        ``coarse`` and ``fine`` samples, answered by the field with ``out_c`` and ``out_f``."""
        n = self.nerf
        return render_merged(out_c, coarse, out_f, fine, n.near, n.far, n.density_activation,
                             self.background)

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE; with fine samples the mean of the fine and the coarse colours' MSEs (nerf-pytorch
        sums the two: the ½ changes nothing under Adam and keeps the loss a per-pixel MSE)."""
        return torch.mean(self.residual(pred, y) ** 2)

    def residual(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """pred − y (B, C), the targets repeated for the coarse channels of a fine batch."""
        return pred - (y.repeat(1, pred.shape[1] // y.shape[1]) if pred.shape[1] != y.shape[1]
                       else y)

    def measure(self, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        """As :meth:`Problem.measure`, with ``model`` placing the fine samples."""
        self.field = model
        return super().measure(model, idx)

    def kernel(self, model: nn.Module, idx: torch.Tensor, method: str = "auto",
               dtype: torch.dtype = torch.float64, outputs: str | int = "surrogate"
               ) -> torch.Tensor:
        """As :meth:`Problem.kernel` (the eNTK of the rendered colours, fine and coarse channels
        with fine samples), with ``model`` placing the fine samples."""
        self.field = model
        return super().kernel(model, idx, method, dtype, outputs)

    def render_samples(self, out: torch.Tensor, samples: Samples
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Colour (B, 3), weights (B, S), opacity (B,) and depth (B,) of rays whose kept samples
        the field answered with ``out`` (P, C): density rendering (:mod:`.rendering`)."""
        return render_outputs(out, samples, self.nerf.density_activation, self.background)

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render_rays(self, model: nn.Module, origins: torch.Tensor, dirs: torch.Tensor,
                    chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eval-mode colour (N, 3), depth (N,) and opacity (N,) of rays (N, 3) + (N, 3), on the
        CPU; stratum midpoints, skipping empty cells of the model's occupancy grid; with fine
        samples, the coarse + fine union (fine samples at the coarse PDF's midpoint quantiles)."""
        p = next(model.parameters())
        grid = getattr(model, "occupancy", None)
        was = model.training
        model.eval()
        cols, depths, accs = [], [], []
        try:
            for i in range(0, len(origins), chunk):
                o, d = origins[i:i + chunk].to(p.device), dirs[i:i + chunk].to(p.device)
                s = self._march(o, d, False, grid)
                out = model(s.x.to(p.dtype))
                c, w, acc, dep = self.render_samples(out, s)
                if self.nerf.fine_samples:
                    f = self._fine(o, d, s, w, False, grid)
                    c, _, acc, dep = self.render_fine(out, s, model(f.x.to(p.dtype)), f)
                cols.append(c.float().cpu())
                depths.append(dep.float().cpu())
                accs.append(acc.float().cpu())
        finally:
            model.train(was)
        return torch.cat(cols), torch.cat(depths), torch.cat(accs)

    def render_views(self, model: nn.Module, c2w: torch.Tensor, height: int, width: int,
                     focal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images (V, H, W, 3) in [0, 1], depth (V, H, W) and opacity (V, H, W) of cameras
        ``c2w`` (V, 4, 4)."""
        o, d = camera_rays(c2w, height, width, focal)
        c, dep, acc = self.render_rays(model, o.reshape(-1, 3), d.reshape(-1, 3))
        shape = (len(c2w), height, width)
        return (c.clamp(0, 1).reshape(*shape, 3).numpy(), dep.reshape(shape).numpy(),
                acc.reshape(shape).numpy())

    def _render_split(self, model: nn.Module, views: Views, k: int) -> np.ndarray:
        return self.render_views(model, views.c2w[:k], views.height, views.width, views.focal)[0]

    # ------------------------------------------------------------------ scoring and pictures
    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """Test-view PSNR (mean over views of per-view PSNR; ``psnr_heldout`` is the same
        number: test views are the held-out data) and SSIM; ``psnr_train`` on training views.
        Periodic evaluations (``structural=False``) score ``signal.nerf.quick_views`` views."""
        k = len(self.test_views) if structural else min(self.nerf.quick_views, len(self.test_views))
        pred = self._render_split(model, self.test_views, k)
        target = self.test_views.images[:k].numpy()
        kt = min(k, len(self.train_views))
        pred_tr = self._render_split(model, self.train_views, kt)
        p_test = float(np.mean([psnr(p, t) for p, t in zip(pred, target, strict=True)]))
        out: dict[str, Any] = {
            "psnr": p_test, "psnr_heldout": p_test,
            "psnr_train": float(np.mean([psnr(p, t) for p, t in
                                         zip(pred_tr, self.train_views.images[:kt].numpy(),
                                             strict=True)])),
            "mse": float(np.mean((pred - target) ** 2)), "test_views": k}
        if structural:
            out["ssim"] = (float(np.mean([ssim(p, t) for p, t in zip(pred, target, strict=True)]))
                           if min(pred.shape[1:3]) >= 11 else None)
        return out

    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """``test_views.png`` (target above prediction per test view), ``test_depth.png``,
        ``turntable.gif`` (24 frames) and ``summary.png`` (first test view, spectra, PSNR)."""
        from ...plots import image_panels, save_image

        tv = self.test_views
        pred, depth, acc = self.render_views(model, tv.c2w, tv.height, tv.width, tv.focal)
        target = tv.images.numpy()
        save_image(np.concatenate([np.concatenate(list(target), 1),
                                   np.concatenate(list(pred), 1)], 0), out / "test_views.png")
        dvis = self.depth_image(depth, acc)
        save_image(np.concatenate(list(dvis), 1), out / "test_depth.png")
        self.render_path(model, out, "turntable", frames=24, gif_only=True)
        image_panels(target[0], pred[0], history, out / "summary.png", self.name,
                     extra=[("expected depth", dvis[0])])

    def depth_image(self, depth: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Depth maps (..., H, W) → (..., H, W, 3) gray images: near white, far black, faded to
        black where the opacity ``acc`` (..., H, W) is low."""
        n = self.nerf
        v = (1 - np.clip((depth - n.near) / (n.far - n.near), 0, 1)) * np.clip(acc, 0, 1)
        return np.repeat(v[..., None], 3, -1)

    def render_path(self, model: nn.Module, out: Path, path: str = "turntable", frames: int = 40,
                    elevation: float = 30.0, gif_only: bool = False) -> list[Path]:
        """Render a camera path into folder ``out``: ``turntable`` (``frames`` cameras circling
        at ``elevation`` degrees, at the training cameras' mean distance: ``turntable.gif`` and,
        unless ``gif_only``, ``turntable_NNN.png``) or ``test`` (the test views: ``test_NNN.png``
        and ``test_NNN_depth.png``). Returns the files written."""
        from PIL import Image

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tv = self.train_views
        if path == "turntable":
            radius = float(tv.c2w[:, :3, 3].norm(dim=1).mean())
            c2w = torch.from_numpy(turntable_poses(frames, radius, elevation)).float()
            imgs, _, _ = self.render_views(model, c2w, tv.height, tv.width, tv.focal)
            files = []
            u8 = [np.round(im * 255).astype(np.uint8) for im in imgs]
            if not gif_only:
                for k, im in enumerate(u8):
                    files.append(out / f"turntable_{k:03d}.png")
                    Image.fromarray(im).save(files[-1])
            gif = out / "turntable.gif"
            pil = [Image.fromarray(im) for im in u8]
            pil[0].save(gif, save_all=True, append_images=pil[1:], duration=80, loop=0)
            return [gif, *files]
        if path != "test":
            raise InrlabError(f"unknown camera path {path!r}: choose turntable or test")
        te = self.test_views
        imgs, depth, acc = self.render_views(model, te.c2w, te.height, te.width, te.focal)
        files = []
        for k, (im, dv) in enumerate(zip(imgs, self.depth_image(depth, acc), strict=True)):
            for name, a in ((f"test_{k:03d}.png", im), (f"test_{k:03d}_depth.png", dv)):
                files.append(out / name)
                Image.fromarray(np.round(a * 255).astype(np.uint8)).save(files[-1])
        return files

    # ------------------------------------------------------------------ FreSh and norms
    def _mosaic_layout(self) -> tuple[int, int, int, int]:
        """(views k, tiles per side m, H, W) of FreSh's reference mosaic."""
        k = min(self.nerf.fresh_views, len(self.train_views))
        return k, math.ceil(math.sqrt(k)), self.train_views.height, self.train_views.width

    def _mosaic_index(self) -> torch.Tensor:
        """(k·H·W,) mosaic pixel of each pixel of the first k training views (row-major)."""
        k, m, h, w = self._mosaic_layout()
        v, j, i = torch.meshgrid(torch.arange(k), torch.arange(h), torch.arange(w), indexing="ij")
        return (((v // m) * h + j) * (m * w) + (v % m) * w + i).reshape(-1)

    def reference(self) -> GridData:
        """The first ``signal.nerf.fresh_views`` training views tiled into a square mosaic
        (m·H, m·W), empty tiles filled with the background. ``coords`` (N, 6): the field input at
        the middle of each pixel's ray segment (empty tiles: the origin, looking down −z)."""
        k, m, h, w = self._mosaic_layout()
        n = self.nerf
        idx = self._mosaic_index()
        values = torch.full((m * h * m * w, 3), self.background)
        values[idx] = self.y[: k * h * w]
        coords = torch.zeros(m * h * m * w, 6)
        coords[:, 5] = -1
        o, d = self.origins[: k * h * w], self.dirs[: k * h * w]
        mid = (o + (n.near + n.far) / 2 * d) / n.bound
        coords[idx] = torch.cat([mid.clamp(-1, 1), d], 1)
        return GridData(coords, (m * h, m * w), values)

    def reference_outputs(self, outputs: Callable[[torch.Tensor], torch.Tensor],
                          device: torch.device) -> torch.Tensor:
        """Renders (R, N, 3) of the R untrained models into FreSh's mosaic (no skipping)."""
        k, m, h, w = self._mosaic_layout()
        s = self._march(self.origins[: k * h * w], self.dirs[: k * h * w], False, None)
        out = outputs(s.x.to(device))  # (R, P, 4)
        s = Samples(s.t.to(device), s.keep.to(device), s.x, s.delta)
        res = torch.full((out.shape[0], m * h * m * w, 3), self.background, device=device,
                         dtype=out.dtype)
        idx = self._mosaic_index().to(device)
        for r in range(out.shape[0]):
            res[r, idx] = self.render_samples(out[r], s)[0]
        return res

    def statistics_points(self) -> torch.Tensor:
        """Samples (P, 6) of 1024 fixed random training rays (stratum midpoints, no skipping):
        what a training batch looks like to batch-coupled normalizations."""
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(self.n_train, (min(1024, self.n_train),), generator=g)
        return self._march(self.origins[idx], self.dirs[idx], False, None).x

    def preview(self) -> np.ndarray:
        return self.train_views.images[0].numpy()


def build_nerf(cfg: SignalConfig) -> NeRF:
    """``nerf:DIR`` → the :class:`NeRF` problem of the Blender-format scene in DIR."""
    return NeRF(cfg.name.split(":", 1)[1], cfg)
