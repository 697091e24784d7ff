"""A post as bytes: split into BOM, front matter lines and body; read with a safe YAML loader.

TOML front matter (`+++`) is split the same way and read by toml_document.py.

Reading composes the YAML (libyaml's CSafeLoader, the loader python-frontmatter uses) so the
editor also learns on which line each top-level key and value sits; the common form is read by
a line scanner (scanner.py) that gives the same nodes and values faster. Nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.errors import PostFormatError
from worker.frontmatter.scanner import scan
from worker.frontmatter.toml_document import read_toml

BOM = b"\xef\xbb\xbf"
MAX_FRONT_MATTER_BYTES = 1 << 20
MAX_NODES = 200_000
MAX_DEPTH = 64

HISTORY_KEY = "history"

_OPENING = re.compile(rb"---[ \t]*(\r\n|\n|\r)")
_CLOSING = re.compile(rb"^(?:---|\.\.\.)[ \t]*(?:\r\n|\n|\r|\Z)", re.MULTILINE)
_TOML_OPENING = re.compile(rb"\+\+\+[ \t]*(\r\n|\n|\r)")
_TOML_CLOSING = re.compile(rb"^\+\+\+[ \t]*(?:\r\n|\n|\r|\Z)", re.MULTILINE)
# Characters libyaml refuses or counts as line breaks, yet real posts carry inside quoted
# text (one real post has a raw U+008C in its title). They are swapped for private-use
# stand-ins while parsing and swapped back in the values, so line numbers stay true.
_TOLERATED = re.compile("[\x80-\x9f\u2028\u2029]")
_STAND_IN_BASE = 0xF0000
_STAND_IN = re.compile("[\U000f0080-\U000f009f\U000f2028\U000f2029]")


@dataclass(frozen=True)
class Document:
    """The bytes of a post, split; `lines` are the front matter lines with their endings."""

    bom: bytes
    opening: bytes
    lines: tuple[bytes, ...]
    closing: bytes
    body: bytes

    @property
    def newline(self) -> bytes:
        """The line ending the file uses, taken from its opening `---` line."""
        return self.opening[3:].lstrip(b" \t")

    @property
    def is_toml(self) -> bool:
        """Whether the front matter is TOML (`+++`) rather than YAML (`---`)."""
        return self.opening.startswith(b"+++")

    def front_text(self) -> str:
        """The front matter as text (UTF-8), without the delimiters."""
        try:
            return b"".join(self.lines).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PostFormatError(f"front matter is not UTF-8 (byte {exc.start})") from None

    def to_bytes(self, lines: list[bytes] | tuple[bytes, ...] | None = None) -> bytes:
        """The whole post again, with `lines` in place of the front matter if given."""
        front = self.lines if lines is None else lines
        return b"".join((self.bom, self.opening, *front, self.closing, self.body))


class Entry(NamedTuple):
    """Where one top-level key sits: its line, its value node, and the value as read.

    A named tuple, not a dataclass: a frozen dataclass costs a post ~1 µs per key to build.
    """

    key: str
    line: int
    node: Node


@dataclass(frozen=True)
class FrontMatter:
    """The parsed front matter: the mapping and the position of each top-level key."""

    mapping: dict[Any, Any]
    entries: tuple[Entry, ...]
    block_style: bool


@dataclass(frozen=True)
class Parsed:
    """A post split and its front matter read, so later steps need not parse it again."""

    doc: Document
    front: FrontMatter


def parse(data: bytes) -> Parsed:
    """Split and read a post; PostFormatError says why it cannot be."""
    doc = split_post(data)
    if doc.is_toml:
        front = FrontMatter(mapping=read_toml_mapping(doc), entries=(), block_style=True)
        return Parsed(doc, front)
    return Parsed(doc, read_front_matter(doc.front_text()))


def read_toml_mapping(doc: Document) -> dict[str, Any]:
    """The values of a TOML front matter, with the limits YAML front matter has."""
    return read_toml(doc.front_text(), MAX_NODES, MAX_DEPTH)


def split_post(data: bytes) -> Document:
    """Split a post's bytes; PostFormatError says why a file is not a front-matter post."""
    bom = BOM if data.startswith(BOM) else b""
    rest = data[len(bom):]
    if not rest.strip():
        raise PostFormatError("empty file")
    if rest.startswith(b"{"):
        raise PostFormatError("JSON front matter is not supported: use YAML (---) or TOML (+++)")
    toml = rest.startswith(b"+++")
    mark = "+++" if toml else "---"
    opening = (_TOML_OPENING if toml else _OPENING).match(rest)
    if opening is None:
        raise PostFormatError(f"no front matter: the file does not start with a '{mark}' line")
    closing = (_TOML_CLOSING if toml else _CLOSING).search(rest, opening.end())
    if closing is None:
        raise PostFormatError(f"front matter is not closed: no '{mark}' line after the opening one")
    if closing.start() - opening.end() > MAX_FRONT_MATTER_BYTES:
        raise PostFormatError(f"front matter is larger than {MAX_FRONT_MATTER_BYTES} bytes")
    front = rest[opening.end():closing.start()]
    return Document(
        bom=bom,
        opening=opening.group(0),
        lines=tuple(front.splitlines(keepends=True)),
        closing=closing.group(0),
        body=rest[closing.end():],
    )


def read_front_matter(text: str) -> FrontMatter:
    """Parse front matter text safely; PostFormatError names what is wrong and where.

    The common form is read by the line scanner, which gives what composing would; any other
    text is composed as YAML.
    """
    scanned = scan(text, MAX_NODES)
    if scanned is None:
        return compose_front_matter(text)
    return FrontMatter(
        mapping=scanned.mapping,
        entries=tuple(map(Entry._make, scanned.entries())),
        block_style=True,
    )


def read_mapping(text: str) -> dict[Any, Any]:
    """Only the values of front matter text (what an edit's read-back compares), read as above."""
    scanned = scan(text, MAX_NODES)
    return compose_front_matter(text).mapping if scanned is None else scanned.mapping


def compose_front_matter(text: str) -> FrontMatter:
    """Parse front matter text by composing it as YAML, whatever its form."""
    tolerant = _TOLERATED.search(text) is not None
    if tolerant:
        if _STAND_IN.search(text):
            raise PostFormatError("front matter holds private-use characters postrefresh needs")
        text = _TOLERATED.sub(lambda m: chr(_STAND_IN_BASE + ord(m.group())), text)
    node, mapping = _compose_and_construct(text)
    if tolerant:
        mapping = _restore(mapping)
    if node is None:
        return FrontMatter(mapping={}, entries=(), block_style=True)
    entries = tuple(
        Entry(key=k.value, line=k.start_mark.line, node=v)
        for k, v in node.value
        if isinstance(k, ScalarNode) and isinstance(k.value, str)
    )
    return FrontMatter(mapping=mapping, entries=entries, block_style=not node.flow_style)


def _compose_and_construct(text: str) -> tuple[MappingNode | None, dict[Any, Any]]:
    loader = yaml.CSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        if not isinstance(node, MappingNode):
            raise PostFormatError("front matter is valid YAML but not a mapping of keys")
        _check_shape(node)
        mapping = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 2}" if exc.problem_mark else ""
        raise PostFormatError(f"invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PostFormatError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise PostFormatError("front matter is nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(mapping, dict):
        raise PostFormatError("front matter is valid YAML but not a mapping of keys")
    return node, mapping


def _check_shape(root: Node) -> None:
    """Refuse aliases (YAML bombs), absurd sizes and depths before building any values."""
    seen: set[int] = set()
    for node, depth in _walk(root):
        if id(node) in seen:
            raise PostFormatError("front matter uses YAML aliases (*name), which are not supported")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise PostFormatError(f"front matter is nested deeper than {MAX_DEPTH} levels")
        if len(seen) > MAX_NODES:
            raise PostFormatError(f"front matter has more than {MAX_NODES} values")


def _walk(root: Node) -> Iterator[tuple[Node, int]]:
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _restore(value: Any) -> Any:
    if isinstance(value, str):
        return _STAND_IN.sub(lambda m: chr(ord(m.group()) - _STAND_IN_BASE), value)
    if isinstance(value, list):
        return [_restore(v) for v in value]
    if isinstance(value, dict):
        return {_restore(k): _restore(v) for k, v in value.items()}
    return value
