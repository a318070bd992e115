"""Dataclass configs: one printable, serializable object describes a whole experiment.

Every field is reachable by a dotted path (``model.encoding.sigma``), which is what the CLI's
``--model.encoding.sigma 10`` overrides, TOML config files and FreSh sweeps use.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .errors import InrlabError

ENCODINGS = ("identity", "positional", "fourier", "multigrid", "hash")
ACTIVATIONS = ("relu", "sine", "finer", "gauss", "wire")
NORMS = ("none", "batch", "layer", "global", "cross")
SCHEDULES = ("constant", "step", "exponential", "cosine")


@dataclass
class EncodingConfig:
    """Coordinate encoding. Fields apply to the kinds named in their comment."""

    kind: str = "identity"
    include_input: bool = True  # positional, multigrid, hash: concatenate raw coordinates
    n_frequencies: int = 6  # positional: frequencies 2^i·π, i < n_frequencies
    sigma: float = 10.0  # fourier: std of the Gaussian frequency matrix B
    n_features: int = 128  # fourier: rows of B (output has 2·n_features dims)
    levels: int = 16  # multigrid, hash
    base_resolution: int = 16  # multigrid, hash: coarsest grid cells per axis
    finest_resolution: int = 512  # multigrid, hash: finest grid cells per axis
    features_per_level: int = 2  # multigrid, hash: k learnable scalars per vertex
    log2_table_size: int = 19  # hash: entries per level = 2^log2_table_size
    init_scale: float = 1e-4  # multigrid, hash: table values ~ U(-init_scale, init_scale)

    def validate(self) -> None:
        _choice("model.encoding.kind", self.kind, ENCODINGS)
        if self.kind == "positional":
            _positive("model.encoding.n_frequencies", self.n_frequencies)
        if self.kind == "fourier":
            _positive("model.encoding.sigma", self.sigma)
            _positive("model.encoding.n_features", self.n_features)
        if self.kind in ("multigrid", "hash"):
            for name in ("levels", "base_resolution", "finest_resolution", "features_per_level"):
                _positive(f"model.encoding.{name}", getattr(self, name))
            if self.finest_resolution < self.base_resolution:
                raise InrlabError(
                    f"model.encoding.finest_resolution={self.finest_resolution} is below "
                    f"base_resolution={self.base_resolution}: make finest ≥ base"
                )
            if self.init_scale < 0:
                raise InrlabError("model.encoding.init_scale must be ≥ 0")
        if self.kind == "hash" and not 4 <= self.log2_table_size <= 26:
            raise InrlabError("model.encoding.log2_table_size must lie in 4..26")


@dataclass
class ActivationConfig:
    """Hidden-layer nonlinearity. ω₀ fields apply to sine/finer/wire, ``scale`` to gauss/wire."""

    kind: str = "relu"
    omega0_first: float = 30.0  # sine, finer, wire: frequency of the first layer
    omega0_hidden: float = 30.0  # sine, finer, wire: frequency of the other hidden layers
    first_bias_scale: float | None = None  # sine, finer: first-layer bias ~ U(-k, k) (None: torch)
    scale: float = 10.0  # gauss, wire: width s in exp(-(s·z)²)

    def validate(self) -> None:
        _choice("model.activation.kind", self.kind, ACTIVATIONS)
        if self.kind in ("sine", "finer", "wire"):
            _positive("model.activation.omega0_first", self.omega0_first)
            _positive("model.activation.omega0_hidden", self.omega0_hidden)
        if self.kind in ("gauss", "wire"):
            _positive("model.activation.scale", self.scale)
        if self.first_bias_scale is not None and self.first_bias_scale < 0:
            raise InrlabError("model.activation.first_bias_scale must be ≥ 0 (or unset)")


@dataclass
class ModelConfig:
    """encoding → ``depth`` hidden layers (Linear → norm → activation) of ``width`` → linear head."""

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    norm: str = "none"
    width: int = 256
    depth: int = 3
    norm_momentum: float = 0.1  # running statistics of batch/global/cross norms

    def validate(self) -> None:
        self.encoding.validate()
        self.activation.validate()
        _choice("model.norm", self.norm, NORMS)
        _positive("model.width", self.width)
        _positive("model.depth", self.depth)
        if not 0 < self.norm_momentum <= 1:
            raise InrlabError("model.norm_momentum must lie in (0, 1]")


IGA_VARIANTS = ("adam", "sgd")
IGA_LAYOUTS = ("auto", "run")
IGA_KERNELS = ("representative", "patch_sum", "patch_mean", "reference")
NTK_METHODS = ("auto", "structured", "jacobian")


@dataclass
class IGAConfig:
    """Inductive gradient adjustment (spec/iga.md); used when ``train.technique = "iga"``."""

    group: int = 32  # 1-D and run layout: p samples per group; 2-D: patch side P; 3-D: block side
    layout: str = "auto"  # auto: 1-D runs, 2-D patches, 3-D blocks; run: p consecutive flat indices
    start: int = 0  # first balanced eigenvalue (index into the descending spectrum)
    end: int = 25  # balance eigenvalues start … end-1 (exclusive)
    variant: str = "adam"  # adam: clip the top ones down to λ_end; sgd: raise 1 … end-1 up to λ₀
    representative: str = "residual"  # residual (largest |r| summed over channels), centre, or a slot
    # eNTK row of a group: representative (the gradient at its representative point), patch_sum /
    # patch_mean (of the output summed / averaged over its training points), reference (the
    # official code's indexing: summed over the slots of every group's residual representative)
    kernel: str = "representative"
    every: int = 1  # recompute the eNTK and S every k steps (full batch only)
    ntk_method: str = "auto"  # inrlab.ntk.kernel route: auto, structured, jacobian

    def validate(self) -> None:
        _positive("train.iga.group", self.group)
        _choice("train.iga.layout", self.layout, IGA_LAYOUTS)
        _choice("train.iga.variant", self.variant, IGA_VARIANTS)
        _choice("train.iga.kernel", self.kernel, IGA_KERNELS)
        _choice("train.iga.ntk_method", self.ntk_method, NTK_METHODS)
        _positive("train.iga.every", self.every)
        if self.start < 0 or self.end <= self.start:
            raise InrlabError(f"train.iga.start={self.start}, end={self.end}: need 0 ≤ start < end")
        if self.representative not in ("residual", "centre") and not self.representative.isdigit():
            raise InrlabError(f"unknown train.iga.representative {self.representative!r}: choose "
                              f"residual, centre or a slot number (0 … p-1)")


@dataclass
class FRConfig:
    """Fourier reparameterized training (spec/iga.md, FR); ``train.technique = "fr"``."""

    low: int = 128  # L low frequencies (i+1)/L
    high: int = 128  # H high frequencies 1 … H
    phases: int = 32  # Φ phases 2πj/Φ
    alpha: float | None = None  # basis amplitude (None: ReLU 0.001, PE 0.05, sine/FINER 0.004)
    bias: str = "keep"  # keep: the replaced layer's initial bias; zero: zeros (the official code)

    def validate(self) -> None:
        for name in ("low", "high", "phases"):
            if getattr(self, name) < 0:
                raise InrlabError(f"train.fr.{name} must be ≥ 0")
        _positive("train.fr.low + high", self.low + self.high)
        _positive("train.fr.phases", self.phases)
        if self.alpha is not None:
            _positive("train.fr.alpha", self.alpha)
        _choice("train.fr.bias", self.bias, ("keep", "zero"))


@dataclass
class TrainConfig:
    """Optimisation: Adam, a learning-rate schedule, batching, logging and checkpoints."""

    steps: int = 2000
    lr: float = 1e-3
    schedule: str = "constant"
    lr_final: float = 0.1  # exponential / cosine: final lr as a fraction of lr
    milestones: list[int] = field(default_factory=list)  # step schedule: multiply by gamma at each
    gamma: float = 0.1
    batch_size: int | None = None  # None: full batch of the training points
    eval_every: int = 100
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    technique: str = "mse"
    adam_eps: float = 1e-8
    diagnostics_every: int = 0  # record band errors Δ_k every k steps into RUN/diagnostics (0: off)
    ntk_steps: list[int] = field(default_factory=list)  # steps (0: init) to record eNTK spectra at
    ntk_points: int = 256  # random training points the diagnostic eNTK is computed on
    iga: IGAConfig = field(default_factory=IGAConfig)
    fr: FRConfig = field(default_factory=FRConfig)

    def validate(self) -> None:
        _positive("train.steps", self.steps)
        _positive("train.lr", self.lr)
        _choice("train.schedule", self.schedule, SCHEDULES)
        _positive("train.lr_final", self.lr_final)
        _positive("train.gamma", self.gamma)
        _positive("train.eval_every", self.eval_every)
        _positive("train.checkpoint_every", self.checkpoint_every)
        _positive("train.adam_eps", self.adam_eps)
        if self.batch_size is not None:
            _positive("train.batch_size", self.batch_size)
        if self.diagnostics_every < 0:
            raise InrlabError("train.diagnostics_every must be ≥ 0 (0 turns band errors off)")
        if any(s < 0 for s in self.ntk_steps):
            raise InrlabError("train.ntk_steps must be step numbers ≥ 0 (0: initialization)")
        _positive("train.ntk_points", self.ntk_points)
        if any(m <= 0 for m in self.milestones):
            raise InrlabError("train.milestones must be positive step numbers")
        self.iga.validate()
        self.fr.validate()


@dataclass
class SignalConfig:
    """What is fitted: an image path or embedded name, or a 1-D spec such as ``sines:5,10,15``."""

    name: str = "astronaut"
    size: int | None = None  # images: resize so the longer side has this many pixels
    gray: bool = False  # images: convert to one channel
    heldout: float | None = None  # fraction of samples held out (None: 0.1 images, 0 for 1-D)
    samples: int = 2048  # 1-D: number of grid samples
    split_seed: int = 0  # seed of the held-out split (fixed across runs so they compare)

    def validate(self) -> None:
        if self.size is not None:
            _positive("signal.size", self.size)
        if self.heldout is not None and not 0 <= self.heldout < 1:
            raise InrlabError(f"signal.heldout={self.heldout} must lie in [0, 1)")
        _positive("signal.samples", self.samples)


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


def _positive(name: str, value: float) -> None:
    if value is None or value <= 0:
        raise InrlabError(f"{name}={value} is impossible: it must be > 0")


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
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


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys with their dotted path."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise InrlabError(f"unknown config field {path!r}: valid fields are "
                              f"{', '.join(prefix + n for n in sorted(names))}")
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
    for path, value in flatten(data).items():
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
    """Set the field at dotted ``path`` of dataclass ``cfg``; strings are parsed to its type."""
    obj = cfg
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        child = getattr(obj, part) if part in _field_names(obj) else None
        if not dataclasses.is_dataclass(child):
            raise InrlabError(f"unknown config field {'.'.join(parts[:i + 1])!r}")
        obj = child
    name = parts[-1]
    if name not in _field_names(obj):
        raise InrlabError(f"unknown config field {path!r}: valid fields here are "
                          f"{', '.join(sorted(_field_names(obj)))}")
    tp = typing.get_type_hints(type(obj))[name]
    if dataclasses.is_dataclass(tp):
        raise InrlabError(f"config field {path!r} is a section: set one of its fields instead")
    setattr(obj, name, coerce(tp, value, path))


def get_field(cfg: Any, path: str) -> Any:
    """Read the field at dotted ``path``."""
    obj = cfg
    for part in path.split("."):
        if not dataclasses.is_dataclass(obj) or part not in _field_names(obj):
            raise InrlabError(f"unknown config field {path!r}")
        obj = getattr(obj, part)
    return obj


def field_type(cfg: Any, path: str) -> Any:
    """The annotated type of the field at dotted ``path`` (raises for an unknown field)."""
    *head, name = path.split(".")
    obj = get_field(cfg, ".".join(head)) if head else cfg
    get_field(cfg, path)
    return typing.get_type_hints(type(obj))[name]


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


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
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise InrlabError(f"config field {path!r} needs a {tp.__name__}, got {value!r}") from None
    return value


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; a syntax error names the file and line."""
    p = Path(path)
    if not p.is_file():
        raise InrlabError(f"config file {str(p)!r} not found: check the path")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InrlabError(f"config file {str(p)!r} is not valid TOML: {e}") from None
