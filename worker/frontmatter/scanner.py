"""A line scanner for the common front matter: the same nodes and values as the YAML path, or None.

It reads only what it is sure of: `key: "JSON-style string"`, plain integers, flow lists of such
strings, and the block the editor writes for `history:` (`  - {at: "...", likeCount: null}`
lines), every line ending in LF or CRLF. Anything else (comments, tabs, trailing spaces, anchors,
other escapes, characters YAML refuses or reads as line breaks, keys YAML reads as non-strings,
duplicate keys, no key at all) makes it decline, and the caller composes the YAML as before.
Every value it accepts is a JSON literal that YAML reads the same, so all of a post's values are
decoded by one `json.loads`, and nodes are made only when asked for (an edit asks; its read-back
does not). tests/test_frontmatter_scanner.py checks the two paths agree on the corpus, generated
posts, the editor's output and hypothesis-made front matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, NamedTuple

from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_NULL_TAG = "tag:yaml.org,2002:null"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MARK_NAME = "<unicode string>"  # how libyaml names text it was given as str

# Raw characters YAML takes inside double quotes without folding them (no controls, DEL, C1,
# line separators, non-characters), and only the JSON escapes, with no surrogate \u escape
# (libyaml refuses those; JSON would pair them).
_STRING = (
    r'"(?:[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]++'
    r'|\\(?:["\\/bfnrt]|u(?![dD][89a-fA-F])[0-9a-fA-F]{4}))*+"'
)
_KEY = r"[A-Za-z_][A-Za-z0-9_-]{0,127}"
_VALUE = rf"{_STRING}|0|[1-9][0-9]{{0,17}}|\[(?:{_STRING}(?:, ?{_STRING})*+)?\]"
_VALUE_LINES = re.compile(rf"(?:{_KEY}: (?:{_VALUE})\r?\n)*+")
_VALUE_LINE = re.compile(rf"({_KEY}): ({_VALUE})\r?\n")  # within checked value lines only
_BLOCK_KEY_LINE = re.compile(rf"({_KEY}):\r?\n")
_PAIR = rf"{_KEY}: (?:{_STRING}|null)"
_ITEM = rf"- \{{{_PAIR}(?:, {_PAIR})*+\}}\r?\n"
_ITEM_LINES = re.compile(rf"( *){_ITEM}(?:\1{_ITEM})*+")  # every item at the first one's indent
# Within checked item lines only: each pair (and whether it ends its item), each item's braces.
_PAIR_PARTS = re.compile(rf"({_KEY}): ({_STRING}|null)(\}}?)")
_ITEM_BRACES = re.compile(r" *- (\{.*\})\r?\n")
_LIST_ITEM = re.compile(_STRING)
_RESOLVER = Resolver()


def scan(text: str, max_nodes: int) -> Scan | None:
    """`text` read, or None if the scanner is not sure of it or it has more than `max_nodes`."""
    lines = _Lines(text)
    if not lines.read():
        return None
    scanned = Scan(text, lines)
    return scanned if scanned.count <= max_nodes else None


class _Block(NamedTuple):
    """A block of `{key: value, ...}` lines: its first line and `-`, the line after, each item's keys."""

    line: int
    line_start: int
    dash: int
    end_line: int
    end: int
    items: list[list[str]]


_Where = tuple[int, int, int, int]  # a node's line, where that line starts, its start and end
_Top = tuple[str, str | _Block]  # a top-level key and its value's JSON text, or its block


class _Lines:
    """Pass one: check each line's form; note each key and its value's JSON text.

    Where each value sits is worked out again only if its node is asked for (Scan.entries).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = self.line = 0  # pos is where the current line starts
        self.tops: list[_Top] = []
        self.raws: list[str] = []
        self.count = 1

    def read(self) -> bool:
        text, tops = self.text, self.tops
        while self.pos < len(text):
            run = _VALUE_LINES.match(text, self.pos).end()  # type: ignore[union-attr]  # matches ""
            if run == self.pos:
                if not self._block_entry():
                    return False
                continue
            found: list[tuple[str, str]] = _VALUE_LINE.findall(text, self.pos, run)
            tops.extend(found)
            self.raws.extend(raw for _, raw in found)
            self.pos, self.line = run, self.line + len(found)
        keys = [top[0] for top in tops]
        self.count += 2 * len(keys)
        return bool(keys) and len(set(keys)) == len(keys) and all(map(_is_string_key, keys))

    def _block_entry(self) -> bool:
        """A bare `key:` line and the block under it."""
        match = _BLOCK_KEY_LINE.match(self.text, self.pos)
        if match is None:
            return False
        self._next_line(match.end())
        block = self._block()
        if block is not None:
            self.tops.append((match.group(1), block))
        return block is not None

    def _block(self) -> _Block | None:
        match = _ITEM_LINES.match(self.text, self.pos)
        if match is None:
            return None
        items: list[list[str]] = [[]]
        for key, value, close in _PAIR_PARTS.findall(self.text, self.pos, match.end()):
            items[-1].append(key)
            self.raws.append(value)
            if close:
                items.append([])
        items.pop()
        if any(len(set(keys)) != len(keys) for keys in items):
            return None
        if not all(map(_is_string_key, {key for keys in items for key in keys})):
            return None
        block = _Block(self.line, self.pos, match.end(1), self.line + len(items), match.end(), items)
        self.pos, self.line = match.end(), self.line + len(items)
        self.count += len(items) + 2 * sum(map(len, items))
        return block

    def _next_line(self, pos: int) -> None:
        self.pos = pos
        self.line += 1


class Scan:
    """What the scanner read: the mapping (as SafeConstructor makes it) and, on request, the nodes.

    Nodes share their values with `mapping` (as a FrontMatter's reader never changes it).
    """

    def __init__(self, text: str, lines: _Lines) -> None:
        self.text = text
        self.tops = lines.tops
        self.count = lines.count
        values = iter(json.loads("[" + ",".join(lines.raws) + "]"))
        self.mapping: dict[str, Any] = {
            key: next(values) if isinstance(what, str)
            else [{key: next(values) for key in keys} for keys in what.items]
            for key, what in self.tops
        }
        self.count += sum(len(self.mapping[key]) for key, what in self.tops
                          if isinstance(what, str) and what[0] == "[")

    def entries(self) -> list[tuple[str, int, Node]]:
        """(key, line, value node) of each top-level key, as libyaml's composer makes them."""
        out: list[tuple[str, int, Node]] = []
        pos = line = 0
        for key, what in self.tops:
            if isinstance(what, _Block):
                out.append((key, line, self._block(what, self.mapping[key])))
                pos, line = what.end, what.end_line
                continue
            start = pos + len(key) + 2
            end = start + len(what)
            out.append((key, line, self._node(self.mapping[key], line, pos, start, end)))
            pos, line = end + (2 if self.text[end] == "\r" else 1), line + 1
        return out

    def _node(self, value: Any, line: int, line_start: int, start: int, end: int) -> Node:
        where = (line, line_start, start, end)
        if isinstance(value, str):
            return _Scalar(_STR_TAG, value, '"', where)
        if value is None:
            return _Scalar(_NULL_TAG, "null", "", where)
        if isinstance(value, int):
            return _Scalar(_INT_TAG, self.text[start:end], "", where)
        return _Sequence(True, where, partial(self._list_items, value, where))

    def _list_items(self, value: list[str], where: _Where) -> list[Node]:
        line, line_start, start, end = where
        found = _LIST_ITEM.finditer(self.text, start, end)
        return [self._node(item, line, line_start, *m.span()) for item, m in zip(value, found, strict=True)]

    def _block(self, block: _Block, values: list[dict[str, Any]]) -> Node:
        node = _Sequence(False, None, partial(self._block_items, block, values))
        node.start_mark = _marks(block.line, block.line_start, block.dash, block.dash)[0]
        node.end_mark = _marks(block.end_line, block.end, block.end, block.end)[0]
        return node

    def _block_items(self, block: _Block, values: list[dict[str, Any]]) -> list[Node]:
        found = _ITEM_BRACES.finditer(self.text, block.line_start, block.end)
        return [_Mapping((line, m.start(), *m.span(1)), partial(self._pairs, line, m, value))
                for line, m, value in zip(range(block.line, block.end_line), found, values, strict=True)]

    def _pairs(self, line: int, item: re.Match[str], value: dict[str, Any]) -> list[tuple[Node, Node]]:
        line_start = item.start()
        return [
            (_Scalar(_STR_TAG, m.group(1), "", (line, line_start, *m.span(1))),
             self._node(value[m.group(1)], line, line_start, *m.span(2)))
            for m in _PAIR_PARTS.finditer(self.text, *item.span(1))
        ]


class _MadeOnRead:
    """Marks (from `_where`) and a collection's items (from `_make`), made when first read.

    Most are never read: an edit reads the marks of the values it changes and the lines of the
    history items, never their keys and values; a read-only use of a post reads none of them.
    """

    _where: _Where | None
    _make: Callable[[], list[Any]]
    value: Any
    start_mark: Mark
    end_mark: Mark

    def __getattr__(self, name: str) -> Any:
        if name == "value":
            self.value = self._make()
            return self.value
        if name not in ("start_mark", "end_mark") or self._where is None:
            raise AttributeError(name)
        self.start_mark, self.end_mark = _marks(*self._where)
        return getattr(self, name)


class _Scalar(_MadeOnRead, ScalarNode):
    def __init__(self, tag: str, value: Any, style: str, where: _Where) -> None:
        self.tag, self.value, self.style, self._where = tag, value, style, where


class _Sequence(_MadeOnRead, SequenceNode):
    def __init__(self, flow_style: bool, where: _Where | None, make: Callable[[], list[Node]]) -> None:
        self.tag, self.flow_style, self._where, self._make = _SEQ_TAG, flow_style, where, make


class _Mapping(_MadeOnRead, MappingNode):
    def __init__(self, where: _Where, make: Callable[[], list[tuple[Node, Node]]]) -> None:
        self.tag, self.flow_style, self._where, self._make = _MAP_TAG, True, where, make


def _marks(line: int, line_start: int, start: int, end: int) -> tuple[Mark, Mark]:
    """libyaml's marks of the text from `start` to `end` on `line` (which starts at `line_start`)."""
    # libyaml's marks carry no buffer and no pointer (None), though the stub types them int.
    return (Mark(_MARK_NAME, start, line, start - line_start, None, None),  # type: ignore[arg-type]
            Mark(_MARK_NAME, end, line, end - line_start, None, None))  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _is_string_key(key: str) -> bool:
    """Whether YAML reads this plain key as a string (not true, on, null, ...)."""
    tag: str = _RESOLVER.resolve(ScalarNode, key, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG
