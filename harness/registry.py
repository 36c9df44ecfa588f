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

    @property
    def version(self) -> str:
        return str(self.cls.version)

    @property
    def description(self) -> str:
        return self.cls.description()


class Registry:
    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(GROUP)
        self._pm.add_hookspecs(hookspecs)
        self.adapters: dict[str, Any] = {}  # name -> AdapterInfo or manifest.LazyAdapterInfo
        self.broken: dict[str, str] = {}
        self._origin: dict[str, tuple[str, str]] = {}
        self._pending: dict[str, tuple[Any, str, str]] = {}  # known from the manifest only

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager, every plugin loaded (its hooks are about to be called)."""
        for name in list(self._pending):
            self.load_pending(name)
        return self._pm

    # -- loading -------------------------------------------------------------------
    def load_entry_points(self, strict: bool = False) -> None:
        from . import manifest
        cached = manifest.Manifest() if manifest.enabled() and not strict else None
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if self._pm.has_plugin(ep.name) or ep.name in self.broken or ep.name in self._pending:
                continue
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            key = manifest.entry_key(ep, package, version) if cached is not None else ""
            rows = cached.get(key) if cached is not None else None
            if rows is not None:  # its adapters are known: import its modules when needed
                self._pending[ep.name] = (ep, package, version)
                for row in rows:
                    self._add_known(manifest.LazyAdapterInfo(row, ep.name, package, version,
                                                             self))
                continue
            if self._load(ep, package, version, strict) and cached is not None:
                classes = [i.cls for i in self.adapters.values()
                           if i.plugin == ep.name and isinstance(i, AdapterInfo)]
                described = manifest.describe_classes(classes)
                if described is not None:
                    cached.put(key, described)
        if cached is not None:
            cached.save()

    def load_pending(self, plugin: str, adapter: str | None = None) -> Any:
        """Load a plugin known from the manifest; the class of ``adapter`` if named."""
        if plugin in self._pending:
            ep, package, version = self._pending.pop(plugin)
            self._load(ep, package, version, strict=False)
            for name in [n for n, i in self.adapters.items()
                         if i.plugin == plugin and not isinstance(i, AdapterInfo)]:
                del self.adapters[name]  # the manifest named it, the plugin no longer has it
        if adapter is None:
            return None
        return self.get(adapter)

    def _load(self, ep: Any, package: str, version: str, strict: bool) -> bool:
        """Import one entry point and register it; False (and a warning) if it fails."""
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
            return False
        self.register(plugin, ep.name, package, version)
        return True

    def register(self, plugin: Any, name: str, package: str = "?", version: str = "?") -> None:
        self._pm.register(plugin, name=name)
        self._origin[name] = (package, version)
        impls = [i for i in self._pm.hook.harness_adapters.get_hookimpls()
                 if i.plugin_name == name]
        for impl in impls:
            classes: Any = impl.function() or []
            for cls in classes:
                self._add(cls, name, package, version)

    def _add(self, cls: type[Adapter], plugin: str, package: str, version: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)) or not cls.name or not cls.kind:
            raise RegistryError(f"plugin {plugin!r} returned {cls!r}, which is not an adapter "
                                "class with `kind` and `name` set")
        other = self.adapters.get(cls.name)
        if other is not None and not (other.plugin == plugin and
                                      not isinstance(other, AdapterInfo)):
            if isinstance(other, AdapterInfo) and other.cls is cls:
                return
            self._clash(cls.name, other, plugin, package, version)
        self.adapters[cls.name] = AdapterInfo(cls, plugin, package, version)

    def _add_known(self, info: Any) -> None:
        other = self.adapters.get(info.name)
        if other is not None:
            self._clash(info.name, other, info.plugin, info.package, info.package_version)
        self.adapters[info.name] = info

    @staticmethod
    def _clash(name: str, other: Any, plugin: str, package: str, version: str) -> None:
        raise RegistryError(
            f"adapter name {name!r} is claimed by two plugins: {other.plugin!r} "
            f"(package {other.package} {other.package_version}) and {plugin!r} "
            f"(package {package} {version})",
            hint="uninstall one of the packages, or ask its author to rename the adapter")

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
