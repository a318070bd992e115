"""Images: any file Pillow reads, or the name of an image shipped inside scikit-image."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import png
import torch

from ..config import SignalConfig
from ..errors import InrlabError
from ..limits import check_memory, max_image_pixels
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


# Kodak names of older inrlab versions (``@kodak/kodim01.png``, ``kodim01``, ``kodak/kodim01.png``)
OLD_KODAK = re.compile(r"@?(?:kodak/)?(kodim\d+)(?:\.png)?")


def resolve_source(source: str) -> str:
    """``kodak:kodim03`` → the Kodak PNG inside the benchmark data folder (``$INRLAB_DATA``), the
    one way to name benchmark images; an old form that is no file is a one-line error."""
    old = OLD_KODAK.fullmatch(source)
    if old and not Path(source).is_file():
        raise InrlabError(f"image {source!r} not found: name Kodak images kodak:{old.group(1)} "
                          f"(read from $INRLAB_DATA/kodak/)")
    if not source.startswith("kodak:"):
        return source
    from ..data import data_dir

    name = source.split(":", 1)[1]
    return str(data_dir(required=True) / "kodak" / f"{name}.png")


def load_array(source: str) -> np.ndarray:
    """Read ``source`` (path, ``kodak:NAME`` or embedded name) into an (H, W[, C]) array of the
    file's own dtype (uint8, uint16, float32, …), so no precision is lost before :func:`to_unit`."""
    source = resolve_source(source)
    p = Path(source)
    if p.suffix or p.exists() or "/" in source:
        if not p.is_file():
            raise InrlabError(f"image file {source!r} not found: check the path "
                              f"(or use an embedded name such as 'astronaut')")
        try:
            if p.suffix.lower() in (".tif", ".tiff"):
                return _read_tiff(p)
            return _read_pillow(p)
        except (OSError, ValueError, SyntaxError, EOFError, png.Error) as e:
            if isinstance(e, InrlabError):
                raise
            raise InrlabError(f"cannot read image {source!r} ({_first_line(e)}): give a "
                              f"PNG/JPEG/TIFF file") from None
    return load_embedded(source)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _check_pixels(path: Path, h: int, w: int) -> None:
    """Refuse images over the pixel limit before decoding them (decompression bombs)."""
    limit = max_image_pixels()
    if h * w > limit:
        raise InrlabError(f"image {str(path)!r} has {w}×{h} = {w * h:,} pixels, over the limit of "
                          f"{limit:,}: shrink it, or raise INRLAB_MAX_IMAGE_PIXELS if it is "
                          f"trusted")


def _read_pillow(path: Path) -> np.ndarray:
    """Any format Pillow reads; 16-bit PNGs (which Pillow cuts to 8 bits in colour) via pypng."""
    from PIL import Image as PILImage

    PILImage.MAX_IMAGE_PIXELS = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            im = PILImage.open(path)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as e:
        raise InrlabError(f"image {str(path)!r} is too large ({_first_line(e)}): shrink it, or "
                          f"raise INRLAB_MAX_IMAGE_PIXELS if it is trusted") from None
    with im:
        _check_pixels(path, im.height, im.width)
        if im.format == "PNG" and _png_bitdepth(path) == 16:
            return _read_png16(path)
        im.load()
        mode = im.mode
        if mode in ("P", "PA"):
            im = im.convert("RGBA")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            im = im.convert("RGB")
        a = np.asarray(im)
        if mode == "I":  # 32-bit container; Pillow decodes 16-bit data (PGM, …) into it
            if a.size and (a.min() < 0 or a.max() > 65535):
                raise InrlabError(f"image {str(path)!r} holds 32-bit integers outside 0…65535: "
                                  f"save it as 8/16-bit or float")
            a = a.astype(np.uint16)
        return a


def _png_bitdepth(path: Path) -> int:
    r = png.Reader(filename=str(path))
    r.preamble()
    return int(r.bitdepth)


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG (gray, gray+alpha, RGB, RGBA) as uint16 (H, W[, C])."""
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    a = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    return a[..., 0] if info["planes"] == 1 else a


def _read_tiff(path: Path) -> np.ndarray:
    """A TIFF of any sample type (uint8/16, float16/32/64, …) with tifffile, first page/series."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        shape = tf.series[0].shape
        if len(shape) < 2:
            raise InrlabError(f"TIFF {str(path)!r} holds no 2-D image (shape {shape})")
        axes = tf.series[0].axes
        h, w = (shape[axes.index("Y")], shape[axes.index("X")]) if "Y" in axes and "X" in axes \
            else shape[:2]
        _check_pixels(path, h, w)
        a = tf.series[0].asarray()
    if a.ndim == 3 and a.shape[0] in (1, 2, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # planar (C, H, W) → (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


def to_unit(a: np.ndarray) -> np.ndarray:
    """Image of any dtype → float64 in [0, 1], normalised by the true range of its dtype
    (uint8 / 255, uint16 / 65535, signed integers from their minimum); floats already in
    [0, 1] are kept, other floats are rescaled from their own min–max. Alpha is dropped."""
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        a = (a.astype(np.float64) - info.min) / (float(info.max) - info.min)
    else:
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise InrlabError("image has NaN or inf pixels: clean the file")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        if lo < 0 or hi > 1:
            a = (a - lo) / max(hi - lo, 1e-12)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., :-1]
    return a


def pixel_bytes(pixels: int, channels: int) -> int:
    """Bytes an image signal of ``pixels`` × ``channels`` costs while it is built: float64
    resize input and output, float32 targets, (y, x) coordinates, split indices and permutation."""
    return pixels * (24 * channels + 48)


class Image(Signal):
    """A gray or RGB image; coordinates (y, x) on linspace(-1, 1) grids, targets in [-1, 1]
    (``value_range="signed"``, the default) or in [0, 1] (``"unit"``, the normalization paper's
    code). PSNR, SSIM and saved pictures are those of the [0, 1] image either way.

    A fixed random ``heldout`` fraction of pixels is never trained on and scored separately.
    """

    def __init__(self, source: str | np.ndarray, size: int | None = None, gray: bool = False,
                 heldout: float = 0.1, split_seed: int = 0, name: str | None = None,
                 value_range: str = "signed"):
        from ..config import IMAGE_RANGES, check_choice

        check_choice("signal.range", value_range, IMAGE_RANGES)
        self.unit = value_range == "unit"
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
            check_memory(f"image {name or source if isinstance(source, str) else 'array'} at "
                         f"size {size}", pixel_bytes(round(h * s) * round(w * s), a.shape[2]),
                         "choose a smaller signal.size")
            a = resize(a, (max(1, round(h * s)), max(1, round(w * s))), anti_aliasing=s < 1)
        h, w, c = a.shape
        if min(h, w) < 2:
            raise InrlabError(f"image of {h}×{w} pixels is too small: need at least 2×2")
        ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
        tr, ho = split(h * w, heldout, split_seed)
        label = name or (source if isinstance(source, str) else "array")
        label = Path(label.split(":")[-1]).stem if isinstance(source, str) else label
        values = a.reshape(-1, c) if self.unit else a.reshape(-1, c) * 2 - 1
        meta = {"kind": "image", "source": source if isinstance(source, str) else "array",
                "shape": [h, w, c], "gray": gray, "size": size, "heldout": heldout}
        if self.unit:
            meta["range"] = value_range
        super().__init__(name=label, coords=coords,
                         targets=torch.tensor(values, dtype=torch.float32),
                         grid_shape=(h, w), train_idx=tr, heldout_idx=ho,
                         value_range=(0.0, 1.0) if self.unit else (-1.0, 1.0), meta=meta,
                         config=SignalConfig(source, size, gray, heldout, split_seed=split_seed,
                                             range=value_range)
                         if isinstance(source, str) else None)

    def to_image(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, C) values in the target range → (H, W, C) float array in [0, 1] (clipped)."""
        v = self.grid(values)
        return np.clip(v if self.unit else (v + 1) / 2, 0, 1)

    def score(self, pred: np.ndarray | torch.Tensor, structural: bool = True) -> dict[str, Any]:
        out = super().score(pred)
        if not structural:
            return out
        p, y = self.to_image(pred), self.to_image(self.targets)
        out["ssim"] = ssim(p, y) if min(self.grid_shape) >= 11 else None
        out["ms_ssim"] = ms_ssim(p, y)
        return out

    def subset_scores(self, pred: np.ndarray) -> dict[str, float | None]:
        """PSNR, SSIM, MS-SSIM of the training and held-out pixels (``psnr_train`` …) of a
        prediction (N, C). SSIM / MS-SSIM of a subset are those of the composite image taking the
        prediction at the subset's pixels and the target elsewhere (so only that subset's errors
        count)."""
        from ..train.metrics import psnr

        p = self.to_image(pred).reshape(self.n, -1)
        y = self.to_image(self.targets).reshape(self.n, -1)
        out: dict[str, float | None] = {}
        for name, idx in (("train", self.train_idx.numpy()), ("heldout", self.heldout_idx.numpy())):
            comp = y.copy()
            comp[idx] = p[idx]
            img, ref = comp.reshape(*self.grid_shape, -1), y.reshape(*self.grid_shape, -1)
            out[f"psnr_{name}"] = psnr(p[idx], y[idx], 1.0)
            out[f"ssim_{name}"] = ssim(img, ref)
            out[f"ms_ssim_{name}"] = ms_ssim(img, ref)
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
                 heldout=0.1 if cfg.heldout is None else cfg.heldout, split_seed=cfg.split_seed,
                 value_range=cfg.range)
