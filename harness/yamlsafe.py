"""Parse YAML text into plain data with bounded resources and a location for every value.

PyYAML's safe loader is memory- and stack-hungry on hostile input: aliases expand without
limit (billion laughs), a recursive alias (``&a [*a]``) and deep nesting end in
``RecursionError``, tags on sequences and mappings are silently ignored, and merge keys
(``<<: [*b, *a]``) are flattened before duplicate keys can be told apart. Here:

- nesting is limited to :data:`MAX_DEPTH` levels while composing (before any recursion
  gets deep), and the converted document to :data:`MAX_VALUES` values, aliases expanded;
- a recursive alias is an error at the alias's line;
- only the standard tags of plain data are accepted (``!!str``, ``!!int``, ``!!float``,
  ``!!bool``, ``!!null``, ``!!map``, ``!!seq``; timestamps stay text); any other tag, on a
  scalar, a sequence or a mapping, is an error;
- control characters (NUL included) and lone surrogates are errors with file:line;
- a duplicate key is an error; merge keys follow YAML (explicit keys win, then earlier
  merge sources);
- a value that comes from an alias (``*a`` or ``<<: *a``) is located at the alias.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .errors import Location, SpecError

KeyPath = tuple[str | int, ...]

MAX_DEPTH = 64
MAX_VALUES = 100_000

_T = "tag:yaml.org,2002:"
MERGE_TAG = _T + "merge"
SCALAR_TAGS = {_T + t for t in ("str", "int", "float", "bool", "null")}
TEXT_TAGS = {_T + "timestamp"}  # kept as written: dates are not spec values
MAP_TAG, SEQ_TAG = _T + "map", _T + "seq"


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _mark_loc(source: str, mark: Any) -> Location:
    return Location(source, mark.line + 1, mark.column + 1)


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader whose composer limits depth and marks nodes reached through aliases."""

    def __init__(self, text: str, source: str) -> None:
        self.harness_source = source
        self.harness_depth = 0
        self.harness_nodes = 0
        super().__init__(text)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            target = super().compose_node(parent, index)
            alias: Any = copy.copy(target)  # same value list: a recursive alias stays recursive
            alias.start_mark = mark
            alias.harness_target = target
            return alias
        self.harness_depth += 1
        self.harness_nodes += 1
        if self.harness_nodes > MAX_VALUES:  # before composing the rest of a huge file
            raise SpecError(f"the document holds more than {MAX_VALUES} values",
                            location=_mark_loc(self.harness_source, self.peek_event().start_mark),
                            hint="a spec is short; keep data in files a dataset reads")
        try:
            if self.harness_depth > MAX_DEPTH:
                raise SpecError(f"the document nests deeper than {MAX_DEPTH} levels",
                                location=_mark_loc(self.harness_source,
                                                   self.peek_event().start_mark),
                                hint="a spec needs a few levels; flatten this value")
            return super().compose_node(parent, index)
        finally:
            self.harness_depth -= 1


class _Converter:
    """Node tree -> plain data, recording each key path's location; bounded in size."""

    def __init__(self, loader: _BoundedLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.locations: dict[KeyPath, Location] = {}
        self.count = 0
        self.depth = 0
        self.active: set[int] = set()

    def fail(self, message: str, where: Location, path: KeyPath, hint: str | None = None) -> None:
        raise SpecError(message, location=where, path=format_path(path) if path else None,
                        hint=hint)

    def convert(self, node: yaml.Node, path: KeyPath, at: Location | None = None) -> Any:
        target = getattr(node, "harness_target", None)
        if target is not None and at is None:
            at = _mark_loc(self.source, node.start_mark)  # the alias's line for all below
        where = at or _mark_loc(self.source, node.start_mark)
        self.count += 1
        if self.count > MAX_VALUES:
            self.fail(f"the document expands to more than {MAX_VALUES} values (aliases "
                      "expanded)", where, path,
                      hint="aliases that repeat aliases grow exponentially; reuse less")
        self.locations[path] = where
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path, where)
        key = id(target if target is not None else node)
        if key in self.active:
            self.fail("recursive alias: this value contains itself", where, path,
                      hint="an alias may not refer to a value that encloses it")
        if self.depth >= MAX_DEPTH:  # aliases inside aliases nest deeper than the text
            self.fail(f"the document nests deeper than {MAX_DEPTH} levels (aliases "
                      "expanded)", where, path, hint="a spec needs a few levels")
        self.active.add(key)
        self.depth += 1
        try:
            if isinstance(node, yaml.MappingNode):
                if node.tag != MAP_TAG:
                    self.fail(f"unsupported YAML tag {_tag_text(node.tag)} on a mapping", where,
                              path, hint="a spec holds plain data: remove the tag")
                return self.mapping(node, path, at)
            if node.tag != SEQ_TAG:
                self.fail(f"unsupported YAML tag {_tag_text(node.tag)} on a sequence", where,
                          path, hint="a spec holds plain data: remove the tag")
            return [self.convert(item, path + (i,), at) for i, item in enumerate(node.value)]
        finally:
            self.active.discard(key)
            self.depth -= 1

    def scalar(self, node: yaml.ScalarNode, path: KeyPath, where: Location) -> Any:
        if has_surrogates(node.value):
            self.fail("the text holds a lone surrogate (an invalid \\ud800-\\udfff escape)",
                      where, path, hint="write the character itself, or a valid escape")
        if node.tag in TEXT_TAGS:
            return node.value
        if node.tag not in SCALAR_TAGS:
            self.fail(f"unsupported YAML tag {_tag_text(node.tag)}", where, path,
                      hint="a spec holds plain text, numbers, booleans and null: remove the tag")
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError, TypeError) as exc:
            self.fail(f"cannot read this {_tag_text(node.tag)} value: {exc}", where, path)
        except yaml.MarkedYAMLError as exc:
            self.fail(f"cannot read this value: {exc.problem}", where, path)
        return None  # unreachable: fail raises

    def merge_sources(self, value: yaml.Node, where: Location,
                      path: KeyPath) -> list[yaml.MappingNode]:
        nodes = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for item in nodes:
            if not isinstance(item, yaml.MappingNode):
                self.fail("a merge key `<<` takes a mapping or a list of mappings", where, path,
                          hint="e.g. `<<: *defaults` or `<<: [*a, *b]`")
        return nodes  # type: ignore[return-value]

    def mapping(self, node: yaml.MappingNode, path: KeyPath, at: Location | None) -> Any:
        merged: dict[str, Any] = {}
        own = self.locations.get(path)
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        merges: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            (merges if key_node.tag == MERGE_TAG else explicit).append((key_node, value_node))
        for key_node, value_node in merges:
            where = at or _mark_loc(self.source, key_node.start_mark)
            sources = self.merge_sources(value_node, where, path)
            # earlier sources win: convert the last first and let earlier ones overwrite
            for src in reversed(sources):
                src_at = at or (_mark_loc(self.source, src.start_mark)
                                if getattr(src, "harness_target", None) is not None else None)
                merged.update(self.mapping_of(src, path, src_at))
        if own is not None:
            self.locations[path] = own
        out: dict[str, Any] = {}
        for key_node, value_node in explicit:
            where = at or _mark_loc(self.source, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail("a mapping key must be a plain scalar", where, path)
            if key_node.tag not in SCALAR_TAGS | TEXT_TAGS:
                self.fail(f"unsupported YAML tag {_tag_text(key_node.tag)} on a key", where,
                          path, hint="a key is plain text: remove the tag")
            # keys stay text as written: YAML 1.1 would turn `on:`/`yes:` into booleans
            key = key_node.value
            if has_surrogates(key):
                self.fail("the key holds a lone surrogate (an invalid \\ud800-\\udfff escape)",
                          where, path)
            if key in out:
                first = self.locations[path + (key,)]
                self.fail(f"duplicate key {key!r} (first given at line {first.line})", where,
                          path + (key,),
                          hint="YAML would silently keep only the last one; remove one of them")
            out[key] = self.convert(value_node, path + (key,), at)
            self.locations[path + (key,)] = where
        if not merged:
            return out
        merged.update(out)  # explicit keys win over merged ones
        return merged

    def mapping_of(self, node: yaml.Node, path: KeyPath, at: Location | None) -> dict[str, Any]:
        value = self.convert(node, path, at)
        return value if isinstance(value, dict) else {}


def _reader_location(exc: yaml.reader.ReaderError, text: str, source: str) -> Location:
    before = text[:max(exc.position, 0)]
    line = before.count("\n") + 1
    return Location(source, line, len(before) - (before.rfind("\n") + 1) + 1)


def parse_yaml_text(text: str, source: str) -> tuple[Any, dict[KeyPath, Location]]:
    """Parse one YAML document: (plain data, key path -> location)."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text, source)  # the reader checks characters right here
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty", location=Location(source, 1),
                            hint="a spec needs at least `name:` and one component")
        converter = _Converter(loader, source)
        data = converter.convert(node, ())
        return data, converter.locations
    except yaml.reader.ReaderError as exc:
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        what = f"U+{code:04X}"
        kind = "NUL" if code == 0 else "a control character or non-text code point"
        raise SpecError(f"invalid character {what} ({kind}) in the file",
                        location=_reader_location(exc, text, source),
                        hint="remove it; inside double quotes write an escape such as \\t"
                        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", location=where,
                        hint="check indentation, colons and quotes on that line") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", location=Location(source)) from None
    except RecursionError:  # a last resort: the depth limit should come first
        raise SpecError("the document nests too deeply", location=Location(source),
                        hint=f"at most {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
