"""The plugin registry: a pluggy PluginManager plus an adapter-name index.

Entry points of group ``harness`` are loaded one at a time: a plugin that fails to
import is reported by name and skipped (``strict=True`` turns that into an error),
unlike ``PluginManager.load_setuptools_entrypoints``, which stops at the first one.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .adapter import Adapter
from .errors import RegistryError

GROUP = "harness"


class PluginWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


@dataclass(frozen=True)
class AdapterInfo:
    cls: type[Adapter]
    plugin: str
    package: str
    package_version: str

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def kind(self) -> str:
        return self.cls.kind


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.adapters: dict[str, AdapterInfo] = {}
        self.broken: dict[str, str] = {}
        self._origin: dict[str, tuple[str, str]] = {}

    # -- loading -------------------------------------------------------------------
    def load_entry_points(self, strict: bool = False) -> None:
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if self.pm.has_plugin(ep.name) or ep.name in self.broken:
                continue
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure of third-party code
                reason = f"{type(exc).__name__}: {exc}"
                self.broken[ep.name] = reason
                msg = (f"plugin {ep.name!r} (package {package} {version}, entry point "
                       f"{ep.value}) failed to load and was skipped: {reason}")
                if strict:
                    raise RegistryError(msg, hint="fix or uninstall that package, or run "
                                        "without --strict-plugins to skip it") from None
                warnings.warn(msg, PluginWarning, stacklevel=2)
                continue
            self.register(plugin, ep.name, package, version)

    def register(self, plugin: Any, name: str, package: str = "?", version: str = "?") -> None:
        self.pm.register(plugin, name=name)
        self._origin[name] = (package, version)
        impls = [i for i in self.pm.hook.harness_adapters.get_hookimpls() if i.plugin_name == name]
        for impl in impls:
            classes: Any = impl.function() or []
            for cls in classes:
                self._add(cls, name, package, version)

    def _add(self, cls: type[Adapter], plugin: str, package: str, version: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)) or not cls.name or not cls.kind:
            raise RegistryError(f"plugin {plugin!r} returned {cls!r}, which is not an adapter "
                                "class with `kind` and `name` set")
        if cls.name in self.adapters:
            other = self.adapters[cls.name]
            if other.cls is cls:
                return
            raise RegistryError(
                f"adapter name {cls.name!r} is claimed by two plugins: {other.plugin!r} "
                f"(package {other.package} {other.package_version}) and {plugin!r} "
                f"(package {package} {version})",
                hint="uninstall one of the packages, or ask its author to rename the adapter")
        self.adapters[cls.name] = AdapterInfo(cls, plugin, package, version)

    # -- lookup --------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, info in self.adapters.items() if kind is None or info.kind == kind)

    def suggest(self, name: str, kind: str | None = None) -> list[str]:
        pool = self.names(kind)
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
        tail = name.rsplit("/", 1)[-1]
        close += [n for n in pool if n.rsplit("/", 1)[-1] == tail and n not in close]
        return close[:4]

    def get(self, name: str, kind: str | None = None) -> type[Adapter]:
        info = self.adapters.get(name)
        if info is None:
            close = self.suggest(name, kind)
            hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                    else "`harness list` shows every adapter")
            what = f"{kind} adapter" if kind else "adapter"
            raise RegistryError(f"unknown {what} {name!r}", hint=hint)
        if kind is not None and info.kind != kind:
            raise RegistryError(f"{name!r} is a {info.kind} adapter, but a {kind} is expected here",
                                hint=f"`harness list {kind}s` shows the {kind} adapters")
        return info.cls

    def executors(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for classes in self.pm.hook.harness_executors():
            for cls in classes or []:
                out[cls.name] = cls
        return out


_DEFAULT: Registry | None = None


def get_registry(strict: bool = False, refresh: bool = False) -> Registry:
    """The process-wide registry, with every installed plugin loaded."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        reg = Registry()
        reg.load_entry_points(strict=strict)
        _DEFAULT = reg
    elif strict and _DEFAULT.broken:
        name, reason = next(iter(_DEFAULT.broken.items()))
        raise RegistryError(f"plugin {name!r} failed to load: {reason}")
    return _DEFAULT
