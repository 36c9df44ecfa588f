"""Load YAML spec files with a source location for every value.

PyYAML keeps the last of two equal keys without a word; here a duplicate key is an
error. Every value's file and line is kept in a :class:`Located` map so that later
validation errors can point at the line that caused them. ``extends:`` chains are
deep-merged (the child wins) with cycle detection.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .errors import Location, SpecError
from .yamlsafe import KeyPath, format_path, has_surrogates, parse_yaml_text

__all__ = ["KeyPath", "Located", "format_path", "parse_yaml", "read_yaml_file",
           "load_with_extends", "deep_merge"]


class Located:
    """A parsed document plus the location of each key path inside it."""

    def __init__(self, data: Any, locations: dict[KeyPath, Location], source: str) -> None:
        self.data = data
        self.locations = locations
        self.source = source
        self.files: list[str] = [source]  # this file and every file it extends

    def where(self, path: KeyPath) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.locations:
                return self.locations[path]
            path = path[:-1]
        return self.locations.get((), Location(self.source))


MAX_FILE_BYTES = 1024 * 1024
MAX_EXTENDED_FILES = 64  # files one spec may load through `extends:` (diamonds count twice)


def parse_yaml(text: str, source: str) -> Located:
    """Parse one YAML document into plain Python data with locations (bounded: see
    :mod:`harness.yamlsafe`)."""
    data, locations = parse_yaml_text(text, source)
    return Located(data, locations, source)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most :data:`MAX_FILE_BYTES`, UTF-8.

    The file is checked with ``stat`` before it is opened (a FIFO would block, a device
    such as /dev/zero never ends) and opened non-blocking, then checked again."""
    source = str(path)
    if has_surrogates(source):  # undecodable bytes in the name (argv's surrogateescape)
        raise SpecError("the file name is not valid UTF-8",
                        location=Location(source.encode("utf-8", "backslashreplace").decode()),
                        hint="rename the file with UTF-8 characters only")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SpecError("file not found", location=Location(source),
                        hint="check the path; specs usually live in specs/") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read the file: {getattr(exc, 'strerror', None) or exc}",
                        location=Location(source)) from None
    if not stat.S_ISREG(info.st_mode):
        kind = _file_kind(info.st_mode)
        if kind == "a folder":
            raise SpecError("this is a folder, not a YAML file", location=Location(source))
        raise SpecError(f"this is {kind}, not a regular file", location=Location(source),
                        hint="a spec (and every file it extends) must be a regular YAML file")
    if info.st_size > MAX_FILE_BYTES:
        raise SpecError(f"the file is {info.st_size} bytes, more than the limit of "
                        f"{MAX_FILE_BYTES}", location=Location(source),
                        hint="a spec is a short YAML file; keep data in files a dataset reads")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise SpecError("this is not a regular file", location=Location(source))
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror or exc}",
                        location=Location(source)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"the file is more than {MAX_FILE_BYTES} bytes",
                        location=Location(source))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError("the file is not UTF-8 text", location=Location(source, line),
                        hint="save it as UTF-8") from None


def read_yaml_file(path: Path) -> Located:
    return parse_yaml(read_spec_text(path), str(path))


def deep_merge(base: Any, over: Any) -> Any:
    """Merge ``over`` into ``base``: mappings merge key by key, anything else is replaced;
    ``key: null`` in ``over`` removes an inherited ``key`` (``extends:`` then drop an entry)."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            if value is None and key in base:
                merged.pop(key)
            else:
                merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return over


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a NUL in the path, a name too long, ...
        return False


def _read_extended(path: Path, at: Location | None) -> Located:
    """Read one file of an ``extends:`` chain; an error in a parent names the line of the
    file that extends it."""
    try:
        return read_yaml_file(path)
    except SpecError as exc:
        if at is None:
            raise
        if exc.location is None or exc.location.line is None:  # the file itself is bad
            raise SpecError(f"extended file {str(path)!r}: {exc.message}", location=at,
                            path="extends", hint=exc.hint) from None
        hint = f"{exc.hint}; " if exc.hint else ""
        raise SpecError(exc.message, location=exc.location, path=exc.path,
                        hint=f"{hint}this file is extended at {at}") from None


def load_with_extends(path: Path, _chain: tuple[Path, ...] = (),
                      _at: Location | None = None, _budget: list[int] | None = None) -> Located:
    """Load a spec file and the files it ``extends:``, deep-merged, cycles reported."""
    budget = _budget if _budget is not None else [MAX_EXTENDED_FILES]
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(f"`extends` loads more than {MAX_EXTENDED_FILES} files",
                        location=_at, path="extends",
                        hint="a file extended many times (directly or through others) "
                        "counts each time; extend fewer files")
    if _exists(path):
        path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise SpecError(f"`extends` forms a cycle: {cycle}", location=_at or Location(
            str(_chain[-1])), path="extends", hint="remove one of the `extends` links")
    doc = _read_extended(path, _at)
    if not isinstance(doc.data, dict):
        raise SpecError("a spec must be a mapping of keys (name:, datasets:, ...)",
                        location=doc.where(()), hint="see docs/spec-reference.md")
    parents = doc.data.pop("extends", None)
    if parents is None:
        return doc
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise SpecError("`extends` takes a file path or a list of file paths",
                        location=doc.where(("extends",)), path="extends")
    data: Any = {}
    locations: dict[KeyPath, Location] = {}
    files = list(doc.files)
    for i, parent in enumerate(parents):
        parent_path = (path.parent / parent)
        where = doc.where(("extends", i)) if len(parents) > 1 else doc.where(("extends",))
        if not _exists(parent_path):
            raise SpecError(f"extended file {parent!r} not found (looked at {parent_path})",
                            location=where, path="extends",
                            hint="paths in `extends` are relative to the extending file")
        base = load_with_extends(parent_path, (*_chain, path), where, budget)
        data = deep_merge(data, base.data)
        locations.update(base.locations)
        files += [f for f in base.files if f not in files]
    data = deep_merge(data, doc.data)
    locations.update({k: v for k, v in doc.locations.items() if k[:1] != ("extends",)})
    merged = Located(data, locations, doc.source)
    merged.files = files
    return merged
