"""Sweep files: a base config, axes to cross and tiers, expanded into a plan of runs.

A sweep file (TOML)::

    name = "example"
    preset = "relu"                       # base preset (default: the library default)
    analysis = "iga_kodak"                # registered analysis: the paper's table (optional;
                                          # or [analysis] name = ..., with its parameters)
    plugins = ["my_techniques"]           # modules imported first (register techniques, ...)
    [job]                                 # how each run executes (default: kind = "train")
    callbacks = ["subset_scores"]         # registered trainer callbacks; other keys: parameters
    [signal]                              # base overrides, like a `inrlab fit --config` file
    size = 64
    [train]
    eval_every = 25
    [axes]                                # crossed: one run per combination
    signals = ["astronaut", "camera"]     # aliases: signals presets techniques norms seeds
    presets = ["relu", "siren"]
    "model.encoding.sigma" = [5.0, 10.0]  # any dotted field
    seeds = [0, 1]
    [[axes.method]]                       # a "variant" axis: each value is a table of fields
    label = "siren+iga"
    preset = "siren"
    "train.technique" = "iga"
    [tiers.quick]                         # --tier quick: fields (and [tiers.quick.axes]) replaced
    "train.steps" = 200
    [[exclude]]                           # skip the combinations matching every given axis
    preset = "hash"
    norm = "batch"

Fields are applied in this order: preset (variant > preset axis > base), base tables, tier,
then the axes in file order. ``job.NAME`` fields (job parameters) may stand wherever a config field
may. Every run's config and job are resolved and validated before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..config import DEFAULT_PRESET, PRESETS, RunConfig, field_paths, flatten, preset, set_fields
from ..errors import InrlabError
from ..files import PLAIN_NAME, check_nesting, read_text
from ..limits import max_sweep_runs

# Axis aliases → dotted path; the short name is what tables and labels call the axis.
ALIASES = {"signals": "signal.name", "presets": "preset", "techniques": "train.technique",
           "norms": "model.norm", "seeds": "train.seed"}
SHORT = {"signal.name": "signal", "preset": "preset", "train.technique": "technique",
         "model.norm": "norm", "train.seed": "seed"}
FIELD_OF = {**ALIASES, **{short: path for path, short in SHORT.items()}}  # also singular names
TOP_KEYS = {"name", "description", "preset", "plugins", "signal", "model", "train", "axes", "tiers",
            "default_tier", "exclude", "analysis", "job"}
JOB = "job."  # prefix of job parameters among the dotted fields
BASE_TIER = "base"


@dataclass
class PlannedRun:
    """One run of a sweep: its resolved config, the store key and the axis values that made it."""

    key: str  # hash of the resolved config (train.device excluded: chosen per worker)
    label: str  # human-readable, e.g. "astronaut-relu-seed0"
    axes: dict[str, str]  # axis name → value label
    config: RunConfig
    job: dict[str, Any] = field(default_factory=dict)  # job kind and parameters ({}: plain train)

    @property
    def folder(self) -> str:
        """Run folder name inside the sweep's ``runs/``."""
        return f"{self.label}-{self.key[:8]}"


@dataclass
class Axis:
    name: str  # short name used by tables (signal, preset, seed, model.width, method, ...)
    path: str | None  # dotted field, "preset", or None for a variant axis
    values: list[Any]


@dataclass
class Sweep:
    """A parsed sweep file. :meth:`plan` expands it for one tier."""

    path: Path
    text: str
    name: str
    base_preset: str | None
    base: dict[str, Any]  # flattened dotted overrides from [signal]/[model]/[train]
    axes: list[Axis]
    tiers: dict[str, dict[str, Any]]
    default_tier: str
    exclude: list[dict[str, Any]] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    analysis: dict[str, Any] | None = None  # {"name": registered analysis, **its parameters}

    # ------------------------------------------------------------------ planning
    def plan(self, tier: str | None = None) -> list[PlannedRun]:
        """Every run of ``tier`` (default: the file's default tier), resolved and validated."""
        tier = tier or self.default_tier
        if tier not in self.tiers:
            raise InrlabError(f"sweep file {self._where()}has no tier {tier!r}: choose one of "
                              f"{', '.join(self.tiers)}")
        tier_fields = dict(self.tiers[tier])
        tier_axes = tier_fields.pop("axes", {})
        axes = [Axis(a.name, a.path, tier_axes.get(a.name, a.values)) for a in self.axes]
        combos, limit = math.prod(len(a.values) for a in axes), max_sweep_runs()
        if combos > limit:
            raise InrlabError(f"sweep file {self._where()}crosses its axes into {combos:,} runs, "
                              f"over the limit of {limit:,}: shorten the axes (or use tiers), or "
                              f"raise INRLAB_MAX_SWEEP_RUNS")
        load_plugins(self.plugins, [str(self.path.parent)])
        runs: list[PlannedRun] = []
        seen: dict[str, str] = {}
        for combo in itertools.product(*(a.values for a in axes)):
            labels = {a.name: value_label(a, v) for a, v in zip(axes, combo, strict=True)}
            if any(all(labels.get(k) == str(v) for k, v in ex.items()) for ex in self.exclude):
                continue
            run_label = "-".join(_slug(a, labels[a.name]) for a in axes) or "run"
            cfg, job = self._resolve(axes, combo, tier_fields, run_label)
            key = config_key(cfg, job)
            if key in seen:
                raise InrlabError(f"sweep file {self._where()}runs {seen[key]!r} and {run_label!r} "
                                  f"resolve to the same config: remove the duplicate axis value")
            seen[key] = run_label
            runs.append(PlannedRun(key, run_label, labels, cfg, job))
        if not runs:
            raise InrlabError(f"sweep file {self._where()}plans no runs (every combination is "
                              f"excluded): loosen [[exclude]]")
        return runs

    def _resolve(self, axes: list[Axis], combo: tuple[Any, ...], tier_fields: dict[str, Any],
                 label: str) -> tuple[RunConfig, dict[str, Any]]:
        name = self.base_preset or DEFAULT_PRESET
        fields: list[tuple[str, Any]] = []
        for a, v in zip(axes, combo, strict=True):
            if a.path == "preset":
                name = v
            elif a.path is not None:
                fields.append((a.path, v))
            else:
                for k, val in v.items():
                    if k == "preset":
                        name = val
                    elif k != "label":
                        fields.append((k, val))
        from .jobs import check_job

        job: dict[str, Any] = {}
        try:
            cfg = preset(name)
            pairs = []
            for k, v in [*self.base.items(), *tier_fields.items(), *fields]:
                if k.startswith(JOB):
                    job[k[len(JOB):]] = copy.deepcopy(v)
                else:
                    pairs.append((k, copy.deepcopy(v)))
            # shared settings apply to the runs whose encoding/activation kind has the field
            set_fields(cfg, pairs, optional=[k for k in [*self.base, *tier_fields]
                                             if not k.startswith(JOB)])
            cfg.validate()
            check_technique(cfg.train.technique)
            job = check_job(job)
        except InrlabError as e:
            raise InrlabError(f"sweep file {self._where()}run {label!r}: {e}") from None
        return cfg, job

    def _where(self) -> str:
        return f"{str(self.path)!r} "


# The flat defaults of model.encoding / model.activation from before per-kind sections: keys fill
# the fields a kind lacks from them, so stores written then keep their keys (and their runs).
_KEY_DEFAULTS = {
    "encoding": {"include_input": True, "n_frequencies": 6, "sigma": 10.0, "n_features": 128,
                 "levels": 16, "base_resolution": 16, "finest_resolution": 512,
                 "features_per_level": 2, "log2_table_size": 19, "init_scale": 1e-4},
    "activation": {"omega0_first": 30.0, "omega0_hidden": 30.0, "first_bias_scale": None,
                   "scale": 10.0},
}

# Fields added after stores were written, left out of keys at their default value (the same
# purpose: old stores keep their keys): (section path, field) → default.
_KEY_NEW_FIELDS = {(("signal", "nerf"), "fine_samples"): 0,
                   (("signal", "mri"), "trajectory"): "cartesian", (("signal", "mri"), "spokes"): 32,
                   (("model",), "norm_placement"): "auto", (("train", "iga"), "coupled"): "frozen",
                   (("model", "activation"), "omega_bias"): "inside",
                   (("model", "activation"), "omega_head"): False, (("signal",), "range"): "signed"}


# Fields that change how a run is executed, not its results, keyed at one fixed value (the default
# when stores were first written) whatever they are set to: (section path, field) → keyed value.
_KEY_EXECUTION_FIELDS = {(("signal", "volume"), "chunk"): 65_536}


def config_key(cfg: RunConfig, job: dict[str, Any] | None = None) -> str:
    """16 hex digits of the SHA-256 of the resolved config without ``train.device`` (and with the
    execution-only fields of ``_KEY_EXECUTION_FIELDS`` at their fixed value), and of the job when
    it is not a plain training run (so plain runs keep their keys)."""
    d: dict[str, Any] = cfg.to_dict()
    d["train"].pop("device", None)
    for (path, name), keyed in _KEY_EXECUTION_FIELDS.items():
        sec = d
        for part in path:
            sec = sec.get(part, {})
        if name in sec:
            sec[name] = keyed
    for section, defaults in _KEY_DEFAULTS.items():
        d["model"][section] = {**defaults, **d["model"][section]}
    # the placement in effect: "pre" (the only one before the field existed) keys as before,
    # so do explicit and automatic choices of the same placement
    placed = cfg.model.placement()
    d["model"]["norm_placement"] = "auto" if placed == "pre" else placed
    for (path, name), default in _KEY_NEW_FIELDS.items():
        sec = d
        for part in path:
            sec = sec.get(part, {})
        if sec.get(name, default) == default:
            sec.pop(name, None)
    if job:
        d = {"config": d, "job": job}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def value_label(axis: Axis, value: Any) -> str:
    """How a value of ``axis`` is named in labels and tables (variants: their ``label``)."""
    if isinstance(value, dict):
        return str(value["label"])
    if axis.path == "signal.name" and ("/" in str(value) or "." in str(value)):
        return Path(str(value)).stem
    return str(value)


def _slug(axis: Axis, label: str) -> str:
    text = label if axis.path in ("signal.name", "preset", "train.technique", "model.norm", None) \
        else f"{axis.name.rsplit('.', 1)[-1]}{label}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def check_technique(name: str) -> None:
    from ..techniques import TECHNIQUES

    if name not in TECHNIQUES:
        raise InrlabError(f"unknown technique {name!r}: choose one of {', '.join(TECHNIQUES)} "
                          f"(or register yours in a module named in the sweep's plugins)")


def load_plugins(modules: list[str], paths: list[str]) -> None:
    """Import ``modules`` (searching ``paths`` too) so they can register techniques, signals, ..."""
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise InrlabError(f"cannot import plugin module {m!r} ({e}): put it beside the sweep "
                              f"file or on PYTHONPATH") from None


# ---------------------------------------------------------------------------- parsing


def _line_of(text: str, key: str) -> str:
    """``"line N: "`` of the first line that defines ``key`` (best effort), else ``""``."""
    pat = re.compile(rf'^[ \t]*(\[+[ \t]*)?("?)[\w."]*{re.escape(key)}\2?[ \t]*(=|\])', re.M)
    m = pat.search(text)
    return f"line {text.count(chr(10), 0, m.start()) + 1}: " if m else ""


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file; errors name the file and, where known, the line."""
    p = Path(path)
    text = read_text(p, "sweep file")
    try:
        data = check_nesting(tomllib.loads(text), f"sweep file {str(p)!r}")
    except RecursionError:
        raise InrlabError(f"sweep file {str(p)!r} nests too deeply to be a sweep file: fix it") \
            from None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"line (\d+)", msg)
        shown = ""
        if m is None and "end of document" in msg:
            msg = msg.replace("end of document", f"end of document (line {len(text.splitlines())})")
        elif m:
            lines = text.splitlines()
            n = int(m.group(1))
            if 0 < n <= len(lines):
                shown = f": {lines[n - 1].strip()!r}"
        raise InrlabError(f"sweep file {str(p)!r} is not valid TOML: {msg}{shown}") from None
    return parse_sweep(data, p, text)


def parse_sweep(data: dict[str, Any], path: Path, text: str = "") -> Sweep:
    """Build a :class:`Sweep` from parsed TOML ``data``, checking every name it uses."""
    where = f"sweep file {str(path)!r} "

    def fail(key: str, msg: str) -> InrlabError:
        return InrlabError(f"{where}{_line_of(text, key)}{msg}")

    for k in data:
        if k not in TOP_KEYS:
            raise fail(k, f"unknown key {k!r}: valid keys are {', '.join(sorted(TOP_KEYS))}")
    known = set(field_paths())  # every kind's fields

    def check_field(path_: str, key_for_line: str, what: str) -> None:
        if path_ == "preset" or path_.startswith(JOB):
            return
        if path_ not in known:
            raise fail(key_for_line, f"{what} {path_!r} names no config field: see `inrlab fields` "
                                     f"for the dotted paths (or the aliases "
                                     f"{', '.join(ALIASES)})")

    base: dict[str, Any] = {}
    for section in ("job", "signal", "model", "train"):
        sec = data.get(section, {})
        if not isinstance(sec, dict):
            raise fail(section, f"[{section}] must be a table of fields")
        for k, v in flatten(sec, f"{section}.").items():
            check_field(k, k.rsplit(".", 1)[-1], "field")
            base[k] = v
    base_preset = data.get("preset")
    if base_preset is not None and base_preset not in PRESETS:
        raise fail("preset", f"unknown preset {base_preset!r}: choose one of {', '.join(PRESETS)}")

    axes = [_parse_axis(k, v, fail, check_field) for k, v in _axis_items(data.get("axes", {}))]
    names = [a.name for a in axes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise fail(next(iter(dup)), f"axis {next(iter(dup))!r} is given twice")

    tiers: dict[str, dict[str, Any]] = {}
    for tname, tdata in (data.get("tiers") or {BASE_TIER: {}}).items():
        if not isinstance(tdata, dict):
            raise fail(tname, f"tier {tname!r} must be a table of fields")
        if not PLAIN_NAME.fullmatch(tname):
            raise fail(tname, f"tier name {tname!r} must be a plain folder name (letters, digits, "
                              f"'.', '_', '+', '-'; not starting with '.'): it names "
                              f"analysis_files/TIER")
        tdata = dict(tdata)
        t_axes = {}
        for k, v in _axis_items(tdata.pop("axes", {})):
            ax = _parse_axis(k, v, fail, check_field)
            if ax.name not in names:
                raise fail(k, f"tier {tname!r} replaces axis {ax.name!r}, which [axes] does not "
                              f"define: add it to [axes]")
            t_axes[ax.name] = ax.values
        fields = {}
        for k, v in flatten(tdata).items():
            if k == "preset":
                raise fail(k, f"tier {tname!r} sets preset: tiers change sizes and steps; "
                              f"put presets in [axes] or at the top")
            check_field(k, k.rsplit(".", 1)[-1], f"tier {tname!r} field")
            fields[k] = v
        tiers[tname] = {**fields, "axes": t_axes}
    default_tier = data.get("default_tier") or ("quick" if "quick" in tiers else next(iter(tiers)))
    if default_tier not in tiers:
        raise fail("default_tier", f"default_tier {default_tier!r} is not a tier: choose one of "
                                   f"{', '.join(tiers)}")

    exclude = data.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise fail("exclude", "exclude must be an array of tables ([[exclude]])")
    ex_norm = []
    for ex in exclude:
        norm = {}
        for k, v in ex.items():
            k2 = SHORT.get(FIELD_OF.get(k, k), k)
            if k2 not in names:
                raise fail(k, f"[[exclude]] names {k!r}, which is not an axis: use one of "
                              f"{', '.join(names)}")
            norm[k2] = v
        ex_norm.append(norm)
    name = str(data.get("name") or path.stem)
    if not PLAIN_NAME.fullmatch(name):
        raise fail("name", f"sweep name {name!r} must be a plain folder name (letters, digits, "
                           f"'.', '_', '+', '-'; not starting with '.'): it names sweeps/NAME")
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(m, str) for m in plugins):
        raise fail("plugins", "plugins must be a list of module names")
    load_plugins(plugins, [str(path.parent)])  # they may register the analysis or jobs
    return Sweep(path=path, text=text, name=name,
                 base_preset=base_preset, base=base, axes=axes, tiers=tiers,
                 default_tier=default_tier, exclude=ex_norm, plugins=plugins,
                 analysis=_parse_analysis(data.get("analysis"), fail))


def _parse_analysis(value: Any, fail: Any) -> dict[str, Any] | None:
    """``analysis = "NAME"`` or an ``[analysis]`` table with ``name`` and parameters; the name
    must be registered (see :mod:`inrlab.sweep.analyses`)."""
    from .analyses import get_analysis

    if value is None:
        return None
    spec = {"name": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise fail("analysis", 'analysis must be a name or a table with name = "..."')
    try:
        get_analysis(spec["name"])
    except InrlabError as e:
        raise fail("analysis", str(e)) from None
    return dict(spec)


def _axis_items(axes: Any) -> list[tuple[str, Any]]:
    """(key, values) pairs of an [axes] table; unquoted dotted keys arrive nested, so re-flatten
    everything except variant axes (arrays of tables)."""
    if not isinstance(axes, dict):
        raise InrlabError("[axes] must be a table of axis = [values]")
    out: list[tuple[str, Any]] = []
    for k, v in axes.items():
        if isinstance(v, dict):
            out += [(f"{k}.{k2}", v2) for k2, v2 in _axis_items(v)]
        else:
            out.append((k, v))
    return out


def _parse_axis(key: str, values: Any, fail: Any, check_field: Any) -> Axis:
    if not isinstance(values, list) or not values:
        raise fail(key, f"axis {key!r} needs a non-empty array of values")
    if all(isinstance(v, dict) for v in values):
        if key in ALIASES or "." in key:
            raise fail(key, f"axis {key!r} is a field: give plain values, not tables")
        out = []
        for i, v in enumerate(values):
            v = {FIELD_OF.get(k, k): val for k, val in flatten(v).items()}
            for k in v:
                if k not in ("label", "preset"):
                    check_field(k, k.rsplit(".", 1)[-1], f"axis {key!r} variant field")
            if "preset" in v and v["preset"] not in PRESETS:
                raise fail(key, f"axis {key!r}: unknown preset {v['preset']!r}: choose one of "
                                f"{', '.join(PRESETS)}")
            v.setdefault("label", ",".join(f"{k.rsplit('.', 1)[-1]}={val}" for k, val in v.items())
                         or f"v{i}")
            out.append(v)
        labels = [str(v["label"]) for v in out]
        if len(set(labels)) < len(labels):
            raise fail(key, f"axis {key!r} has two variants with the same label: make labels unique")
        return Axis(key, None, out)
    if any(isinstance(v, dict) for v in values):
        raise fail(key, f"axis {key!r} mixes tables and plain values: use one kind")
    path = ALIASES.get(key, key)
    check_field(path, key.rsplit(".", 1)[-1], "axis")
    if path == "preset":
        for v in values:
            if v not in PRESETS:
                raise fail(key, f"axis {key!r}: unknown preset {v!r}: choose one of "
                                f"{', '.join(PRESETS)}")
    if len({json.dumps(v) for v in values}) < len(values):
        raise fail(key, f"axis {key!r} repeats a value: remove the duplicate")
    return Axis(SHORT.get(path, path), path, values)
