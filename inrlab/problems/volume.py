"""3-D shapes as problems: occupancy volumes (``occ:…``) and signed distance fields (``sdf:…``).

Occupancy (:class:`Occupancy`): a (D, H, W) boolean volume — from a ``.mat`` (key ``hypercube``, the
IGA/WIRE format, optionally zipped), a ``.npy`` array, or a mesh by an inside test — fitted with
BCE on logits. Voxel centres lie on linspace(−1, 1, n) per axis (the papers' convention). A 512³
volume has 134 M voxels, so nothing per-voxel but the volume itself (1 byte a voxel) is kept:

- the held-out split is a hash of the voxel index (``heldout_mask``), not an index table;
- mini-batches are uniform random voxel indices, rejected when held out (:meth:`Occupancy.sample`);
  coordinates are computed from the indices (:meth:`Occupancy.points`);
- evaluation walks the volume in chunks of ``signal.volume.chunk`` points;
- ``train_idx`` (needed by IGA's group tables and the eNTK diagnostics) is built only on demand.

SDF (:class:`SDF`): a fixed set of points sampled once — on the surface, near it (Gaussian offsets)
and uniformly in [−1, 1]³ — with their signed distances (negative inside), fitted with L1 or MSE and
an optional eikonal term (the operator then also returns ‖∇f‖, measured against 1).

Names: ``occ:thai`` (``$INRLAB_DATA/occupancy/thai_statue.mat.zip``), ``occ:bunny`` / ``sdf:bunny``
(``$INRLAB_DATA/meshes/bunny.obj.gz``), ``occ:sphere`` / ``sdf:sphere`` (analytic, radius 0.6),
``occ:PATH`` (.mat, .mat.zip, .npy or a mesh), ``sdf:PATH`` (a mesh).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import geometry as geo
from ..config import SignalConfig, VolumeConfig
from ..errors import InrlabError
from .base import Batch, GridData, Problem, fmt_metric

SPHERE_RADIUS = 0.6
FULL_BATCH_LIMIT = 2 ** 21  # voxels: above this a full batch is refused (memory)
DEFAULT_BATCH = 65_536
DATA_NAMES = {"thai": "occupancy/thai_statue.mat.zip", "bunny": "meshes/bunny.obj.gz"}


# --------------------------------------------------------------------------- loading

def load_mat(path: Path, key: str = "hypercube") -> np.ndarray:
    """The array under ``key`` of a MATLAB ``.mat`` file, or of the single ``.mat`` inside a zip."""
    from scipy.io import loadmat

    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as z:
                mats = [n for n in z.namelist() if n.lower().endswith(".mat")]
                if len(mats) != 1:
                    raise InrlabError(f"{str(path)!r} holds {len(mats)} .mat files: zip exactly one")
                data = loadmat(io.BytesIO(z.read(mats[0])))
        else:
            data = loadmat(path)
    except (zipfile.BadZipFile, ValueError, OSError,
            NotImplementedError) as e:  # zipfile raises NotImplementedError for unknown compression
        raise InrlabError(f"cannot read {str(path)!r} as a MATLAB .mat ({e}); MATLAB v7.3 files "
                          f"are HDF5: re-save with save(..., '-v7') or convert to .npy") from None
    if key not in data:
        found = [k for k in data if not k.startswith("__")]
        raise InrlabError(f"{str(path)!r} has no key {key!r} (keys found: {', '.join(found) or 'none'}): "
                          f"save the occupancy volume under {key!r}")
    return np.asarray(data[key])


def check_occupancy(a: np.ndarray, what: str) -> np.ndarray:
    """A 3-D array → bool volume (nonzero = occupied); errors for other ranks, empty or full."""
    if a.ndim != 3:
        raise InrlabError(f"{what} has shape {a.shape}: an occupancy volume must be a 3-D array "
                          f"(D, H, W)")
    if min(a.shape) < 2:
        raise InrlabError(f"{what} has shape {a.shape}: every axis needs at least 2 voxels")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise InrlabError(f"{what} has NaN or inf voxels: clean the array")
        occ = a > 0.5 * float(a.max()) if a.max() > 0 else np.zeros(a.shape, bool)
    else:
        occ = a != 0
    n = int(np.count_nonzero(occ))
    if n == 0:
        raise InrlabError(f"{what} is empty (no occupied voxel): nothing to fit; check the file")
    if n == occ.size:
        raise InrlabError(f"{what} is occupied everywhere: there is no surface to fit; check the "
                          f"file or pad it with empty space")
    return occ


def crop_to_bbox(occ: np.ndarray) -> np.ndarray:
    """The smallest box holding every occupied voxel (as the IGA/WIRE reference code)."""
    sl = []
    for ax in range(3):
        nz = np.nonzero(occ.any(axis=tuple(i for i in range(3) if i != ax)))[0]
        sl.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return occ[tuple(sl)]


def resample(occ: np.ndarray, size: int) -> np.ndarray:
    """Resample ``occ`` so its longest side has ``size`` voxels: block averages for integer
    factors, else trilinear interpolation, then occupancy = average ≥ 0.5."""
    longest = max(occ.shape)
    if size == longest:
        return occ
    f = longest / size
    if f == int(f) and all(s % int(f) == 0 for s in occ.shape):
        k = int(f)
        d, h, w = (s // k for s in occ.shape)
        frac = np.zeros((d, h, w), np.float32)
        for i in range(k):  # slab-wise sum keeps the float copy small
            frac += occ[i::k].reshape(d, h, k, w, k).sum((2, 4), dtype=np.float32)
        return frac >= 0.5 * k ** 3
    from scipy.ndimage import zoom

    shape = tuple(max(2, round(s / f)) for s in occ.shape)
    return zoom(occ.astype(np.float32), [n / s for n, s in zip(shape, occ.shape, strict=True)],
                order=1, grid_mode=False) >= 0.5


def resolve(source: str) -> tuple[str, Path | None]:
    """``thai`` / ``bunny`` → the file in ``$INRLAB_DATA``; ``sphere`` → analytic; else a path."""
    if source == "sphere":
        return "sphere", None
    if source in DATA_NAMES:
        from ..data import data_dir

        p = data_dir(required=True) / DATA_NAMES[source]
        if not p.is_file():
            raise InrlabError(f"{source!r} needs {str(p)!r}, which is missing: set INRLAB_DATA to "
                              f"the benchmark data folder")
        return source, p
    p = Path(source)
    if not p.is_file():
        raise InrlabError(f"shape {source!r} not found: give a .mat/.mat.zip/.npy/mesh path, or "
                          f"one of sphere, {', '.join(DATA_NAMES)}")
    return p.name.split(".")[0], p


def sphere_mesh() -> Any:
    """The analytic sphere's mesh (an icosphere of 20 480 faces) for Chamfer scoring."""
    import trimesh

    return trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS)


# --------------------------------------------------------------------------- shared helpers

def heldout_mask(idx: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Bool (n,) mask of held-out voxels among flat indices ``idx`` (n,): a fixed hash of (index,
    seed) below ``fraction``, so a split over 10⁸ voxels needs no table."""
    if fraction <= 0:
        return torch.zeros(idx.shape, dtype=torch.bool)
    x = idx.cpu().numpy().astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):  # splitmix64: wrap-around arithmetic is the point
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    u = (x >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return torch.from_numpy(u < fraction)


@contextmanager
def frozen_norms(model: nn.Module) -> Iterator[None]:
    """Evaluate batch-coupled norms with their stored statistics (chunks must not change the
    result); restores each layer's choice afterwards."""
    from ..models.norms import CoordNorm

    norms = [m for m in model.modules() if isinstance(m, CoordNorm) and m.batch_coupled]
    before = [m.stats for m in norms]
    for m in norms:
        m.stats = "frozen"
    try:
        yield
    finally:
        for m, s in zip(norms, before, strict=True):
            m.stats = s


CPU_CHUNK = 4_096  # a 2×256 MLP's activations (4 MB) stay in cache: 2–3× faster than 65 536
GPU_CHUNK = 262_144  # enough points per launch to fill a GPU


def eval_chunk(chunk: int | None, device: torch.device) -> int:
    """Points per evaluation forward pass: ``chunk``, or when None the device's default
    (``CPU_CHUNK`` on a CPU, ``GPU_CHUNK`` on an accelerator); errors for ``chunk`` ≤ 0."""
    if chunk is None:
        return CPU_CHUNK if device.type == "cpu" else GPU_CHUNK
    if chunk <= 0:
        raise InrlabError(f"chunk size {chunk} is impossible: signal.volume.chunk must be > 0")
    return chunk


def chunked(model: nn.Module, points: Any, n: int,
            chunk: int | None) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, outputs (c, C) float32 on the CPU) of ``model`` on ``points(start, stop)`` → (c, 3),
    in chunks of ``chunk`` points (None: :func:`eval_chunk`'s device default), under
    ``torch.inference_mode`` with batch-coupled norms frozen."""
    p = next(model.parameters())
    chunk = eval_chunk(chunk, p.device)
    was = model.training
    model.eval()
    try:
        with torch.inference_mode(), frozen_norms(model):
            for s in range(0, n, chunk):
                yield s, model(points(s, min(n, s + chunk)).to(p.device, p.dtype)).float().cpu()
    finally:
        model.train(was)


def grid_shape_for(shape: tuple[int, ...], side: int) -> tuple[int, int, int]:
    """A grid whose longest side is ``side`` with the aspect ratio of ``shape``."""
    longest = max(shape)
    return tuple(max(2, round(s * side / longest)) for s in shape)  # type: ignore[return-value]


def grid_coords(shape: tuple[int, ...], start: int, stop: int) -> torch.Tensor:
    """(stop − start, 3) float32 voxel-centre coordinates of flat indices start…stop−1 of a
    row-major grid ``shape`` (linspace(−1, 1, n) per axis)."""
    return index_coords(shape, torch.arange(start, stop))


def index_coords(shape: tuple[int, ...], idx: torch.Tensor) -> torch.Tensor:
    """(n, 3) float32 voxel-centre coordinates of flat indices ``idx`` (n,) of grid ``shape``."""
    d, h, w = shape
    idx = idx.long()
    ijk = torch.stack([idx // (h * w), (idx // w) % h, idx % w], 1).float()
    scale = torch.tensor([2.0 / (d - 1), 2.0 / (h - 1), 2.0 / (w - 1)])
    return ijk * scale - 1


def aspect(shape: tuple[int, ...]) -> np.ndarray:
    """Per-axis scale (3,) from [−1, 1] per axis to a frame whose longest axis spans [−1, 1]."""
    return np.asarray(shape, np.float64) / max(shape)


def field_grid(model: nn.Module, shape: tuple[int, int, int], chunk: int) -> np.ndarray:
    """The model's first output channel on the grid ``shape`` (row-major), float32."""
    n = math.prod(shape)
    out = np.empty(n, np.float32)
    for s, o in chunked(model, lambda a, b: grid_coords(shape, a, b), n, chunk):
        out[s:s + len(o)] = o[:, 0].numpy()
    return out.reshape(shape)


def mesh_figures(pred_mesh: Any, gt_mesh: Any | None, out: Path, name: str) -> None:
    """``surface.png``: the predicted surface (and the ground truth's) from three views."""
    import matplotlib.pyplot as plt

    rows = [("prediction", pred_mesh)] + ([("ground truth", gt_mesh)] if gt_mesh is not None else [])
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 3.2 * len(rows)), squeeze=False)
    for ax, (label, m) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(geo.render_views(m, size=256))
        ax.set_title(f"{name}: {label} (front | side | top)", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "surface.png", dpi=80)
    plt.close(fig)


def curve(history: list[dict[str, Any]], keys: tuple[str, ...], path: Path, title: str) -> None:
    """``summary.png``: the history's ``keys`` against the step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        pts = [(h["step"], h[k]) for h in history if h.get(k) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=k)
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- occupancy

class Occupancy(Problem):
    """Occupancy of a (D, H, W) boolean volume, fitted with BCE on logits; measurement i is voxel i
    (row-major), its query point the voxel centre.

    Args:
        volume: (D, H, W) bool array (True = inside).
        name: short name.
        heldout: fraction of voxels never trained on (hash split, seed ``split_seed``).
        vcfg: the ``signal.volume`` section (chunk, mesh and reference grid sizes, …).
        gt_mesh: the ground-truth surface in the [−1, 1]³ frame, or None (then Chamfer is measured
            against the marching-cubes surface of the target volume).
        meta / config: description and the SignalConfig that rebuilds it.
    """

    in_dim, out_dim = 3, 1
    identity = True
    data_range = None
    default_batch_size = DEFAULT_BATCH
    outputs = ("reconstruction.ply", "surface.png", "slices.png", "summary.png")

    def __init__(self, volume: np.ndarray, name: str, heldout: float = 0.1, split_seed: int = 0,
                 vcfg: VolumeConfig | None = None, gt_mesh: Any | None = None,
                 meta: dict[str, Any] | None = None, config: SignalConfig | None = None):
        occ = check_occupancy(np.asarray(volume), f"occupancy volume {name!r}")
        self.name = name
        self.vcfg = vcfg if vcfg is not None else VolumeConfig()
        self.vcfg.validate()
        self.volume = torch.from_numpy(np.ascontiguousarray(occ))
        self.flat = self.volume.reshape(-1)
        self.measurement_shape = tuple(int(s) for s in occ.shape)
        self.heldout, self.split_seed = heldout, split_seed
        self.gt_mesh = gt_mesh
        self.config = config
        n_ho = sum(int(heldout_mask(torch.arange(s, min(self.n_measurements, s + 2 ** 22)),
                                    heldout, split_seed).sum())
                   for s in range(0, self.n_measurements, 2 ** 22))
        self._n_train = self.n_measurements - n_ho
        self._train_idx: torch.Tensor | None = None
        self.meta = {"kind": "occupancy", "shape": list(self.measurement_shape),
                     "occupied": float(self.flat.float().mean()), "heldout": heldout,
                     **(meta or {})}

    # ------------------------------------------------------------------ training
    @property
    def n_train(self) -> int:
        return self._n_train

    @property
    def train_idx(self) -> torch.Tensor:  # type: ignore[override]
        """(n_train,) int64 training voxel indices, built on first use (8 bytes a voxel)."""
        if self._train_idx is None:
            parts = []
            for s in range(0, self.n_measurements, 2 ** 22):
                idx = torch.arange(s, min(self.n_measurements, s + 2 ** 22))
                parts.append(idx[~heldout_mask(idx, self.heldout, self.split_seed)])
            self._train_idx = torch.cat(parts)
        return self._train_idx

    def is_heldout(self, idx: torch.Tensor) -> torch.Tensor:
        return heldout_mask(idx, self.heldout, self.split_seed)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """(batch_size,) uniform random training voxels (with replacement), no index table."""
        out, have = [], 0
        while have < batch_size:
            idx = torch.randint(self.n_measurements, (int(batch_size * 1.2) + 16,), generator=generator)
            idx = idx[~self.is_heldout(idx)]
            out.append(idx)
            have += len(idx)
        return torch.cat(out)[:batch_size]

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        return index_coords(self.measurement_shape, idx)

    def batch(self, idx: torch.Tensor) -> Batch:
        return Batch(idx, self.points(idx), self.flat[idx].float()[:, None])

    def full_batch(self) -> Batch:
        if self.n_train > FULL_BATCH_LIMIT:
            raise InrlabError(f"{self.name}: a full batch of {self.n_train:,} voxels does not fit in "
                              f"memory: set train.batch_size (e.g. {DEFAULT_BATCH}) below "
                              f"{self.n_train:,}")
        return self.batch(self.train_idx)

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """BCE with logits (``pred`` are logits, ``y`` ∈ {0, 1})."""
        return F.binary_cross_entropy_with_logits(pred, y)

    def residual(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """σ(pred) − y: ∂BCE/∂logit."""
        return torch.sigmoid(pred) - y

    # ------------------------------------------------------------------ scoring
    def iou_counts(self, model: nn.Module, idx: torch.Tensor | None = None) -> dict[str, Any]:
        """IoU at probability 0.5 on training and held-out voxels: every voxel (``idx`` None, in
        chunks) or the voxels ``idx``. One pass per chunk: a histogram of the code 4·held-out +
        2·predicted + target, so the counts need no per-class masks."""
        n = self.n_measurements if idx is None else len(idx)
        ids = (lambda a, b: torch.arange(a, b)) if idx is None else (lambda a, b: idx[a:b])
        cnt = torch.zeros(8, dtype=torch.int64)
        for s, o in chunked(model, lambda a, b: self.points(ids(a, b)), n, self.vcfg.chunk):
            e = s + len(o)
            i = ids(s, e)
            gt = self.flat[s:e] if idx is None else self.flat[i]  # a view for whole volumes
            code = self.is_heldout(i).to(torch.uint8) * 4 + (o[:, 0] > 0).to(torch.uint8) * 2 + gt
            cnt += torch.bincount(code, minlength=8)
        c = cnt.view(2, 4)  # [train / held-out, (pred, target) = 00, 01, 10, 11]
        iou = [float(r[3] / (r[1] + r[2] + r[3])) if r[1:].sum() else None for r in c]
        return {"iou_train": iou[0], "iou_heldout": iou[1], "eval_voxels": n}

    def mesh_grid(self) -> tuple[int, int, int]:
        return grid_shape_for(self.measurement_shape, self.vcfg.mesh_size)

    def predicted_mesh(self, model: nn.Module) -> Any:
        """Marching cubes of σ(f) at 0.5 on the mesh grid, in the aspect-true frame."""
        logits = field_grid(model, self.mesh_grid(), self.vcfg.chunk)
        m = geo.marching_cubes(logits, level=0.0)
        if len(m.vertices):
            m.vertices = m.vertices * aspect(self.measurement_shape)
        return m

    def target_mesh(self) -> Any:
        """The ground-truth surface: the given mesh, else marching cubes of the target volume
        sampled (nearest voxel) on the mesh grid."""
        if self.gt_mesh is not None:
            return self.gt_mesh
        shape = self.mesh_grid()
        idx = [np.linspace(0, n - 1, m).round().astype(int)
               for n, m in zip(self.measurement_shape, shape, strict=True)]
        vol = self.volume.numpy()[np.ix_(*idx)].astype(np.float32)
        m = geo.marching_cubes(vol, level=0.5)
        if len(m.vertices):
            m.vertices = m.vertices * aspect(self.measurement_shape)
        return m

    def headline(self, metrics: dict[str, Any]) -> str:
        m = metrics
        return (f"IoU train {fmt_metric(m.get('iou_train'))}, held-out "
                f"{fmt_metric(m.get('iou_heldout'))}, Chamfer {fmt_metric(m.get('chamfer'))}")

    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """IoU on training / held-out voxels; ``structural``: every voxel plus marching-cubes mesh
        metrics (Chamfer, normal consistency); else a fixed random subset of
        ``signal.volume.eval_voxels`` voxels when the volume is larger."""
        if structural or self.n_measurements <= self.vcfg.eval_voxels:
            out = self.iou_counts(model)
        else:
            g = torch.Generator().manual_seed(1234)
            out = self.iou_counts(model, torch.randint(self.n_measurements, (self.vcfg.eval_voxels,),
                                                       generator=g))
        if structural and self.vcfg.mesh_size:
            m = geo.chamfer_normal_consistency(self.predicted_mesh(model), self.target_mesh())
            out.update(m)
        return out

    # ------------------------------------------------------------------ pictures
    def reference(self) -> GridData:
        """The volume on a coarse grid (longest side ``signal.volume.reference_size``, nearest
        voxel), occupancy in {0, 1}: what FreSh and norm statistics see."""
        shape = grid_shape_for(self.measurement_shape, min(self.vcfg.reference_size,
                                                           max(self.measurement_shape)))
        idx = [np.linspace(0, n - 1, m).round().astype(int)
               for n, m in zip(self.measurement_shape, shape, strict=True)]
        vol = self.volume.numpy()[np.ix_(*idx)]
        return GridData(grid_coords(shape, 0, math.prod(shape)), shape,
                        torch.from_numpy(vol.reshape(-1, 1).astype(np.float32)))

    def central_slices(self, model: nn.Module | None) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(target, σ(prediction)) of the three central axis slices."""
        d, h, w = self.measurement_shape
        out = []
        for ax in range(3):
            c = self.measurement_shape[ax] // 2
            sl: list[Any] = [slice(None)] * 3
            sl[ax] = c
            tgt = self.volume[tuple(sl)].numpy()
            pred = None
            if model is not None:
                grids = [np.arange(n) for n in (d, h, w)]
                grids[ax] = np.array([c])
                ii = torch.from_numpy(np.ravel_multi_index(
                    np.meshgrid(*grids, indexing="ij"), (d, h, w)).reshape(-1))
                o = torch.cat([o for _, o in chunked(model, lambda a, b, ii=ii: self.points(ii[a:b]),
                                                     len(ii), self.vcfg.chunk)])
                pred = torch.sigmoid(o[:, 0]).numpy().reshape(tgt.shape)
            out.append((tgt, pred))
        return out

    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        import matplotlib.pyplot as plt

        slices = self.central_slices(model)
        fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
        for k, (tgt, pred) in enumerate(slices):
            axes[0, k].imshow(tgt, cmap="gray", vmin=0, vmax=1)
            axes[0, k].set_title(f"target, axis {k} centre", fontsize=9)
            axes[1, k].imshow(pred, cmap="gray", vmin=0, vmax=1)
            axes[1, k].set_title("σ(prediction)", fontsize=9)
        for a in axes.ravel():
            a.axis("off")
        fig.tight_layout()
        fig.savefig(out / "slices.png", dpi=80)
        plt.close(fig)
        mesh = self.predicted_mesh(model) if self.vcfg.mesh_size else None
        if mesh is not None:
            geo.export_ply(mesh, out / "reconstruction.ply")
            mesh_figures(mesh, self.target_mesh(), out, self.name)
        curve(history, ("iou_train", "iou_heldout"), out / "summary.png", f"{self.name}: IoU")

    def preview(self) -> np.ndarray:
        tgt = self.central_slices(None)[0][0].astype(np.float64)
        return np.repeat(tgt[..., None], 3, axis=2)


# --------------------------------------------------------------------------- SDF

class SDF(Problem):
    """Signed distance (negative inside) at fixed sample points, fitted with L1 or MSE and an
    optional eikonal term; measurement i is the SDF at point i (``measurement_shape`` = (n,)).

    With ``eikonal > 0`` the operator returns (B, 2): the SDF and ‖∇ₓf‖ at the point, measured
    against (sdf, 1); the loss is L(sdf) + eikonal · mean((‖∇f‖ − 1)²).

    Args:
        points: (n, 3) float sample points in [−1, 1]³; sdf: (n,) their signed distances.
        mesh: the ground-truth surface (for Chamfer / IoU), in the same frame.
        occupancy: callable (P, 3) → (P,) bool inside test (for IoU on the mesh grid).
    """

    in_dim, out_dim = 3, 1
    identity = True
    data_range = None
    default_batch_size = 16_384
    outputs = ("reconstruction.ply", "surface.png", "slices.png", "summary.png")

    def __init__(self, points: np.ndarray, sdf: np.ndarray, mesh: Any, occupancy: Any, name: str,
                 heldout: float = 0.1, split_seed: int = 0, vcfg: VolumeConfig | None = None,
                 meta: dict[str, Any] | None = None, config: SignalConfig | None = None):
        from .grid import split

        self.name = name
        self.vcfg = vcfg if vcfg is not None else VolumeConfig()
        self.vcfg.validate()
        self.x = torch.as_tensor(points, dtype=torch.float32)
        self.y = torch.as_tensor(sdf, dtype=torch.float32).reshape(-1, 1)
        self.mesh, self.occupancy = mesh, occupancy
        self.measurement_shape = (len(self.x),)
        self.train_idx, self.heldout_idx = split(len(self.x), heldout, split_seed)
        self.eikonal = self.vcfg.eikonal
        self.config = config
        self.meta = {"kind": "sdf", "points": len(self.x), "heldout": heldout,
                     "surface": self.vcfg.surface, "near_fraction": self.vcfg.near_fraction,
                     "near_sigma": self.vcfg.near_sigma, "loss": self.vcfg.loss,
                     "eikonal": self.eikonal, **(meta or {})}

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[idx]

    def batch(self, idx: torch.Tensor) -> Batch:
        x = self.x[idx]
        y = self.y[idx]
        if self.eikonal > 0:
            x = x.clone().requires_grad_(True)
            y = torch.cat([y, torch.ones_like(y)], 1)
        return Batch(idx, x, y)

    def forward(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.eikonal <= 0:
            return out
        (g,) = torch.autograd.grad(out.sum(), batch.x, create_graph=True)
        return torch.cat([out, g.norm(dim=1, keepdim=True)], 1)

    def measure(self, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        p = next(model.parameters())
        return model(self.x[idx.cpu()].to(p.device, p.dtype))

    def _fit_loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = pred - y
        return d.abs().mean() if self.vcfg.loss == "l1" else (d ** 2).mean()

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L1/MSE on the SDF column (+ eikonal · mean((‖∇f‖ − 1)²) in the second)."""
        fit = self._fit_loss(pred[:, :1], y[:, :1])
        if pred.shape[1] == 1:
            return fit
        return fit + self.eikonal * ((pred[:, 1:] - 1) ** 2).mean()

    def residual(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """pred − y (MSE), sign(pred − y) (L1): ∂loss/∂pred up to a constant."""
        d = pred - y
        return d if self.vcfg.loss == "mse" else torch.sign(d)

    def mesh_grid(self) -> tuple[int, int, int]:
        return (self.vcfg.mesh_size,) * 3

    def predicted_mesh(self, model: nn.Module) -> Any:
        """Marching cubes of −f at 0 (inside = f < 0) on the mesh grid over [−1, 1]³."""
        return geo.marching_cubes(-field_grid(model, self.mesh_grid(), self.vcfg.chunk), level=0.0)

    def headline(self, metrics: dict[str, Any]) -> str:
        m = metrics
        return (f"mean |f − sdf| train {fmt_metric(m.get('sdf_l1_train'))}, held-out "
                f"{fmt_metric(m.get('sdf_l1_heldout'))}, IoU {fmt_metric(m.get('iou'))}")

    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """Mean |f − sdf| on training and held-out points; ``structural``: marching-cubes mesh
        metrics and IoU of {f < 0} with the true inside on the mesh grid."""
        pred = torch.cat([o for _, o in chunked(model, lambda a, b: self.x[a:b], len(self.x),
                                                self.vcfg.chunk)])[:, :1]
        err = (pred - self.y).abs()
        out: dict[str, Any] = {"sdf_l1_train": float(err[self.train_idx].mean()),
                               "sdf_l1_heldout": float(err[self.heldout_idx].mean())
                               if len(self.heldout_idx) else None}
        if structural and self.vcfg.mesh_size:
            s = self.vcfg.mesh_size
            f = field_grid(model, self.mesh_grid(), self.vcfg.chunk)
            truth = self.occupancy(geo.grid_points((s, s, s))).reshape(s, s, s)
            out["iou"] = geo.iou(f < 0, truth)
            out.update(geo.chamfer_normal_consistency(geo.marching_cubes(-f, level=0.0), self.mesh))
        return out

    def reference(self) -> GridData:
        """The true inside indicator (1 inside, 0 outside) on a coarse cube grid."""
        s = min(self.vcfg.reference_size, 64)
        pts = geo.grid_points((s, s, s))
        occ = self.occupancy(pts).astype(np.float32)
        return GridData(torch.as_tensor(pts, dtype=torch.float32), (s, s, s),
                        torch.from_numpy(occ.reshape(-1, 1)))

    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        import matplotlib.pyplot as plt

        s = max(self.vcfg.mesh_size, 64)
        a = np.linspace(-1, 1, s)
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
        for k, ax in enumerate(axes):
            u, v = np.meshgrid(a, a, indexing="ij")
            p = np.insert(np.stack([u.ravel(), v.ravel()], 1), k, 0.0, axis=1)
            f = torch.cat([o for _, o in chunked(model, lambda i, j, p=p: torch.as_tensor(p[i:j]),
                                                 len(p), self.vcfg.chunk)])[:, 0].numpy()
            f = f.reshape(s, s)
            lim = float(np.abs(f).max()) or 1.0
            ax.imshow(f, cmap="RdBu", vmin=-lim, vmax=lim, extent=(-1, 1, 1, -1))
            ax.contour(a, a, f, levels=[0.0], colors="k", linewidths=1)
            ax.contour(a, a, self.occupancy(p).reshape(s, s).astype(float), levels=[0.5],
                       colors="lime", linewidths=0.8, linestyles="--")
            ax.set_title(f"f on the plane axis {k} = 0 (black: f = 0, green: truth)", fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "slices.png", dpi=80)
        plt.close(fig)
        if self.vcfg.mesh_size:
            mesh = self.predicted_mesh(model)
            geo.export_ply(mesh, out / "reconstruction.ply")
            mesh_figures(mesh, self.mesh, out, self.name)
        curve(history, ("sdf_l1_train", "sdf_l1_heldout"), out / "summary.png",
              f"{self.name}: mean |f − sdf|")


def sample_sdf(mesh: Any, vcfg: VolumeConfig, seed: int, sdf_fn: Any | None = None,
               method: str = "ray") -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3), sdf (n,)): ``surface`` on the mesh (sdf 0), ``near`` = surface samples +
    N(0, near_sigma²) offsets, the rest uniform in [−1, 1]³. ``sdf_fn`` (P, 3) → (P,) replaces the
    mesh's signed distance (analytic shapes)."""
    import trimesh

    n = vcfg.points
    n_s, n_n = round(n * vcfg.surface), round(n * vcfg.near_fraction)
    rng = np.random.default_rng(seed)
    surf, _ = trimesh.sample.sample_surface(mesh, n_s + n_n, seed=seed)
    near = surf[n_s:] + rng.normal(0, vcfg.near_sigma, (n_n, 3))
    uni = rng.uniform(-1, 1, (n - n_s - n_n, 3))
    off = np.clip(np.concatenate([near, uni]), -1, 1)
    d_off = sdf_fn(off) if sdf_fn is not None else geo.signed_distance(mesh, off, method)
    pts = np.concatenate([surf[:n_s], off])
    return pts, np.concatenate([np.zeros(n_s), d_off])


# --------------------------------------------------------------------------- builders

def _mesh_source(source: str, vcfg: VolumeConfig) -> tuple[str, Any, Any, Any | None]:
    """(name, normalized mesh, inside(P,3)→bool, analytic sdf or None) of a mesh or ``sphere``."""
    name, path = resolve(source)
    if path is None:
        return (name, sphere_mesh(), lambda p: np.linalg.norm(p, axis=1) < SPHERE_RADIUS,
                lambda p: np.linalg.norm(p, axis=1) - SPHERE_RADIUS)
    if not geo.is_mesh_path(path):
        raise InrlabError(f"{str(path)!r} is not a mesh (OBJ/PLY/STL/GLB/OFF, optionally .gz): "
                          f"an SDF needs a surface")
    mesh = geo.normalize_mesh(geo.load_mesh(path))
    if vcfg.inside == "ray" and not mesh.is_watertight:
        raise InrlabError(f"mesh {str(path)!r} is not watertight, so the ray inside test is "
                          f"undefined: repair it, or use the winding-number route "
                          f"(--signal.volume.inside winding; slow, O(points × faces))")
    return name, mesh, (lambda p: geo.inside(mesh, p, vcfg.inside)), None


def build_occupancy(cfg: SignalConfig) -> Occupancy:
    """``occ:SOURCE``: ``thai``, ``bunny``, ``sphere``, or a .mat/.mat.zip/.npy/mesh path."""
    source = cfg.name.split(":", 1)[1]
    v = cfg.volume
    heldout = 0.1 if cfg.heldout is None else cfg.heldout
    name, path = resolve(source)
    lower = str(path).lower() if path is not None else ""
    meta: dict[str, Any] = {"source": source}
    gt_mesh = None
    if path is None or geo.is_mesh_path(path):
        _, gt_mesh, inside_fn, _ = _mesh_source(source, v)
        side = v.size or 128
        vol = inside_fn(geo.grid_points((side, side, side))).reshape(side, side, side)
        meta.update(made="inside test of the mesh (normalized to [−0.9, 0.9]) at voxel centres",
                    inside=v.inside if path is not None else "analytic")
    else:
        if lower.endswith((".mat", ".mat.zip", ".zip")):
            a = load_mat(path)
        elif lower.endswith(".npy"):
            try:
                a = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise InrlabError(f"cannot read {str(path)!r} as .npy ({e})") from None
        else:
            raise InrlabError(f"{str(path)!r}: give a .mat, .mat.zip, .npy or mesh file")
        vol = check_occupancy(a, f"{str(path)!r}")
        meta["original_shape"] = list(vol.shape)
        if v.crop:
            vol = crop_to_bbox(vol)
            meta["cropped_shape"] = list(vol.shape)
        if v.size is not None:
            vol = resample(vol, v.size)
    return Occupancy(vol, name, heldout, cfg.split_seed, v, gt_mesh, meta, config=cfg)


def build_sdf(cfg: SignalConfig) -> SDF:
    """``sdf:SOURCE``: ``bunny``, ``sphere`` or a mesh path; points sampled once (seed split_seed)."""
    source = cfg.name.split(":", 1)[1]
    v = cfg.volume
    name, mesh, inside_fn, sdf_fn = _mesh_source(source, v)
    pts, d = sample_sdf(mesh, v, cfg.split_seed, sdf_fn, v.inside)
    heldout = 0.1 if cfg.heldout is None else cfg.heldout
    return SDF(pts, d, mesh, inside_fn, name, heldout, cfg.split_seed, v,
               {"source": source, "distance": "analytic" if sdf_fn is not None else
                "kd-candidate exact point-triangle (inrlab.geometry)"}, config=cfg)
