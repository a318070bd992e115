"""Named registries that plugins extend: sweep jobs, trainer callbacks, analyses.

A plugin registers with the decorator (``@ANALYSES.register("my_table")``) in a module the sweep
file lists under ``plugins``, or through the entry point group named by the registry
(``inrlab.analyses`` …): each entry point there names the object itself and is registered under
the entry point's name the first time a name is looked up and not found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import InrlabError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """``name → object``; :meth:`get` raises a one-line :class:`InrlabError` naming the choices."""

    def __init__(self, what: str, group: str):
        super().__init__()
        self.what, self.group = what, group
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object as ``name``."""
        def deco(obj: T) -> T:
            self[name] = obj
            return obj
        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self:
            self._load_entry_points()
        if name not in self:
            raise InrlabError(f"unknown {self.what} {name!r}: choose one of {', '.join(self)} (or "
                              f"register yours: entry point group {self.group!r}, or a module "
                              f"named in the sweep's plugins)")
        return self[name]

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                self[ep.name] = ep.load()
            except Exception as e:  # noqa: BLE001  (a broken plugin must not break inrlab)
                raise InrlabError(f"{self.what} plugin {ep.name!r} ({ep.value}) failed to load: "
                                  f"{e}") from None
