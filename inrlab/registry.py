"""Registries of components by name: encodings, activations, norms, techniques, problems.

A registry maps a kind name (``"fourier"``, ``"iga"``, ``"ct"``) to what builds it — for
components, the config dataclass of that kind. The built-in kinds register when their module is
imported (``builtins``); plugins register through the entry-point ``group`` of their package::

    [project.entry-points."inrlab.encodings"]
    mine = "my_package.encoding:MyEncoding"    # a registered class, or a function to call

Both are loaded the first time the registry is read, so ``"mine" in ENCODINGS`` and the CLI see
plugin kinds without anyone importing them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from .errors import InrlabError

T = TypeVar("T")


class UnknownKind(InrlabError, KeyError):
    """A name no kind is registered under (a KeyError too, for ``dict``-style callers)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(MutableMapping[str, T], Generic[T]):
    """Name → component; ``family`` names it in errors (``model.encoding.kind``)."""

    def __init__(self, family: str, group: str, builtins: tuple[str, ...] = ()):
        self.family, self.group, self.builtins = family, group, builtins
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Class decorator: ``@ENCODINGS.register()`` files the class under its ``kind`` default
        (or under ``name``)."""

        def add(obj: T) -> T:
            key = name if name is not None else _kind_of(obj)
            if not key.isidentifier():
                raise InrlabError(f"{self.family} {key!r} must be an identifier (letters, digits, _)")
            self._items[key] = obj
            return obj

        return add

    def load(self) -> None:
        """Import the built-in kinds and the plugins of ``group`` (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                if isinstance(obj, type):
                    self._items.setdefault(ep.name, obj)
                elif callable(obj):
                    obj()
            except Exception as e:  # noqa: BLE001  (a broken plugin must not break inrlab)
                raise InrlabError(f"{self.group} plugin {ep.name!r} ({ep.value}) failed to load: "
                                  f"{e}") from None

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.load()
        return self._items.get(name, default)

    def __getitem__(self, name: str) -> T:
        self.load()
        if name not in self._items:
            raise UnknownKind(f"unknown {self.family} {name!r}: choose one of "
                              f"{', '.join(self._items)}")
        return self._items[name]

    def __setitem__(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(self._items)

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.family}: {', '.join(self)})"


def _kind_of(obj: Any) -> str:
    """The default of a config class's ``kind`` field, else its ``name`` attribute."""
    fields = getattr(obj, "__dataclass_fields__", {})
    if "kind" in fields:
        return str(fields["kind"].default)
    return str(obj.name)


# The component families. Each kind's module registers it on import; ``builtins`` lists them.
ENCODINGS: Registry[Any] = Registry("model.encoding.kind", "inrlab.encodings",
                                    ("inrlab.models.encodings",))
ACTIVATIONS: Registry[Any] = Registry("model.activation.kind", "inrlab.activations",
                                      ("inrlab.models.activations",))
NORMS: Registry[Any] = Registry("model.norm", "inrlab.norms", ("inrlab.models.norms",))
TECHNIQUES: Registry[Any] = Registry("technique", "inrlab.techniques", ("inrlab.techniques",))
