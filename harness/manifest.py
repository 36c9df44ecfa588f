"""A cached manifest of each plugin's adapters, so start-up imports no adapter module.

``harness list``, ``validate`` and ``describe`` need the adapters' names, kinds and
descriptions, and the params models of the adapters a spec names; they need neither
torch nor the other packages' modules. The first time a plugin (an entry point) is
loaded, the registry writes what it provides to ``<cache>/plugin-manifest.json``; later
processes read that and import an adapter's module only when its class is needed. The
manifest also lists the other hooks each plugin implements, so calling a hook (a run's
``harness_run_finished``) imports only the plugins that implement it.

An entry's key holds the distribution's name and version, the entry point, and a stamp
of the plugin's source files (path, size and modification time of every ``.py`` file of
its top-level package), so an edited or upgraded plugin is loaded afresh and a stale
manifest is never used. ``HARNESS_NO_MANIFEST=1`` turns the manifest off.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cachedir import default_cache

if TYPE_CHECKING:
    from .registry import Registry

FILE = "plugin-manifest.json"
SCHEMA = 2  # 2: entries list the plugin's hooks
MAX_ENTRIES = 400
MAX_FILES = 3000  # a bigger package is stamped by its version alone


def enabled() -> bool:
    return os.environ.get("HARNESS_NO_MANIFEST", "") in ("", "0")


_STAMPS: dict[str, str] = {}


def source_stamp(module: str) -> str:
    """A stamp of the source files of ``module``'s top-level package (no import)."""
    top = module.split(".")[0]
    if top in _STAMPS:
        return _STAMPS[top]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "missing"
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
    elif spec.origin:
        roots = [Path(spec.origin)]
    else:
        return "unknown"
    h = hashlib.sha256()
    count = 0
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            count += 1
            if count > MAX_FILES:
                return "large"
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    _STAMPS[top] = h.hexdigest()[:20]
    return _STAMPS[top]


def entry_key(ep: Any, package: str, version: str) -> str:
    return f"{ep.name}|{ep.value}|{package}=={version}|{source_stamp(ep.value.split(':')[0])}"


class Manifest:
    """The manifest file, read once per process and written when it changed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache() / FILE
        self.entries: dict[str, Any] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("schema") == SCHEMA:
                self.entries = dict(data.get("entries", {}))
        except (OSError, ValueError):
            pass

    def get(self, key: str) -> list[dict[str, Any]] | None:
        entry = self.entries.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("adapters"), list):
            return list(entry["adapters"])
        return None

    def hooks(self, key: str) -> list[str] | None:
        """The hooks the plugin implements besides ``harness_adapters`` (None: unknown,
        so it is loaded before any hook is called)."""
        hooks = self.entries.get(key, {}).get("hooks")
        return [str(h) for h in hooks] if isinstance(hooks, list) else None

    def put(self, key: str, adapters: list[dict[str, Any]], hooks: list[str] | None = None
            ) -> None:
        entry = {"adapters": adapters, **({"hooks": sorted(hooks)} if hooks is not None else {})}
        if self.entries.get(key) == entry:
            return
        self.entries.pop(key, None)
        self.entries[key] = entry
        while len(self.entries) > MAX_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from .results import atomic_write_text
        try:
            atomic_write_text(self.path, json.dumps({"schema": SCHEMA, "entries": self.entries}))
            self.dirty = False
        except OSError:  # a read-only cache only costs start-up time
            pass


def describe_classes(classes: list[type]) -> list[dict[str, Any]] | None:
    """Manifest rows for a plugin's adapter classes, or None if one cannot be re-imported
    by module and qualified name (then the plugin is always loaded eagerly)."""
    rows = []
    for cls in classes:
        qual = cls.__qualname__
        if "<locals>" in qual:
            return None
        rows.append({"name": cls.name, "kind": cls.kind, "version": str(cls.version),  # type: ignore[attr-defined]
                     "description": cls.description(),  # type: ignore[attr-defined]
                     "module": cls.__module__, "qualname": qual})
    return rows


class LazyAdapterInfo:
    """An adapter known from the manifest; its class is imported on first use."""

    def __init__(self, row: dict[str, Any], plugin: str, package: str, package_version: str,
                 registry: Registry) -> None:
        self.row, self.plugin = row, plugin
        self.package, self.package_version = package, package_version
        self._registry = registry
        self._cls: type | None = None

    name = property(lambda self: self.row["name"])
    kind = property(lambda self: self.row["kind"])
    version = property(lambda self: self.row["version"])
    description = property(lambda self: self.row["description"])

    @property
    def cls(self) -> Any:
        if self._cls is None:
            try:
                obj: Any = importlib.import_module(self.row["module"])
                for part in self.row["qualname"].split("."):
                    obj = getattr(obj, part)
                if getattr(obj, "name", None) != self.name:
                    raise LookupError("the manifest is stale")
                self._cls = obj
            except Exception:  # stale or broken: load the plugin the ordinary way
                return self._registry.load_pending(self.plugin, self.name)
        return self._cls
