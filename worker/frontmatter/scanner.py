"""A line scanner for the common front matter: the same nodes and values as the YAML path, or None.

It reads only what it is sure of: `key: "JSON-style string"`, plain integers, flow lists of such
strings, and the block the editor writes for `history:` (`  - {at: "...", likeCount: null}`
lines), every line ending in LF or CRLF. Anything else (comments, tabs, trailing spaces, anchors,
other escapes, characters YAML refuses or reads as line breaks, keys YAML reads as non-strings,
duplicate keys, no key at all) makes it decline, and the caller composes the YAML as before.
Every string it accepts is a JSON literal that YAML reads the same, so all of a post's strings
are decoded by one `json.loads`; tests/test_frontmatter_scanner.py proves the results equal.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

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
_VALUE_LINE = re.compile(
    rf"({_KEY}): ({_STRING}|0|[1-9][0-9]{{0,17}}|\[(?:{_STRING}(?:, ?{_STRING})*+)?\])\r?\n"
)
_BLOCK_KEY_LINE = re.compile(rf"({_KEY}):\r?\n")
_ITEM_START = re.compile(r"( *)- \{")
_PAIR = re.compile(rf"({_KEY}): ({_STRING}|null)(, |\}}\r?\n)")
_LIST_ITEM = re.compile(_STRING)
_RESOLVER = Resolver()

Scanned = tuple[dict[str, Any], list[tuple[str, int, Node]]]


def scan(text: str, max_nodes: int) -> Scanned | None:
    """The mapping and (key, line, value node) entries of `text`, or None if not sure."""
    scanner = _Scanner(text)
    if not scanner.read() or scanner.count > max_nodes:
        return None
    decoded = json.loads("[" + ",".join(scanner.raws) + "]")
    for node, value in zip(scanner.strings, decoded, strict=True):
        node.value = value
    mapping = {key: _constructed(node) for key, _, node in scanner.entries}
    return mapping, scanner.entries


class _Scanner:
    """One pass over the lines: check each one's form and make its nodes, marked as libyaml would.

    String nodes get their values at the end, from one decode of all their JSON texts (`raws`).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = self.line = 0  # pos is where the current line starts
        self.entries: list[tuple[str, int, Node]] = []
        self.strings: list[ScalarNode] = []
        self.raws: list[str] = []
        self.count = 1

    def read(self) -> bool:
        keys: set[str] = set()
        while self.pos < len(self.text):
            line = self.line
            match = _VALUE_LINE.match(self.text, self.pos)
            if match is not None:
                node: Node | None = self._value(match)
                self._next_line(match.end())
            else:
                match = _BLOCK_KEY_LINE.match(self.text, self.pos)
                if match is None:
                    return False
                self._next_line(match.end())
                node = self._block()
            key = match.group(1)
            if node is None or key in keys or not _is_string_key(key):
                return False
            keys.add(key)
            self.entries.append((key, line, node))
        self.count += 2 * len(self.entries)
        return bool(self.entries)

    def _value(self, match: re.Match[str]) -> Node:
        """The node of a checked value (group 2): a string, list, null or integer."""
        raw = match.group(2)
        start, end = match.span(2)
        if raw[0] == '"':
            return self._string(raw, start, end)
        if raw[0] == "[":
            items = [self._string(m.group(), *m.span()) for m in _LIST_ITEM.finditer(self.text, start, end)]
            self.count += len(items)
            return SequenceNode(_SEQ_TAG, items, *self._marks(start, end), True)
        tag = _NULL_TAG if raw == "null" else _INT_TAG
        return _Scalar(tag, raw, "", (self.line, start - self.pos, start, end))

    def _string(self, raw: str, start: int, end: int) -> ScalarNode:
        node = _Scalar(_STR_TAG, None, '"', (self.line, start - self.pos, start, end))
        self.strings.append(node)
        self.raws.append(raw)
        return node

    def _block(self) -> Node | None:
        """The block sequence of one-line flow mappings after a bare `key:` line."""
        first = _ITEM_START.match(self.text, self.pos)
        if first is None:
            return None
        indent = first.group(1)
        start = self._marks(first.end(1), first.end(1))[0]
        items: list[Node] = []
        while (match := _ITEM_START.match(self.text, self.pos)) and match.group(1) == indent:
            item = self._item(match.end() - 1)
            if item is None:
                return None
            items.append(item)
        self.count += len(items)
        return SequenceNode(_SEQ_TAG, items, start, self._marks(self.pos, self.pos)[0], False)

    def _item(self, brace: int) -> Node | None:
        """One `{key: "value", key: null}` line, from its brace to the next line."""
        pairs: list[tuple[Node, Node]] = []
        keys: set[str] = set()
        pos = brace + 1
        while (match := _PAIR.match(self.text, pos)) is not None:
            key = match.group(1)
            if key in keys or not _is_string_key(key):
                return None
            keys.add(key)
            where = (self.line, match.start(1) - self.pos, *match.span(1))
            pairs.append((_Scalar(_STR_TAG, key, "", where), self._value(match)))
            pos = match.end()
            if match.group(3) != ", ":
                self.count += 2 * len(pairs)
                node = MappingNode(_MAP_TAG, pairs, *self._marks(brace, match.end(2) + 1), True)
                self._next_line(pos)
                return node
        return None

    def _marks(self, start: int, end: int) -> tuple[Mark, Mark]:
        """The marks of text from `start` to `end` on the current line."""
        column = start - self.pos
        return _mark(start, self.line, column), _mark(end, self.line, column + end - start)

    def _next_line(self, pos: int) -> None:
        self.pos = pos
        self.line += 1


class _Scalar(ScalarNode):
    """A ScalarNode that makes its marks (as libyaml would) only when they are read.

    Most never are: the editor reads the marks of the values it changes and of history items.
    """

    def __init__(self, tag: str, value: Any, style: str, where: tuple[int, int, int, int]) -> None:
        self.tag, self.value, self.style = tag, value, style
        self._where = where  # line, column, start index, end index

    def __getattr__(self, name: str) -> Mark:
        if name not in ("start_mark", "end_mark"):
            raise AttributeError(name)
        line, column, start, end = self._where
        self.start_mark = _mark(start, line, column)
        self.end_mark = _mark(end, line, column + end - start)
        return self.start_mark if name == "start_mark" else self.end_mark


def _constructed(node: Node) -> Any:
    """The value SafeConstructor makes of a scanned node."""
    if node.tag == _STR_TAG:
        return node.value
    if node.tag == _INT_TAG:
        return int(node.value)
    if node.tag == _SEQ_TAG:
        return [_constructed(item) for item in node.value]
    if node.tag == _MAP_TAG:
        return {key.value: _constructed(value) for key, value in node.value}
    return None


def _mark(index: int, line: int, column: int) -> Mark:
    # libyaml's marks carry no buffer and no pointer (None), though the stub types it int.
    return Mark(_MARK_NAME, index, line, column, None, None)  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _is_string_key(key: str) -> bool:
    """Whether YAML reads this plain key as a string (not true, on, null, ...)."""
    tag: str = _RESOLVER.resolve(ScalarNode, key, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG
