"""Images: any file Pillow reads, or the name of an image shipped inside scikit-image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SignalConfig
from ..errors import InrlabError
from ..train.metrics import ms_ssim, ssim
from .grid import Signal, split

# name → scikit-image loader (all ship inside the package: no download at run time)
EMBEDDED = ("astronaut", "camera", "chelsea", "coffee", "brick", "gravel", "grass", "phantom",
            "rocket", "cat", "moon", "coins", "clock", "text", "immunohistochemistry", "colorwheel")


def load_embedded(name: str) -> np.ndarray:
    import skimage.data as d

    if name not in EMBEDDED:
        raise InrlabError(f"unknown image name {name!r}: give a file path or one of "
                          f"{', '.join(EMBEDDED)}")
    return d.shepp_logan_phantom() if name == "phantom" else getattr(d, name)()


def resolve_source(source: str) -> str:
    """``kodak:kodim03`` → the Kodak PNG inside the benchmark data folder (``$INRLAB_DATA``)."""
    if not source.startswith("kodak:"):
        return source
    from ..data import data_dir

    name = source.split(":", 1)[1]
    return str(data_dir(required=True) / "kodak" / f"{name}.png")


def load_array(source: str) -> np.ndarray:
    """Read ``source`` (path, ``kodak:NAME`` or embedded name) into an (H, W[, C]) array."""
    source = resolve_source(source)
    p = Path(source)
    if p.suffix or p.exists() or "/" in source:
        if not p.is_file():
            raise InrlabError(f"image file {source!r} not found: check the path "
                              f"(or use an embedded name such as 'astronaut')")
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        try:
            with PILImage.open(p) as im:
                im.load()
                return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else
                                             ("L" if im.mode in ("L", "1", "I", "I;16", "F")
                                              else "RGB")))
        except (UnidentifiedImageError, OSError) as e:
            raise InrlabError(f"cannot read image {source!r} ({e}): give a PNG/JPEG/TIFF file") \
                from None
    return load_embedded(source)


def to_unit(a: np.ndarray) -> np.ndarray:
    """Integer/bool/float image → float64 in [0, 1]; alpha dropped."""
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    else:
        a = a.astype(np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        if lo < 0 or hi > 1:
            a = (a - lo) / max(hi - lo, 1e-12)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., :-1]
    if not np.all(np.isfinite(a)):
        raise InrlabError("image has NaN or inf pixels: clean the file")
    return a


class Image(Signal):
    """A gray or RGB image; coordinates (y, x) on linspace(-1, 1) grids, targets in [-1, 1].

    A fixed random ``heldout`` fraction of pixels is never trained on and scored separately.
    """

    def __init__(self, source: str | np.ndarray, size: int | None = None, gray: bool = False,
                 heldout: float = 0.1, split_seed: int = 0, name: str | None = None):
        a = to_unit(load_array(source) if isinstance(source, str) else np.asarray(source))
        if a.ndim not in (2, 3):
            raise InrlabError(f"an image must be (H, W) or (H, W, C), got shape {a.shape}")
        if gray and a.ndim == 3:
            from skimage.color import rgb2gray

            a = rgb2gray(a) if a.shape[2] == 3 else a[..., 0]
        if a.ndim == 2:
            a = a[..., None]
        if size is not None and size != max(a.shape[:2]):
            from skimage.transform import resize

            h, w = a.shape[:2]
            s = size / max(h, w)
            a = resize(a, (max(1, round(h * s)), max(1, round(w * s))), anti_aliasing=s < 1)
        h, w, c = a.shape
        if min(h, w) < 2:
            raise InrlabError(f"image of {h}×{w} pixels is too small: need at least 2×2")
        ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
        tr, ho = split(h * w, heldout, split_seed)
        label = name or (source if isinstance(source, str) else "array")
        label = Path(label.split(":")[-1]).stem if isinstance(source, str) else label
        super().__init__(name=label, coords=coords,
                         targets=torch.tensor(a.reshape(-1, c) * 2 - 1, dtype=torch.float32),
                         grid_shape=(h, w), train_idx=tr, heldout_idx=ho,
                         meta={"kind": "image", "source": source if isinstance(source, str)
                               else "array", "shape": [h, w, c], "gray": gray, "size": size,
                               "heldout": heldout},
                         config=SignalConfig(source, size, gray, heldout, split_seed=split_seed)
                         if isinstance(source, str) else None)

    def to_image(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, C) values in [-1, 1] → (H, W, C) float array in [0, 1] (clipped)."""
        return np.clip((self.grid(values) + 1) / 2, 0, 1)

    def score(self, pred: np.ndarray | torch.Tensor, structural: bool = True) -> dict[str, Any]:
        out = super().score(pred)
        if not structural:
            return out
        p, y = self.to_image(pred), self.to_image(self.targets)
        out["ssim"] = ssim(p, y) if min(self.grid_shape) >= 11 else None
        out["ms_ssim"] = ms_ssim(p, y)
        return out

    def preview(self) -> np.ndarray:
        return self.to_image(self.targets)

    def save_outputs(self, model: torch.nn.Module, out: Path, history: list[dict[str, Any]]) -> None:
        from ..models import predict
        from ..plots import image_panels, save_image

        dev = next(model.parameters()).device
        pred = self.to_image(predict(model, self.coords.to(dev)).float().cpu())
        save_image(pred, out / "reconstruction.png")
        image_panels(self.preview(), pred, history, out / "summary.png", self.name)


def build_image(cfg: SignalConfig) -> Image:
    """An :class:`Image` from a path, ``kodak:NAME`` or an embedded name (heldout default 0.1)."""
    name = cfg.name[len("image:"):] if cfg.name.startswith("image:") else cfg.name
    return Image(name, size=cfg.size, gray=cfg.gray,
                 heldout=0.1 if cfg.heldout is None else cfg.heldout, split_seed=cfg.split_seed)
