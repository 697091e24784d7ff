"""Minimal in-place edits of TOML front matter: only the changed values' lines change.

tomlkit (style-preserving) tells where each top-level `key = value` sits and renders single
values; the document is never re-dumped: lines are spliced, as the YAML editor does. Integers
stay integers, basic ("…") and literal ('…') strings keep their kind, new keys go before the
first table, and history is `[[history]]` tables at the very end, one per entry, appended.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Float, InlineTable, Integer, Item, Key, String, StringType, Table

from worker.errors import UnsafeEdit
from worker.frontmatter.document import HISTORY_KEY, Document

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_HISTORY_HEADER = re.compile(r"[ \t]*\[\[[ \t]*history[ \t]*\]\][ \t]*(?:#.*)?\r?\n?")
# What a literal string cannot hold: its quote, and control characters other than tab.
_NOT_LITERAL = re.compile("['\x00-\x08\x0a-\x1f\x7f]")
_INT64 = 1 << 63


@dataclass(frozen=True)
class _Value:
    """One top-level `key = value`: its first and last line and the columns of its value."""

    line: int
    last: int
    start: int
    end: int
    item: Item


class _Layout:
    """Where the top-level values, the first table and the history tables sit."""

    def __init__(self, doc: Document) -> None:
        text = doc.front_text()
        try:
            body = tomlkit.parse(text).body
        except TOMLKitError as exc:
            raise UnsafeEdit(f"tomlkit cannot read this TOML ({exc}); edit it by hand") from None
        line_starts = [0]
        for raw in doc.lines:
            line_starts.append(line_starts[-1] + len(raw.decode("utf-8")))
        self.values: dict[str, _Value] = {}
        self.last_value_line: int | None = None
        self.first_table: int | None = None
        offset = 0
        for key, item in body:
            if isinstance(item, Table | AoT):
                self.first_table = _first_code_line(doc, _line_of(line_starts, offset))
                break
            rendered = _render(key, item)
            if text[offset:offset + len(rendered)] != rendered:
                raise UnsafeEdit("cannot tell where each TOML value sits; edit it by hand")
            if key is not None:
                line = _line_of(line_starts, offset)
                start = offset - line_starts[line] + len(item.trivia.indent)
                start += len(key.as_string()) + len(key.sep)
                last = _line_of(line_starts, offset + len(rendered) - 1)
                self.values[key.key] = _Value(line, last, start, start + len(item.as_string()), item)
                self.last_value_line = last
            offset += len(rendered)
        self.history_headers = self._history_headers(doc, body)

    def _history_headers(self, doc: Document, body: list[tuple[Key | None, Item]]) -> list[int]:
        """The lines of the `[[history]]` headers; UnsafeEdit unless they end the front matter."""
        items = [(key, item) for key, item in body if key is not None]
        own = [item for key, item in items if key.key == HISTORY_KEY]
        if not own:
            return []
        if len(own) > 1 or not isinstance(own[0], AoT) or items[-1][1] is not own[0]:
            raise UnsafeEdit("the 'history' is not postrefresh's [[history]] tables at the end")
        start = self.first_table or 0
        headers = [i for i in range(start, len(doc.lines))
                   if _HISTORY_HEADER.fullmatch(doc.lines[i].decode("utf-8"))]
        if len(headers) != len(own[0].body):
            raise UnsafeEdit("the [[history]] tables are not one header line each")
        return headers


def edit_toml(doc: Document, mapping: Mapping[str, Any], values: Mapping[str, str | None],
              history_entry: Mapping[str, str] | None, keep: int) -> tuple[bytes, int]:
    """The new bytes of `doc` (read as `mapping`) with `values` set and `history_entry`
    appended; and how many of the oldest history entries were dropped to keep `keep`."""
    splice = _Splice(doc, _Layout(doc))
    for key, value in values.items():
        splice.set_value(key, value, key in mapping)
    dropped = 0
    tail: list[bytes] = []
    if history_entry is not None:
        headers = splice.layout.history_headers
        dropped = min(len(headers), max(0, len(headers) + 1 - keep))
        splice.removed.update(_entry_lines(headers, dropped, len(doc.lines)))
        tail = _history_table(history_entry, splice.newline)
    out = splice.render()
    if tail and out and out[-1].strip():
        out.append(splice.newline.encode())
    return doc.to_bytes(out + tail), dropped


class _Splice:
    """Line-level changes to one TOML front matter, rendered at the end."""

    def __init__(self, doc: Document, layout: _Layout) -> None:
        self.doc = doc
        self.layout = layout
        self.newline = doc.newline.decode("utf-8")
        self.replaced: dict[int, bytes] = {}
        self.removed: set[int] = set()
        self.new_keys: list[bytes] = []
        self.literal = _literal_by_default(layout)
        self.bare_numbers = not _numbers_quoted_by_default(layout)

    def set_value(self, key: str, value: str | None, present: bool) -> None:
        if key == HISTORY_KEY:
            raise UnsafeEdit("'history' is postrefresh's own block; it is not set as a value")
        found = self.layout.values.get(key)
        if found is None and present:
            raise UnsafeEdit(f"key {key!r} is not a plain top-level `key = value` line before "
                             "the tables and dotted keys; edit it by hand")
        if found is None:
            if value is not None:
                encoded = _encode(value, None, self.literal, self.bare_numbers)
                self.new_keys.append(f"{_key(key)} = {encoded}{self.newline}".encode())
        elif value is None:
            self.removed.update(range(found.line, found.last + 1))
        else:
            line = self.doc.lines[found.line].decode("utf-8")
            _check_single(key, found, line)
            new = _encode(value, found.item, self.literal, self.bare_numbers)
            self.replaced[found.line] = (line[:found.start] + new + line[found.end:]).encode("utf-8")

    def render(self) -> list[bytes]:
        """The front matter lines; new keys after the last top-level value (or before the first
        table, or at the end)."""
        after = self.layout.last_value_line
        before = self.layout.first_table if after is None else None
        while before and not self.doc.lines[before - 1].strip():
            before -= 1  # keep the blank lines that set the first table apart
        out: list[bytes] = []
        for index, line in enumerate(self.doc.lines):
            if index == before:
                out.extend(self.new_keys)
            if index not in self.removed:
                out.append(self.replaced.get(index, line))
            if index == after:
                out.extend(self.new_keys)
        if after is None and before is None:
            out.extend(self.new_keys)
        return out


def _entry_lines(headers: list[int], count: int, end: int) -> range:
    """The lines of the oldest `count` history tables (each up to the next header)."""
    if count == 0:
        return range(0)
    stop = headers[count] if count < len(headers) else end
    return range(headers[0], stop)


def _history_table(entry: Mapping[str, str], newline: str) -> list[bytes]:
    rows = [f"[[{HISTORY_KEY}]]", *(f"{_key(k)} = {_basic(v)}" for k, v in entry.items())]
    return [f"{row}{newline}".encode() for row in rows]


def _check_single(key: str, found: _Value, line: str) -> None:
    item = found.item
    if isinstance(item, Array | InlineTable):
        raise UnsafeEdit(f"key {key!r} holds {'a list' if isinstance(item, Array) else 'a table'}, "
                         "not a single value")
    if "\n" in line[found.start:found.end] or found.end > len(line.rstrip("\r\n")):
        raise UnsafeEdit(f"key {key!r} holds a value spanning several lines")


def _encode(value: str, old: Item | None, literal: bool, bare_numbers: bool) -> str:
    """`value` in the style of the value it replaces; for a new key, in the file's usual style."""
    if isinstance(old, String):
        literal, bare_numbers = old.type is StringType.SLL, False
    elif old is not None:
        bare_numbers = isinstance(old, Integer)
    if bare_numbers and _INTEGER.fullmatch(value) and -_INT64 <= int(value) < _INT64:
        return value
    if isinstance(old, Float) and _FLOAT.fullmatch(value) and str(float(value)) == value:
        return value
    if literal and not _NOT_LITERAL.search(value):
        return f"'{value}'"
    return _basic(value)


def _basic(value: str) -> str:
    return tomlkit.string(value).as_string()


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _basic(key)


def _literal_by_default(layout: _Layout) -> bool:
    """Whether most of the file's top-level strings are literal ('…') ones."""
    kinds = [v.item.type for v in layout.values.values() if isinstance(v.item, String)]
    return kinds.count(StringType.SLL) > kinds.count(StringType.SLB)


def _numbers_quoted_by_default(layout: _Layout) -> bool:
    """Whether most of the file's top-level whole numbers are held as strings ("123")."""
    items = [v.item for v in layout.values.values()]
    quoted = sum(isinstance(i, String) and _INTEGER.fullmatch(str(i)) is not None for i in items)
    return quoted > sum(isinstance(i, Integer) for i in items)


def _render(key: Key | None, item: Item) -> str:
    """How tomlkit writes a top-level item back: its exact text in the file."""
    if key is None:
        return item.as_string()
    trivia = item.trivia
    return (f"{trivia.indent}{key.as_string()}{key.sep}{item.as_string()}"
            f"{trivia.comment_ws}{trivia.comment}{trivia.trail}")


def _line_of(line_starts: list[int], offset: int) -> int:
    return bisect_right(line_starts, offset) - 1


def _first_code_line(doc: Document, index: int) -> int:
    """The first line from `index` on that is neither blank nor a comment (a table's header)."""
    while index < len(doc.lines) and doc.lines[index].lstrip()[:1] in (b"", b"#"):
        index += 1
    return index


def history_without_nulls(entry: Mapping[str, str | None]) -> dict[str, str]:
    """A history entry as TOML can hold it: TOML has no null, so an unknown value is left out."""
    return {key: value for key, value in entry.items() if value is not None}

