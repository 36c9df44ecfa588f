"""The plugin registry: a pluggy PluginManager plus an adapter-name index.

Entry points of group ``harness`` are loaded one at a time: a plugin that fails to
import, exits or hangs on import, is malformed, or clashes with an adapter name already
taken is reported by name and skipped (``strict=True`` turns that into an error), unlike
``PluginManager.load_setuptools_entrypoints``, which stops at the first one. Hooks called
at run time go through :class:`GuardedHooks`: one plugin's raising hook is reported with
its name and the run goes on.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
from pydantic import BaseModel

from . import hookspecs, plugin_probe
from .adapter import Adapter
from .errors import RegistryError

GROUP = "harness"
CORE_PACKAGE = "harness-bench"  # this distribution: its entry points are loaded first


def _package(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return str(dist.metadata["Name"]), str(dist.version)


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
        self._pending_hooks: dict[str, list[str] | None] = {}  # their other hooks (None: ?)
        self._unread: dict[str, tuple[str, str]] = {}  # hooks registered, adapters from manifest
        self.hooks = GuardedHooks(self)

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager, every plugin loaded (its hooks are about to be called)."""
        for name in list(self._pending):
            self.load_pending(name)
        return self._pm

    def pm_for(self, hook: str) -> pluggy.PluginManager:
        """The plugin manager with every plugin loaded that may implement ``hook``."""
        for name in list(self._pending):
            hooks = self._pending_hooks.get(name)
            if hooks is None or hook in hooks:
                self.load_pending(name, hooks_only=hooks is not None)
        return self._pm

    def plugin_hooks(self, name: str) -> list[str]:
        """The hooks a registered plugin implements, ``harness_adapters`` aside."""
        plugin = self._pm.get_plugin(name)
        callers = self._pm.get_hookcallers(plugin) if plugin is not None else None
        return sorted(c.name for c in callers or [] if c.name != "harness_adapters")

    # -- loading -------------------------------------------------------------------
    def load_entry_points(self, strict: bool = False) -> None:
        """Load every ``harness`` entry point, the core's own first, then by name.

        A plugin that fails to import (any ``BaseException`` but Ctrl-C), that exits or
        hangs on import (see :mod:`harness.plugin_probe`), that is malformed or claims an
        adapter name already taken is skipped with a warning naming it; ``strict=True``
        makes that an error instead. Plugins known from the manifest are imported on use.
        """
        from . import manifest
        cached = manifest.Manifest() if manifest.enabled() and not strict else None
        eps = sorted(metadata.entry_points(group=GROUP),
                     key=lambda e: (_package(e)[0] != CORE_PACKAGE, e.name))
        eps = [e for e in eps if not (self._pm.has_plugin(e.name) or e.name in self.broken
                                      or e.name in self._pending)]
        todo = []
        for ep in eps:
            package, version = _package(ep)
            key = manifest.entry_key(ep, package, version) if cached is not None else ""
            rows = cached.get(key) if cached is not None else None
            todo.append((ep, package, version, key, rows))
        unsafe = plugin_probe.unsafe_entry_points(
            [(ep, package, version) for ep, package, version, _, rows in todo
             if rows is None and package != CORE_PACKAGE])
        for ep, package, version, key, rows in todo:
            if rows is not None:  # its adapters are known: import its modules when needed
                known = [manifest.LazyAdapterInfo(row, ep.name, package, version, self)
                         for row in rows]
                try:
                    for info in known:
                        self._add_known(info)
                except RegistryError as exc:
                    for info in known:
                        if self.adapters.get(info.name) is info:
                            del self.adapters[info.name]
                    self._skip(ep.name, f"plugin {ep.name!r} (package {package} {version}, "
                               f"entry point {ep.value}) was skipped: {exc.message}", strict,
                               exc.hint)
                    continue
                self._pending[ep.name] = (ep, package, version)
                self._pending_hooks[ep.name] = cached.hooks(key) if cached is not None else None
                continue
            if ep.name in unsafe:
                self._skip(ep.name, f"plugin {ep.name!r} (package {package} {version}, entry "
                           f"point {ep.value}) {unsafe[ep.name]} and was skipped", strict)
                continue
            if self._load(ep, package, version, strict) and cached is not None:
                classes = [i.cls for i in self.adapters.values()
                           if i.plugin == ep.name and isinstance(i, AdapterInfo)]
                described = manifest.describe_classes(classes)
                if described is not None:
                    cached.put(key, described, self.plugin_hooks(ep.name))
        if cached is not None:
            cached.save()

    def load_pending(self, plugin: str, adapter: str | None = None,
                     hooks_only: bool = False) -> Any:
        """Load a plugin known from the manifest; the class of ``adapter`` if named.
        ``hooks_only``: import and register its hooks, leaving its adapters as the
        manifest describes them (their modules are imported when a class is needed)."""
        if plugin in self._pending:
            ep, package, version = self._pending.pop(plugin)
            self._pending_hooks.pop(plugin, None)
            if hooks_only:
                if self._load(ep, package, version, strict=False, adapters=False):
                    self._unread[plugin] = (package, version)
                return None
            self._load(ep, package, version, strict=False)
            self._drop_stale(plugin)
        elif plugin in self._unread and adapter is not None:  # its manifest row failed
            package, version = self._unread.pop(plugin)
            try:
                self._read_adapters(plugin, package, version)
            except RegistryError as exc:
                self._skip(plugin, f"plugin {plugin!r} (package {package} {version}) was "
                           f"skipped: {exc.message}", False, exc.hint)
            self._drop_stale(plugin)
        if adapter is None:
            return None
        return self.get(adapter)

    def _drop_stale(self, plugin: str) -> None:
        for name in [n for n, i in self.adapters.items()
                     if i.plugin == plugin and not isinstance(i, AdapterInfo)]:
            del self.adapters[name]  # the manifest named it, the plugin no longer has it

    def _load(self, ep: Any, package: str, version: str, strict: bool,
              adapters: bool = True) -> bool:
        """Import one entry point and register it; False (and a warning) if it fails."""
        where = f"plugin {ep.name!r} (package {package} {version}, entry point {ep.value})"
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # third-party import code: SystemExit included
            self._skip(ep.name, f"{where} failed to load and was skipped: "
                       f"{type(exc).__name__}: {exc}", strict)
            return False
        try:
            self.register(plugin, ep.name, package, version, adapters=adapters)
        except RegistryError as exc:
            self._skip(ep.name, f"{where} was skipped: {exc.message}", strict, exc.hint)
            return False
        return True

    def _skip(self, name: str, msg: str, strict: bool, hint: str | None = None) -> None:
        self.broken[name] = msg
        if strict:
            raise RegistryError(msg, hint=hint or "fix or uninstall that package, or run "
                                "without --strict-plugins to skip it")
        warnings.warn(msg + (f" ({hint})" if hint else ""), PluginWarning, stacklevel=4)

    def register(self, plugin: Any, name: str, package: str = "?", version: str = "?",
                 adapters: bool = True) -> None:
        """Register one plugin and its adapters, all or nothing: a plugin whose hooks have
        a wrong signature, raise, or return anything but distinct adapter classes is
        unregistered again and a RegistryError names it. ``adapters=False`` registers its
        hooks only (its adapters are known from the manifest; see :meth:`pm_for`)."""
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # pluggy's PluginValidationError: a wrong hook signature
            raise RegistryError(f"its hooks are malformed: {exc}") from None
        try:
            self._check_hook_names(name)
            if adapters:
                self._read_adapters(name, package, version)
        except BaseException:
            self._pm.unregister(name=name)
            raise
        self._origin[name] = (package, version)

    def _read_adapters(self, name: str, package: str, version: str) -> None:
        """Call a registered plugin's ``harness_adapters`` and add what it returns."""
        impls = [i for i in self._pm.hook.harness_adapters.get_hookimpls()
                 if i.plugin_name == name]
        found: list[Any] = []
        for impl in impls:
            try:
                classes: Any = impl.function() or []
                found.extend(classes)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise RegistryError(f"its harness_adapters hook raised "
                                    f"{type(exc).__name__}: {exc}") from None
        new: dict[str, AdapterInfo] = {}
        for cls in found:
            self._check(cls, name, package, version, new)
        self.adapters.update(new)

    def _check_hook_names(self, name: str) -> None:
        plugin = self._pm.get_plugin(name)
        for attr in dir(plugin):
            if attr.startswith("harness_") and not hasattr(hookspecs, attr):
                func = getattr(plugin, attr, None)
                if callable(func) and hasattr(func, "harness_impl"):
                    known = ", ".join(n for n in dir(hookspecs) if n.startswith("harness_"))
                    raise RegistryError(f"it implements an unknown hook {attr!r}",
                                        hint=f"the hooks are: {known}")

    def _check(self, cls: Any, plugin: str, package: str, version: str,
               new: dict[str, AdapterInfo]) -> None:
        ok = (isinstance(cls, type) and issubclass(cls, Adapter) and isinstance(cls.name, str)
              and cls.name and isinstance(cls.kind, str) and cls.kind
              and isinstance(cls.Params, type) and issubclass(cls.Params, BaseModel))
        if not ok:
            raise RegistryError(f"plugin {plugin!r} returned {cls!r}, which is not an adapter "
                                "class with `kind`, `name` and a `Params` model set")
        other = new.get(cls.name) or self.adapters.get(cls.name)
        if other is not None and not (other.plugin == plugin and
                                      not isinstance(other, AdapterInfo)):
            if isinstance(other, AdapterInfo) and other.cls is cls:
                return
            self._clash(cls.name, other, plugin, package, version)
        new[cls.name] = AdapterInfo(cls, plugin, package, version)

    def _add_known(self, info: Any) -> None:
        other = self.adapters.get(info.name)
        if other is not None:
            self._clash(info.name, other, info.plugin, info.package, info.package_version)
        self.adapters[info.name] = info

    @staticmethod
    def _clash(name: str, other: Any, plugin: str, package: str, version: str) -> None:
        raise RegistryError(
            f"adapter name {name!r} is claimed by two plugins: {other.plugin!r} "
            f"(package {other.package} {other.package_version}, kept) and {plugin!r} "
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
        for classes in self.hooks.harness_executors():
            for cls in classes or []:
                name = getattr(cls, "name", None)
                if isinstance(name, str) and name and callable(getattr(cls, "run", None)):
                    out.setdefault(name, cls)
                else:
                    warnings.warn(f"a plugin's harness_executors hook returned {cls!r}, which "
                                  "is not an executor class (`name` and `run`); ignored",
                                  PluginWarning, stacklevel=2)
        return out


class GuardedHooks:
    """``registry.hooks.NAME(**kwargs)``: each plugin's implementation of hook NAME is
    called on its own; one that raises (anything but Ctrl-C) is reported with the
    plugin's name and skipped, and the others still run. Returns the non-None results."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Callable[..., list[Any]]:
        caller = getattr(self._registry.pm_for(name).hook, name)

        def call(**kwargs: Any) -> list[Any]:
            out = []
            for impl in reversed(caller.get_hookimpls()):  # pluggy's order: last registered first
                try:
                    result = impl.function(*[kwargs[a] for a in impl.argnames])
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    package, version = self._registry._origin.get(impl.plugin_name, ("?", "?"))
                    warnings.warn(f"plugin {impl.plugin_name!r} (package {package} {version}): "
                                  f"its {name} hook raised {type(exc).__name__}: {exc}; "
                                  "ignored, the run goes on", PluginWarning, stacklevel=2)
                    continue
                if result is not None:
                    out.append(result)
            return out

        return call


_DEFAULT: Registry | None = None


def get_registry(strict: bool = False, refresh: bool = False) -> Registry:
    """The process-wide registry, with every installed plugin loaded."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        reg = Registry()
        reg.load_entry_points(strict=strict)
        _DEFAULT = reg
    elif strict and _DEFAULT.broken:
        reason = next(iter(_DEFAULT.broken.values()))
        raise RegistryError(reason, hint="fix or uninstall that package, or run without "
                            "--strict-plugins to skip it")
    return _DEFAULT
