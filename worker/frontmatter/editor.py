"""Minimal in-place edits of a post's front matter, each value written in the file's own style.

Only the lines of changed values change; new keys go after the user's keys (before the
`history:` block, which postrefresh owns and keeps last). Every edit is read back and compared
with what was asked; anything that would not read back exactly is refused with UnsafeEdit.
TOML front matter (`+++`) is edited by toml_editor.py under the same promises and check.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from worker.errors import PostFormatError, UnsafeEdit
from worker.frontmatter.document import (
    HISTORY_KEY,
    Document,
    Entry,
    FrontMatter,
    Parsed,
    parse,
    read_mapping,
    read_toml_mapping,
    split_post,
)
from worker.frontmatter.toml_editor import edit_toml, history_without_nulls

__all__ = ["HISTORY_KEY", "Edit", "EditResult", "apply_edit", "normalise"]
# Characters YAML does not allow raw in a scalar, or reads as line breaks: always escaped.
_UNPRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Edit:
    """What to change: values to set (str) or delete (None), and a history entry to append."""

    values: Mapping[str, str | None] = field(default_factory=dict)
    history_entry: Mapping[str, str | None] | None = None
    history_keep: int = 30


@dataclass(frozen=True)
class EditResult:
    """The new bytes and the history entries that left the front matter (oldest first)."""

    data: bytes
    dropped_history: list[dict[str, Any]]


def apply_edit(data: bytes, edit: Edit, parsed: Parsed | None = None) -> EditResult:
    """Return `data` with `edit` applied as a minimal in-place change (pure: no I/O).

    `parsed` is `parse(data)` when the caller already has it.
    """
    parsed = parsed if parsed is not None else parse(data)
    doc, front = parsed.doc, parsed.front
    if not edit.values and edit.history_entry is None:
        return EditResult(data, [])
    if doc.is_toml:
        return _apply_toml(data, doc, front, edit)
    if not front.block_style:
        raise UnsafeEdit("front matter is a flow mapping ({...}); edit it by hand")
    plan = _Plan(doc, front)
    for key, value in edit.values.items():
        plan.set_value(key, value)
    dropped: list[dict[str, Any]] = []
    if edit.history_entry is not None:
        dropped = plan.append_history(edit.history_entry, edit.history_keep)
    new_data = doc.to_bytes(plan.render())
    _check_reads_back(front.mapping, new_data, edit, len(dropped))
    return EditResult(new_data, dropped)


def _apply_toml(data: bytes, doc: Document, front: FrontMatter, edit: Edit) -> EditResult:
    entry = None if edit.history_entry is None else history_without_nulls(edit.history_entry)
    edit = dataclasses.replace(edit, history_entry=entry)
    new_data, count = edit_toml(doc, front.mapping, edit.values, entry, edit.history_keep)
    _check_reads_back(front.mapping, new_data, edit, count)
    dropped: list[dict[str, Any]] = list(front.mapping.get(HISTORY_KEY) or [])[:count]
    return EditResult(new_data, dropped)


class _Plan:
    """Line-level changes to one front matter, rendered at the end."""

    def __init__(self, doc: Document, front: FrontMatter) -> None:
        self.doc = doc
        self.front = front
        self.newline = doc.newline
        self.replaced: dict[int, bytes] = {}
        self.removed: set[int] = set()
        self.new_keys: list[bytes] = []
        self.new_items: list[bytes] = []
        text = "".join(line.decode("utf-8") for line in doc.lines)
        self.slash_escaped = "\\/" in text
        self.default_style = _dominant_style(front.entries)
        self.history = _history_entry(front)

    def set_value(self, key: str, value: str | None) -> None:
        entries = [e for e in self.front.entries if e.key == key]
        if len(entries) > 1:
            raise UnsafeEdit(f"key {key!r} appears {len(entries)} times")
        if not entries:
            if value is not None:
                self.new_keys.append(self._new_key_line(key, value))
            return
        entry = entries[0]
        if key == HISTORY_KEY:
            raise UnsafeEdit("'history' is postrefresh's own block; it is not set as a value")
        line = self.doc.lines[entry.line].decode("utf-8")
        start, end = _value_span(entry, line)
        if value is None:
            self.removed.add(entry.line)
            return
        old = line[start:end]
        new = _encode(value, _style_of(entry.node), old, self.slash_escaped)
        if start == end and not line[:start].endswith((" ", "\t")):
            new = " " + new
        self.replaced[entry.line] = (line[:start] + new + line[end:]).encode("utf-8")

    def append_history(self, entry: Mapping[str, str | None], keep: int) -> list[dict[str, Any]]:
        item_line = self._history_item(entry)
        old_items: list[dict[str, Any]] = list(self.front.mapping.get(HISTORY_KEY) or [])
        if self.history is None:
            self.new_items = [f"{HISTORY_KEY}:".encode() + self.newline, item_line]
            return []
        lines = _history_item_lines(self.history)
        drop = max(0, len(old_items) + 1 - keep)
        self.removed.update(lines[:drop])
        self.new_items = [item_line]
        return old_items[:drop]

    def render(self) -> list[bytes]:
        history_line = self.history.line if self.history is not None else None
        items_after = self._history_end() if self.history is not None else None
        out: list[bytes] = []
        for index, line in enumerate(self.doc.lines):
            if index == history_line:
                out.extend(self.new_keys)
            if index not in self.removed:
                out.append(self.replaced.get(index, line))
            if index == items_after:
                out.extend(self.new_items)
        if history_line is None:
            out.extend(self.new_keys)
            out.extend(self.new_items)
        elif items_after is None:
            out.extend(self.new_items)
        return out

    def _history_end(self) -> int | None:
        assert self.history is not None
        lines = _history_item_lines(self.history)
        return lines[-1] if lines else self.history.line

    def _new_key_line(self, key: str, value: str) -> bytes:
        if not _SIMPLE_KEY.fullmatch(key):
            raise UnsafeEdit(f"cannot add key {key!r}: only simple names can be added")
        encoded = _encode(value, self.default_style, "", self.slash_escaped)
        return f"{key}: {encoded}".encode() + self.newline

    def _history_item(self, entry: Mapping[str, str | None]) -> bytes:
        parts = []
        for key, value in entry.items():
            name = key if _SIMPLE_KEY.fullmatch(key) else _double_quoted(key, False)
            parts.append(f"{name}: {'null' if value is None else _double_quoted(value, False)}")
        prefix = self._item_prefix()
        return f"{prefix}{{{', '.join(parts)}}}".encode() + self.newline

    def _item_prefix(self) -> str:
        if self.history is None or not _history_item_lines(self.history):
            return "  - "
        first = self.doc.lines[_history_item_lines(self.history)[0]].decode("utf-8")
        return first[: first.index("{")]


def _history_entry(front: FrontMatter) -> Entry | None:
    entries = [e for e in front.entries if e.key == HISTORY_KEY]
    if not entries:
        return None
    if len(entries) > 1 or not _is_own_history(entries[0]):
        raise UnsafeEdit("the 'history' block is not in postrefresh's one-line-per-entry form")
    return entries[0]


def _is_own_history(entry: Entry) -> bool:
    node = entry.node
    if not isinstance(node, SequenceNode) or node.flow_style:
        return False
    lines = [item.start_mark.line for item in node.value]
    return all(
        isinstance(item, MappingNode) and item.flow_style
        and item.start_mark.line == item.end_mark.line
        for item in node.value
    ) and len(set(lines)) == len(lines) and all(line > entry.line for line in lines)


def _history_item_lines(entry: Entry) -> list[int]:
    assert isinstance(entry.node, SequenceNode)
    return [item.start_mark.line for item in entry.node.value]


def _value_span(entry: Entry, line: str) -> tuple[int, int]:
    """The columns of `entry`'s value on its line; UnsafeEdit if it is not one plain line."""
    node = entry.node
    if not isinstance(node, ScalarNode):
        kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
        raise UnsafeEdit(f"key {entry.key!r} holds {kind}, not a single value")
    if node.style in ("|", ">"):
        raise UnsafeEdit(f"key {entry.key!r} holds a multi-line block value")
    start, end = node.start_mark, node.end_mark
    if start.line != entry.line or end.line != entry.line:
        raise UnsafeEdit(f"key {entry.key!r} holds a value spanning several lines")
    text = line[start.column:end.column]
    if text[:1] in ("&", "*", "!"):
        raise UnsafeEdit(f"key {entry.key!r} has a YAML anchor, alias or tag")
    return start.column, end.column


def _style_of(node: Any) -> str:
    style = getattr(node, "style", None)
    return style if style in ('"', "'") else "plain"


def _dominant_style(entries: Sequence[Entry]) -> str:
    counts = {'"': 0, "'": 0, "plain": 0}
    for entry in entries:
        if isinstance(entry.node, ScalarNode) and entry.node.value != "":
            counts[_style_of(entry.node)] += 1
    return max(counts, key=lambda style: (counts[style], style == '"'))


def _encode(value: str, style: str, old: str, slash_escaped: bool) -> str:
    if style == "plain" and _reads_back_plain(value):
        return value
    if style == "'" and not _UNPRINTABLE.search(value) and not any(c in value for c in "\r\n\t"):
        return "'" + value.replace("'", "''") + "'"
    return _double_quoted(value, slash_escaped)


def _double_quoted(value: str, slash_escaped: bool) -> str:
    """A JSON-style double-quoted YAML scalar (the style real posts use)."""
    text = json.dumps(value, ensure_ascii=False)
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.replace("/", "\\/") if slash_escaped else text


def _reads_back_plain(value: str) -> bool:
    if not value or value != value.strip() or _UNPRINTABLE.search(value) or any(c in value for c in "\r\n"):
        return False
    try:
        loaded = yaml.load(f"k: {value}\n", Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return False
    return isinstance(loaded, dict) and normalise(loaded.get("k")) == value


def normalise(value: Any) -> Any:
    """Compare values as postrefresh sees them: 542436 and "542436" are equal."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_reads_back(old: Mapping[Any, Any], new_data: bytes, edit: Edit, dropped: int) -> None:
    try:
        new_doc = split_post(new_data)
        new = read_toml_mapping(new_doc) if new_doc.is_toml else read_mapping(new_doc.front_text())
    except PostFormatError as exc:
        raise UnsafeEdit(f"the edited front matter would not read back ({exc}); left as is") from None
    expected = dict(old)
    for key, value in edit.values.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    if edit.history_entry is not None:
        expected[HISTORY_KEY] = [*list(old.get(HISTORY_KEY) or [])[dropped:], dict(edit.history_entry)]
    if _normalised(new) != _normalised(expected):
        raise UnsafeEdit("the edited front matter would not read back as intended; left as is")


def _normalised(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: normalise(value) for key, value in mapping.items()}
