"""Dataclass configs: one printable, serializable object describes a whole experiment.

Every field is reachable by a dotted path (``model.encoding.sigma``), which is what the CLI's
``--model.encoding.sigma 10`` overrides, TOML config files and FreSh sweeps use.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tomllib

from .errors import InrlabError
from .files import check_nesting, read_text
from .registry import ACTIVATIONS, ENCODINGS, NORMS, TECHNIQUES, Registry

if TYPE_CHECKING:
    from torch import nn

SCHEDULES = ("constant", "step", "exponential", "cosine")
NORM_PLACEMENTS = ("auto", "pre", "post", "scaled")  # model.norm_placement (models.mlp.hidden_layer)


# --------------------------------------------------------------------------- components


@dataclass
class Component:
    """The config of one kind of a component family; ``kind`` names it (its dotted path is
    ``<path>.kind``), the other fields are that kind's settings.

    Each family (encodings, activations, norms) subclasses this once with its ``registry`` and
    ``path``; each kind subclasses the family and registers itself. Calling the family class
    builds the registered kind: ``EncodingConfig(kind="fourier", sigma=5)`` is a
    ``FourierEncoding``. ``positive`` names the fields that must be finite numbers > 0."""

    kind: str = ""
    registry: ClassVar[Registry[Any]]
    path: ClassVar[str]
    positive: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if "registry" in cls.__dict__:  # a family: build its registered kind
            if args:
                raise InrlabError(f"{cls.__name__}(…) takes keyword arguments only")
            cls = cls.registry[kwargs.get("kind", _default(cls, "kind"))]
            check_fields(cls, kwargs, cls.path + ".")
        return object.__new__(cls)

    @classmethod
    def _concrete(cls, data: dict[str, Any]) -> type:
        """The registered class of ``data["kind"]`` (the family's default kind when absent)."""
        if "registry" not in cls.__dict__:
            return cls
        return cls.registry[data.get("kind", _default(cls, "kind"))]

    def validate(self) -> None:
        if self.kind != _default(type(self), "kind"):
            raise InrlabError(f"{self.path}.kind was assigned directly ({self.kind!r} on a "
                              f"{type(self).__name__}): use config.set_field(cfg, "
                              f"'{self.path}.kind', {self.kind!r}), which switches the section")
        for name in self.positive:
            check_positive(f"{self.path}.{name}", getattr(self, name))


@dataclass
class EncodingConfig(Component):
    """Coordinate encoding (``model.encoding``); kinds in ``inrlab/models/encodings.py``."""

    kind: str = "identity"
    registry: ClassVar[Registry[Any]] = ENCODINGS
    path: ClassVar[str] = "model.encoding"

    def setup(self, in_dim: int) -> nn.Module:
        """The encoding module for ``in_dim``-D coordinates: (N, in_dim) → (N, module.out_dim)."""
        raise NotImplementedError


@dataclass
class ActivationConfig(Component):
    """Hidden-layer nonlinearity (``model.activation``); kinds in ``inrlab/models/activations.py``."""

    kind: str = "relu"
    registry: ClassVar[Registry[Any]] = ACTIVATIONS
    path: ClassVar[str] = "model.activation"
    # where a norm goes when model.norm_placement is auto (pre: Linear → norm → act)
    norm_placement: ClassVar[str] = "pre"

    def setup(self, first: bool) -> nn.Module:
        """The elementwise activation after the first (``first``) or a later hidden layer."""
        raise NotImplementedError

    def init_linear(self, layer: nn.Linear, first: bool) -> None:
        """Initialise the linear layer feeding this activation (``first``: the input layer; the
        head counts as a later layer). Default: PyTorch's own initialisation."""

    def linear_scales(self, first: bool) -> tuple[float, float]:
        """(s_w, s_b): the hidden linear layer feeding this activation computes
        (s_w·W) x + s_b·b (``models.mlp.ScaledLinear``); (1, 1), the default, is a plain
        ``nn.Linear``."""
        return 1.0, 1.0

    def head_scales(self) -> tuple[float, float]:
        """(s_w, s_b) of the linear head, as :meth:`linear_scales`; default (1, 1)."""
        return 1.0, 1.0


@dataclass
class NormConfig(Component):
    """Normalization of the hidden layers, chosen by ``model.norm`` (a kind name); kinds in
    ``inrlab/models/norms.py``."""

    kind: str = "none"
    registry: ClassVar[Registry[Any]] = NORMS
    path: ClassVar[str] = "model.norm"

    def setup(self, channels: int, momentum: float) -> nn.Module:
        """The norm layer for (N, channels) activations; ``momentum`` of running statistics."""
        raise NotImplementedError


@dataclass
class TechniqueConfig:
    """Base of a technique's config section ``train.<name>`` (``IGA.config`` → ``train.iga``)."""

    def validate(self) -> None:
        """Raise :class:`InrlabError` for impossible settings."""


VIEW_ENCODINGS = ("sh", "positional")


@dataclass
class ViewConfig:
    """Radiance fields only (``nerf:…`` problems): the colour branch that sees view directions.

    The position network (encoding → hidden layers) emits density and ``geo_features`` geometry
    features; the colour network maps [features, encoded view direction] through ``colour_depth``
    ReLU layers of ``colour_width`` to RGB. (Names are distinct from the position network's so
    that ``--width``, ``--depth`` stay unambiguous on the command line.)"""

    dir_encoding: str = "sh"  # sh: real spherical harmonics, bands < sh_degree; positional: PE
    sh_degree: int = 4  # sh: bands 0 … degree-1, degree² coefficients (1 … 5)
    dir_frequencies: int = 4  # positional: frequencies 2^i·π of the direction, i < dir_frequencies
    geo_features: int = 15  # geometry features passed from the position to the colour network
    colour_width: int = 64
    colour_depth: int = 1

    def validate(self) -> None:
        check_choice("model.view.dir_encoding", self.dir_encoding, VIEW_ENCODINGS)
        if not 1 <= self.sh_degree <= 5:
            raise InrlabError(f"model.view.sh_degree={self.sh_degree} must lie in 1 … 5")
        check_positive("model.view.dir_frequencies", self.dir_frequencies)
        check_positive("model.view.geo_features", self.geo_features)
        check_positive("model.view.colour_width", self.colour_width)
        if self.colour_depth < 0:
            raise InrlabError("model.view.colour_depth must be ≥ 0")


@dataclass
class ModelConfig:
    """encoding → ``depth`` hidden layers (Linear → norm → activation) of ``width`` → linear head."""

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    norm: str = "none"  # hidden-layer normalization: none, batch, layer, global, cross (+ plugins)
    width: int = 256
    depth: int = 3
    norm_momentum: float = 0.1  # running statistics of batch/global/cross norms
    # where a hidden layer's norm sits: pre (Linear → norm → act), post (Linear → act → norm),
    # scaled (Linear → norm → ÷ω₀ → act: sine/FINER/WIRE get a unit-variance argument ω₀·z),
    # auto (the activation's choice: post for sine and FINER, pre for the others)
    norm_placement: str = "auto"
    view: ViewConfig = field(default_factory=ViewConfig)  # radiance fields: the colour branch

    def validate(self) -> None:
        self.encoding.validate()
        self.activation.validate()
        self.view.validate()
        check_choice("model.norm", self.norm, tuple(NORMS))
        check_choice("model.norm_placement", self.norm_placement, NORM_PLACEMENTS)
        check_positive("model.width", self.width)
        check_positive("model.depth", self.depth)
        if not 0 < self.norm_momentum <= 1:
            raise InrlabError("model.norm_momentum must lie in (0, 1]")

    def placement(self) -> str:
        """The norm placement in effect: ``norm_placement`` resolved (``auto`` → the
        activation's ``norm_placement``), and ``pre`` when there is no norm (no difference)."""
        if self.norm == "none":
            return "pre"
        if self.norm_placement == "auto":
            return self.activation.norm_placement
        return self.norm_placement

    def setup_norm(self) -> nn.Module:
        """One hidden layer's normalization, (N, width) → (N, width)."""
        return NORMS[self.norm](kind=self.norm).setup(self.width, self.norm_momentum)


@dataclass
class TrainConfig:
    """Optimisation: Adam, a learning-rate schedule, batching, logging and checkpoints.

    Every registered technique with a ``config`` class adds its section (``train.iga``,
    ``train.fr``): ``TrainConfig()`` builds the class that has them (:func:`train_config_class`)."""

    steps: int = 2000
    lr: float = 1e-3
    schedule: str = "constant"  # constant, step, exponential, cosine
    lr_final: float = 0.1  # exponential / cosine: final lr as a fraction of lr
    milestones: list[int] = field(default_factory=list)  # step schedule: multiply by gamma at each
    gamma: float = 0.1  # step schedule: lr factor at each milestone
    batch_size: int | None = None  # None: full batch of the training points
    eval_every: int = 100  # steps between evaluations (metrics over time)
    checkpoint_every: int = 500  # steps between checkpoints (resume continues from the last)
    seed: int = 0  # seeds initialisation and batches: a run is reproduced exactly on one device
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1, …
    technique: str = "mse"  # how gradients are formed: mse (plain), iga, fr (+ plugins)
    adam_eps: float = 1e-8  # Adam's ε
    compile: bool = False  # torch.compile the training forward/backward (see train/compile.py)
    diagnostics_every: int = 0  # record band errors Δ_k every k steps into RUN/diagnostics (0: off)
    ntk_steps: list[int] = field(default_factory=list)  # steps (0: init) to record eNTK spectra at
    ntk_points: int = 256  # random training points the diagnostic eNTK is computed on

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is TrainConfig:
            cls = train_config_class()
            check_fields(cls, kwargs, "train.")
        return object.__new__(cls)

    @classmethod
    def _concrete(cls, data: dict[str, Any]) -> type:
        return train_config_class()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # the class is built at run time
        return from_dict, (TrainConfig, asdict(self))

    def validate(self) -> None:
        check_positive("train.steps", self.steps)
        check_positive("train.lr", self.lr)
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_positive("train.lr_final", self.lr_final)
        check_positive("train.gamma", self.gamma)
        check_positive("train.eval_every", self.eval_every)
        check_positive("train.checkpoint_every", self.checkpoint_every)
        check_positive("train.adam_eps", self.adam_eps)
        if self.batch_size is not None:
            check_positive("train.batch_size", self.batch_size)
        if self.diagnostics_every < 0:
            raise InrlabError("train.diagnostics_every must be ≥ 0 (0 turns band errors off)")
        if any(s < 0 for s in self.ntk_steps):
            raise InrlabError("train.ntk_steps must be step numbers ≥ 0 (0: initialization)")
        check_positive("train.ntk_points", self.ntk_points)
        if any(m <= 0 for m in self.milestones):
            raise InrlabError("train.milestones must be positive step numbers")
        for name in technique_sections():
            getattr(self, name).validate()


def technique_sections() -> dict[str, type]:
    """Section name → config class of every registered technique that has one."""
    return {name: t.config for name, t in TECHNIQUES.items() if getattr(t, "config", None)}


_TRAIN_CLASSES: dict[tuple[tuple[str, type], ...], type] = {}


def train_config_class() -> type:
    """:class:`TrainConfig` with one field per technique section (built once per set of
    registered techniques, so a plugin technique's section is a field like ``train.iga``)."""
    sections = technique_sections()
    key = tuple(sections.items())
    if key not in _TRAIN_CLASSES:
        _TRAIN_CLASSES[key] = dataclasses.make_dataclass(
            "TrainConfig", [(n, c, field(default_factory=c)) for n, c in sections.items()],
            bases=(TrainConfig,), namespace={"__doc__": TrainConfig.__doc__})
        _TRAIN_CLASSES[key].__module__ = __name__
    return _TRAIN_CLASSES[key]


SDF_LOSSES = ("l1", "mse")
INSIDE_METHODS = ("ray", "winding")


@dataclass
class VolumeConfig:
    """3-D shapes (``occ:…``, ``sdf:…``): resampling, evaluation chunks and SDF point sampling."""

    size: int | None = None  # longest side after resampling (.mat/.npy); grid side for meshes (128)
    crop: bool = True  # .mat/.npy: crop to the occupied bounding box first (as the papers)
    inside: str = "ray"  # meshes: inside test, ray parity (watertight) or winding number (any)
    chunk: int | None = None  # points per evaluation forward pass (None: 4 096 on CPUs, 262 144 on GPUs)
    eval_voxels: int = 4_194_304  # periodic evaluations score at most this many random voxels
    mesh_size: int = 128  # marching-cubes grid (longest side) for mesh metrics and outputs; 0: off
    reference_size: int = 64  # longest side of the reference grid (FreSh, norm statistics)
    points: int = 100_000  # sdf: sampled points (surface + near-surface + uniform)
    surface: float = 0.4  # sdf: fraction of points on the surface
    near_fraction: float = 0.4  # sdf: fraction near the surface (Gaussian offsets); the rest uniform
    near_sigma: float = 0.02  # sdf: std of the near-surface offsets ([−1, 1]³ units)
    loss: str = "l1"  # sdf: l1 | mse
    eikonal: float = 0.0  # sdf: weight of the eikonal term mean((‖∇f‖ − 1)²); 0: off

    def validate(self) -> None:
        if self.size is not None and self.size < 2:
            raise InrlabError(f"signal.volume.size={self.size} is impossible: it must be ≥ 2")
        check_choice("signal.volume.inside", self.inside, INSIDE_METHODS)
        check_choice("signal.volume.loss", self.loss, SDF_LOSSES)
        for name in ("chunk", "eval_voxels", "points", "near_sigma", "reference_size"):
            if getattr(self, name) is not None:
                check_positive(f"signal.volume.{name}", getattr(self, name))
        if self.mesh_size < 0 or self.mesh_size == 1:
            raise InrlabError(f"signal.volume.mesh_size={self.mesh_size}: use 0 (off) or ≥ 2")
        if self.surface < 0 or self.near_fraction < 0 or self.surface + self.near_fraction > 1:
            raise InrlabError("signal.volume.surface and .near_fraction are fractions ≥ 0 summing to ≤ 1")
        if self.eikonal < 0:
            raise InrlabError(f"signal.volume.eikonal={self.eikonal} must be ≥ 0")


@dataclass
class VideoConfig:
    """Video clips (``video:…``): which frames, at which size."""

    frames: int | None = None  # keep at most this many frames (after the stride)
    start: int = 0  # first frame
    stride: int = 1  # keep every stride-th frame
    size: int | None = None  # resize frames so the longer side has this many pixels

    def validate(self) -> None:
        if self.frames is not None and self.frames < 2:
            raise InrlabError(f"signal.video.frames={self.frames}: a video needs at least 2 frames")
        if self.start < 0:
            raise InrlabError(f"signal.video.start={self.start} must be ≥ 0")
        check_positive("signal.video.stride", self.stride)
        if self.size is not None and self.size < 2:
            raise InrlabError(f"signal.video.size={self.size} is impossible: it must be ≥ 2")


@dataclass
class CTConfig:
    """Parallel-beam CT (``ct:NAME`` problems): projection geometry and simulated noise."""

    angles: int = 60  # projection angles evenly spaced over [0, angle_range)
    angle_range: float = 180.0  # degrees
    angle_list: list[float] | None = None  # explicit angles in degrees (replaces angles/angle_range)
    detectors: int | None = None  # detector bins across the image diagonal (None: ceil(√2·N))
    noise: float = 0.0  # Gaussian noise std as a fraction of the sinogram's maximum
    noise_seed: int = 0
    sart_iterations: int = 2  # SART baseline sweeps

    def validate(self) -> None:
        if self.angle_list is not None:
            if not self.angle_list:
                raise InrlabError("signal.ct.angle_list is empty: give at least one angle in degrees "
                                  "(or unset it and use signal.ct.angles)")
        else:
            if self.angles <= 0:
                raise InrlabError(f"signal.ct.angles={self.angles} is impossible: CT needs ≥ 1 "
                                  f"projection angle")
            check_positive("signal.ct.angle_range", self.angle_range)
        if self.detectors is not None and self.detectors < 2:
            raise InrlabError(f"signal.ct.detectors={self.detectors} is impossible: give ≥ 2 "
                              f"detector bins (or unset it for ceil(√2·N))")
        if self.noise < 0:
            raise InrlabError(f"signal.ct.noise={self.noise} is impossible: the noise level must be ≥ 0")
        check_positive("signal.ct.sart_iterations", self.sart_iterations)


MRI_TRAJECTORIES = ("cartesian", "radial")


@dataclass
class MRIConfig:
    """MRI (``mri:NAME`` problems): Cartesian mask or radial spokes, noise and the TV baseline."""

    trajectory: str = "cartesian"  # k-space sampling: cartesian (rows, FFT) or radial (spokes, NUFFT)
    spokes: int = 32  # radial: number of spokes, golden-angle (111.25°) order, N readout samples each
    acceleration: float = 4.0  # R: about N/R phase-encode lines (rows of k-space) are sampled
    centre: float = 0.08  # fraction of the lines around k = 0 that are always sampled
    mask_seed: int = 0  # seed of the random choice of the other lines
    mask: str | None = None  # a .npy file of an (N, N) boolean k-space mask (centred), replacing the above
    noise: float = 0.0  # complex Gaussian noise std as a fraction of max |k|
    noise_seed: int = 0
    tv_weight: float = 0.01  # TV compressed-sensing baseline: denoise_tv_chambolle weight (fixed)
    tv_iterations: int = 100  # FISTA iterations of the TV baseline

    def validate(self) -> None:
        if not self.acceleration >= 1:
            raise InrlabError(f"signal.mri.acceleration={self.acceleration} is impossible: R must be "
                              f"≥ 1 (1 = fully sampled)")
        if not 0 < self.centre <= 1:
            raise InrlabError(f"signal.mri.centre={self.centre} must lie in (0, 1]: the fraction of "
                              f"k-space lines around the centre that are always sampled")
        if self.noise < 0:
            raise InrlabError(f"signal.mri.noise={self.noise} is impossible: the noise level must be "
                              f"≥ 0")
        if self.tv_weight < 0:
            raise InrlabError(f"signal.mri.tv_weight={self.tv_weight} must be ≥ 0")
        check_positive("signal.mri.tv_iterations", self.tv_iterations)
        check_choice("signal.mri.trajectory", self.trajectory, MRI_TRAJECTORIES)
        if isinstance(self.spokes, bool) or not isinstance(self.spokes, int) or self.spokes < 1:
            raise InrlabError(f"signal.mri.spokes={self.spokes} is impossible: give a whole number "
                              f"≥ 1 of radial spokes")
        if self.trajectory == "radial" and self.mask:
            raise InrlabError("signal.mri.mask is a Cartesian mask: drop it or set "
                              "signal.mri.trajectory cartesian")


DENSITY_ACTIVATIONS = ("softplus", "relu", "exp")


@dataclass
class NeRFConfig:
    """Rendering problems (``nerf:DIR``): rays, samples, empty-space skipping, evaluation."""

    near: float = 2.0  # ray segment [near, far] (the Blender synthetic scenes: 2, 6)
    far: float = 6.0
    bound: float = 1.5  # the scene lies in [-bound, bound]³, mapped to the field's [-1, 1]³
    ray_samples: int = 64  # strata over [near, far]: step δ = (far - near) / ray_samples
    fine_samples: int = 0  # nerf: importance samples per ray from the coarse weights (0: off)
    downscale: int = 1  # integer factor the images are shrunk by when read (area average)
    white_background: bool = True  # composite RGBA images and renders over white (else black)
    density_activation: str = "softplus"  # σ = act(raw density output): softplus, relu, exp
    grid: int = 32  # occupancy grid cells per axis for empty-space skipping (0: off)
    grid_every: int = 16  # training steps between occupancy updates
    grid_warmup: int = 64  # steps before the first update (every cell occupied until then)
    grid_threshold: float = 0.01  # a cell is empty when its density (EMA max) is below this
    grid_decay: float = 0.95  # occupancy EMA: g ← max(decay·g, σ(new jittered point))
    train_views: int | None = None  # use only the first N training views (None: all)
    test_views: int | None = 8  # test views scored by the final evaluation (None: all)
    quick_views: int = 1  # test views scored by the periodic evaluations
    fresh_views: int = 4  # training views tiled into FreSh's reference mosaic
    eikonal_weight: float = 0.1  # neus: weight of the eikonal term mean (‖∇f‖ − 1)²
    mesh_resolution: int = 64  # neus: marching-cubes grid cells per axis of the extracted mesh

    def validate(self) -> None:
        if not 0 <= self.near < self.far:
            raise InrlabError(f"signal.nerf.near={self.near}, far={self.far}: need 0 ≤ near < far")
        for name in ("bound", "ray_samples", "downscale", "grid_every", "grid_threshold",
                     "quick_views", "fresh_views", "mesh_resolution"):
            check_positive(f"signal.nerf.{name}", getattr(self, name))
        check_choice("signal.nerf.density_activation", self.density_activation, DENSITY_ACTIVATIONS)
        if self.eikonal_weight < 0:
            raise InrlabError("signal.nerf.eikonal_weight must be ≥ 0")
        if self.fine_samples < 0:
            raise InrlabError(f"signal.nerf.fine_samples={self.fine_samples}: give a count ≥ 0 "
                              f"(0: coarse samples only)")
        if self.grid < 0 or self.grid_warmup < 0:
            raise InrlabError("signal.nerf.grid and grid_warmup must be ≥ 0 (grid 0: no skipping)")
        if not 0 < self.grid_decay <= 1:
            raise InrlabError("signal.nerf.grid_decay must lie in (0, 1]")
        for name in ("train_views", "test_views"):
            if getattr(self, name) is not None:
                check_positive(f"signal.nerf.{name}", getattr(self, name))


IMAGE_RANGES = ("signed", "unit")  # signal.range: targets in [-1, 1] or [0, 1]


@dataclass
class SignalConfig:
    """What is fitted: an image path or embedded name, a 1-D spec such as ``sines:5,10,15``, or a
    registered problem kind (``ct:shepp_logan``, ``mri:dicom_mr`` …) with its section."""

    name: str = "astronaut"
    size: int | None = None  # images: resize so the longer side has this many pixels
    gray: bool = False  # images: convert to one channel
    heldout: float | None = None  # fraction of samples held out (None: 0.1 images, 0 for 1-D)
    samples: int = 2048  # 1-D: number of grid samples
    split_seed: int = 0  # seed of the held-out split (fixed across runs so they compare)
    # images: target values, "signed" [-1, 1] (zero-mean, suits SIREN-type nets) or "unit" [0, 1]
    # (the normalization paper's code); PSNR is the [0, 1] image's either way
    range: str = "signed"
    ct: CTConfig = field(default_factory=CTConfig)
    mri: MRIConfig = field(default_factory=MRIConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)  # occ:… and sdf:… shapes
    video: VideoConfig = field(default_factory=VideoConfig)  # video:… clips
    nerf: NeRFConfig = field(default_factory=NeRFConfig)  # rendering problems (nerf:DIR)

    def validate(self) -> None:
        self.nerf.validate()
        check_choice("signal.range", self.range, IMAGE_RANGES)
        if self.size is not None:
            check_positive("signal.size", self.size)
        if self.heldout is not None and not 0 <= self.heldout < 1:
            raise InrlabError(f"signal.heldout={self.heldout} must lie in [0, 1)")
        check_positive("signal.samples", self.samples)
        self.ct.validate()
        self.mri.validate()
        self.volume.validate()
        self.video.validate()


@dataclass
class RunConfig:
    """A whole experiment: signal, model and training; what ``config.json`` of a run holds."""

    signal: SignalConfig = field(default_factory=SignalConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None

    def validate(self) -> RunConfig:
        self.signal.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number > 0 (NaN, ±inf and booleans are refused)."""
    if (value is None or isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise InrlabError(f"{name}={value} is impossible: it must be a finite number > 0")


def check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise InrlabError(f"unknown {name} {value!r}: choose one of {', '.join(options)}")


# --------------------------------------------------------------------------- presets

# Grid encodings converge in a few hundred steps (instant-NGP's lr and Adam ε).
_GRID_TRAIN = {"lr": 1e-2, "adam_eps": 1e-15, "steps": 150, "eval_every": 25}

PRESETS: dict[str, dict[str, Any]] = {
    # Plain ReLU MLP (the spectral-bias baseline).
    "relu": {"model": {}, "train": {"lr": 1e-3}},
    # NeRF positional encoding, 6 frequencies 2^i·π (IGA 2-D setting: 26 input dims).
    "pe": {"model": {"encoding": {"kind": "positional", "n_frequencies": 6}}, "train": {"lr": 1e-3}},
    # Gaussian Fourier features (Tancik et al.), 128 frequencies → 256 features.
    "ffe": {"model": {"encoding": {"kind": "fourier", "sigma": 10.0, "n_features": 128}},
            "train": {"lr": 1e-3}},
    # SIREN, ω₀ = 30 first and hidden (Sitzmann et al.).
    "siren": {"model": {"activation": {"kind": "sine"}}, "train": {"lr": 1e-4}},
    # FINER, sin(ω₀(|z|+1)z), ω₀ = 30 (Liu et al.).
    "finer": {"model": {"activation": {"kind": "finer"}}, "train": {"lr": 1e-4}},
    # Gaussian activation exp(-(s z)²), s = 10 (Ramasinghe & Lucey).
    "gauss": {"model": {"activation": {"kind": "gauss", "scale": 10.0}}, "train": {"lr": 1e-3}},
    # WIRE real Gabor wavelet cos(ω z)·exp(-(s z)²), ω = 20, s = 10 (Saragadam et al.).
    "wire": {"model": {"activation": {"kind": "wire", "omega0_first": 20.0, "omega0_hidden": 20.0,
                                      "scale": 10.0}}, "train": {"lr": 1e-3}},
    # Dense multigrid parametric encoding, 8 levels 16…512, k = 2, + raw coords, 2×64 ReLU MLP.
    "mpe": {"model": {"encoding": {"kind": "multigrid", "levels": 8, "base_resolution": 16,
                                   "finest_resolution": 512, "features_per_level": 2},
                      "width": 64, "depth": 2}, "train": _GRID_TRAIN},
    # instant-NGP hash grid: 16 levels 16…512, 2 features, 2^19 entries, 2×64 ReLU MLP.
    "hash": {"model": {"encoding": {"kind": "hash", "levels": 16, "base_resolution": 16,
                                    "finest_resolution": 512, "features_per_level": 2,
                                    "log2_table_size": 19, "include_input": False},
                       "width": 64, "depth": 2}, "train": _GRID_TRAIN},
}
DEFAULT_PRESET = "hash"


def preset(name: str) -> RunConfig:
    """The :class:`RunConfig` of a named preset (model architecture and its learning rate)."""
    if name not in PRESETS:
        raise InrlabError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    cfg = from_dict(RunConfig, PRESETS[name])
    cfg.preset = name
    return cfg


# --------------------------------------------------------------------------- (de)serialization
#
# A config is a tree of dataclasses; every field has a dotted path. Component sections
# (model.encoding, model.activation) hold the class of their kind: setting ``….kind`` switches the
# class (fields both kinds have carry over), and a field only another kind has is an error that
# says so. Batches of settings (merge, set_fields) apply the ``kind`` paths first.


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys with their dotted path.

    Component sections pick their class from ``kind``. Saved configs from before per-kind sections
    carried every kind's fields: those of other kinds load when they hold their default (they had
    no effect), otherwise the error says to delete them."""
    if hasattr(cls, "_concrete"):
        cls = cls._concrete(data)
    hints = typing.get_type_hints(cls)
    names = _class_fields(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            if _inactive_default(cls, key, value, path):
                continue
            raise InrlabError(unknown_field(cls, path, prefix))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise InrlabError(f"config field {path!r} is a section: give a table, not {value!r}")
            kwargs[key] = from_dict(tp, value, path + ".")
        else:
            kwargs[key] = coerce(tp, value, path)
    return cls(**kwargs)


def merge(cfg: Any, data: dict[str, Any]) -> None:
    """Overwrite the fields of dataclass ``cfg`` named in nested dict ``data`` (in place)."""
    set_fields(cfg, flatten(data).items())


def set_fields(cfg: Any, items: Iterable[tuple[str, Any]], optional: Iterable[str] = ()) -> None:
    """``set_field`` for each (path, value), the ``….kind`` paths first (so ``{sigma: 5, kind:
    fourier}`` works in any order). Paths in ``optional`` that the chosen kind lacks are skipped
    (a sweep's shared ``[model.encoding] n_frequencies`` applies to the runs whose encoding has it)."""
    items = list(items)
    skip = set(optional)
    for path, value in sorted(items, key=lambda kv: not kv[0].endswith(".kind")):
        if path in skip and not has_field(cfg, path):
            continue
        set_field(cfg, path, value)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def set_field(cfg: Any, path: str, value: Any) -> None:
    """Set the field at dotted ``path`` of dataclass ``cfg``; strings are parsed to its type.
    ``<section>.kind`` of a component section replaces the section by the new kind's class."""
    *head, name = path.split(".")
    obj = _section(cfg, head)
    if name not in _field_names(obj):
        raise InrlabError(unknown_field(type(obj), path, ".".join(head) + "." if head else ""))
    tp = typing.get_type_hints(type(obj))[name]
    if dataclasses.is_dataclass(tp):
        raise InrlabError(f"config field {path!r} is a section: set one of its fields instead")
    value = coerce(tp, value, path)
    if name == "kind" and isinstance(obj, Component) and head:
        setattr(_section(cfg, head[:-1]), head[-1], switch_kind(obj, value))
    else:
        setattr(obj, name, value)


def switch_kind(section: Component, kind: str) -> Component:
    """A section of kind ``kind`` with the fields both kinds have copied from ``section``."""
    cls = section.registry[kind]
    if cls is type(section):
        return section
    shared = _field_names(section) & _class_fields(cls) - {"kind"}
    return cls(**{n: copy.deepcopy(getattr(section, n)) for n in shared})


def get_field(cfg: Any, path: str) -> Any:
    """Read the field at dotted ``path``."""
    obj = cfg
    for part in path.split("."):
        if isinstance(obj, Component) and part not in _field_names(obj):
            raise InrlabError(unknown_field(type(obj), path, path[:-len(part)]))
        if not dataclasses.is_dataclass(obj) or part not in _field_names(obj):
            raise InrlabError(f"unknown config field {path!r}")
        obj = getattr(obj, part)
    return obj


def has_field(cfg: Any, path: str) -> bool:
    """Whether ``cfg`` (as its sections' kinds now are) has the field at ``path``."""
    try:
        get_field(cfg, path)
    except InrlabError:
        return False
    return True


def field_type(cfg: Any, path: str) -> Any:
    """The annotated type of the field at dotted ``path`` (raises for an unknown field)."""
    *head, name = path.split(".")
    obj = get_field(cfg, ".".join(head)) if head else cfg
    get_field(cfg, path)
    return typing.get_type_hints(type(obj))[name]


def field_paths(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every leaf field of the config tree as a dotted path, over all kinds of each component
    section (``model.encoding.sigma`` and ``model.encoding.levels``) and every technique section."""
    out: list[str] = []
    for c in section_classes(cls):
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            tp = hints[f.name]
            paths = field_paths(tp, f"{prefix}{f.name}.") if dataclasses.is_dataclass(tp) \
                else [prefix + f.name]
            out += [p for p in paths if p not in out]
    return out


def section_classes(cls: type) -> list[type]:
    """The concrete classes a section of declared type ``cls`` can hold: every registered kind of
    a component family, the technique-extended class of :class:`TrainConfig`, else ``cls``."""
    if issubclass(cls, Component) and "registry" in cls.__dict__:
        return list(cls.registry.values())
    return [cls._concrete({})] if hasattr(cls, "_concrete") else [cls]


def check_fields(cls: type, kwargs: dict[str, Any], prefix: str) -> None:
    """Raise the one-line :func:`unknown_field` error for a keyword ``cls`` has no field for."""
    for key in kwargs:
        if key not in _class_fields(cls):
            raise InrlabError(unknown_field(cls, prefix + key, prefix))


def unknown_field(cls: type, path: str, prefix: str) -> str:
    """The message for ``path``, unknown in section class ``cls`` (whose fields start ``prefix``);
    for a component section it names the kinds that have the field."""
    fields = ", ".join(prefix + n for n in sorted(_class_fields(cls)))
    name = path.rsplit(".", 1)[-1]
    if issubclass(cls, Component):
        owners = [k for k, c in cls.registry.items() if name in _class_fields(c)]
        if owners:
            return (f"config field {path!r} belongs to the {', '.join(owners)} {cls.path} kind(s), "
                    f"not {_default(cls, 'kind')!r}: set {cls.path}.kind first (its fields are "
                    f"{fields})")
    return f"unknown config field {path!r}: valid fields here are {fields}"


def _inactive_default(cls: type, key: str, value: Any, path: str) -> bool:
    """Whether ``key`` is a field of another kind of component ``cls`` holding its default
    (how configs saved before per-kind sections list the kinds they did not use)."""
    if not issubclass(cls, Component):
        return False
    defaults = [_default(c, key) for c in cls.registry.values() if key in _class_fields(c)]
    if not defaults:
        return False
    if value in defaults:
        return True
    raise InrlabError(f"config field {path}={value!r} belongs to another {cls.path} kind than "
                      f"{_default(cls, 'kind')!r} (a config saved by an older inrlab): delete the "
                      f"line from the file, it had no effect")


def _section(cfg: Any, parts: list[str]) -> Any:
    obj = cfg
    for i, part in enumerate(parts):
        child = getattr(obj, part) if part in _field_names(obj) else None
        if not dataclasses.is_dataclass(child):
            raise InrlabError(f"unknown config field {'.'.join(parts[:i + 1])!r}")
        obj = child
    return obj


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _class_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _default(cls: type, name: str) -> Any:
    f = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Convert ``value`` (possibly a CLI string) to annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(inner[0], value, path)
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise InrlabError(f"config field {path!r} needs a list, got {value!r}")
        return [coerce(args[0], v, path) for v in value]
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if isinstance(value, bool) or (tp in (int, float, str) and isinstance(value, (dict, list))):
            raise ValueError(value)  # TOML `width = true` is a mistake, not 1
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            v = float(value)
            if not math.isfinite(v):
                raise InrlabError(f"config field {path!r} needs a finite number, got {value!r}")
            return v
        if tp is str:
            return str(value)
    except (TypeError, ValueError, OverflowError) as e:
        if isinstance(e, InrlabError):
            raise
        raise InrlabError(f"config field {path!r} needs a {tp.__name__}, got {value!r}") from None
    return value


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (size-capped, see :mod:`inrlab.files`); a syntax error names the
    file and line."""
    p = Path(path)
    text = read_text(p, "config file")
    try:
        return check_nesting(tomllib.loads(text), f"config file {str(p)!r}")
    except tomllib.TOMLDecodeError as e:
        raise InrlabError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    except RecursionError:
        raise InrlabError(f"config file {str(p)!r} nests too deeply to be a config: fix it") \
            from None
