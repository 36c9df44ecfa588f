"""Load YAML spec files with a source location for every value.

PyYAML keeps the last of two equal keys without a word; here a duplicate key is an
error. Every value's file and line is kept in a :class:`Located` map so that later
validation errors can point at the line that caused them. ``extends:`` chains are
deep-merged (the child wins) with cycle detection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import Location, SpecError

KeyPath = tuple[str | int, ...]


class Located:
    """A parsed document plus the location of each key path inside it."""

    def __init__(self, data: Any, locations: dict[KeyPath, Location], source: str) -> None:
        self.data = data
        self.locations = locations
        self.source = source

    def where(self, path: KeyPath) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.locations:
                return self.locations[path]
            path = path[:-1]
        return self.locations.get((), Location(self.source))


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _loc(source: str, node: yaml.Node) -> Location:
    return Location(source, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, source: str,
             locations: dict[KeyPath, Location]) -> Any:
    locations[path] = _loc(source, node)
    if isinstance(node, yaml.MappingNode):
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys; explicit keys override them
        out: dict[Any, Any] = {}
        from_merge: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a mapping key must be a plain scalar",
                                location=_loc(source, key_node), path=format_path(path))
            # keys stay text as written: YAML 1.1 would turn `on:`/`yes:` into booleans
            key = key_node.value
            if id(key_node) not in explicit:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)
                del out[key]
            if key in out:
                first = locations[path + (key,)]
                raise SpecError(
                    f"duplicate key {key!r} (first given at line {first.line})",
                    location=_loc(source, key_node), path=format_path(path + (key,)),
                    hint="YAML would silently keep only the last one; remove one of them")
            out[key] = _convert(loader, value_node, path + (key,), source, locations)
            locations[path + (key,)] = _loc(source, key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), source, locations)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> Located:
    """Parse one YAML document into plain Python data with locations."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty", location=Location(source, 1),
                            hint="a spec needs at least `name:` and one component")
        locations: dict[KeyPath, Location] = {}
        data = _convert(loader, node, (), source, locations)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", location=where,
                        hint="check indentation, colons and quotes on that line") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", location=Location(source)) from None
    finally:
        loader.dispose()
    return Located(data, locations, source)


def read_yaml_file(path: Path) -> Located:
    source = str(path)
    if not path.exists():
        raise SpecError("file not found", location=Location(source),
                        hint="check the path; specs usually live in specs/")
    if path.is_dir():
        raise SpecError("this is a folder, not a YAML file", location=Location(source))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError("the file is not UTF-8 text", location=Location(source)) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}",
                        location=Location(source)) from None
    return parse_yaml(text, source)


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


def load_with_extends(path: Path, _chain: tuple[Path, ...] = ()) -> Located:
    """Load a spec file and the files it ``extends:``, deep-merged, cycles reported."""
    path = path.resolve() if path.exists() else path
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise SpecError(f"`extends` forms a cycle: {cycle}", location=Location(str(_chain[-1])),
                        path="extends", hint="remove one of the `extends` links")
    doc = read_yaml_file(path)
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
    for i, parent in enumerate(parents):
        parent_path = (path.parent / parent)
        if not parent_path.exists():
            where = doc.where(("extends", i)) if len(parents) > 1 else doc.where(("extends",))
            raise SpecError(f"extended file {parent!r} not found (looked at {parent_path})",
                            location=where, path="extends",
                            hint="paths in `extends` are relative to the extending file")
        base = load_with_extends(parent_path, (*_chain, path))
        data = deep_merge(data, base.data)
        locations.update(base.locations)
    data = deep_merge(data, doc.data)
    locations.update({k: v for k, v in doc.locations.items() if k[:1] != ("extends",)})
    return Located(data, locations, doc.source)
