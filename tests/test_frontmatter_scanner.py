"""The line scanner gives exactly what composing the YAML gives, or declines; and it is used."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bench.gen_posts import generate_site
from worker.errors import PostFormatError, UnsafeEdit
from worker.frontmatter import document
from worker.frontmatter.document import (
    MAX_NODES,
    FrontMatter,
    compose_front_matter,
    parse,
    read_front_matter,
    read_mapping,
    split_post,
)
from worker.frontmatter.editor import Edit, apply_edit
from worker.frontmatter.scanner import scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "posts"
SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "_posts"
GOLDEN = Path(__file__).parent / "golden" / "editor"
# What the YAML path swaps for stand-ins (document._TOLERATED): the scanner always declines them.
TOLERATED = re.compile("[\x80-\x9f\u2028\u2029]")
STAMP = "2026-12-02T01:00:00Z"


def node_shape(node: Node) -> tuple[Any, ...]:
    """Everything a node says: its kind, tag, value (children's shapes), style and both marks."""
    kind = next(k.__name__ for k in (ScalarNode, SequenceNode, MappingNode) if isinstance(node, k))
    value = node.value
    if isinstance(node, SequenceNode):
        value = [node_shape(item) for item in value]
    elif isinstance(node, MappingNode):
        value = [(node_shape(k), node_shape(v)) for k, v in value]
    marks = [(m.name, m.index, m.line, m.column, m.buffer, m.pointer)
             for m in (node.start_mark, node.end_mark)]
    style = node.style if isinstance(node, ScalarNode) else node.flow_style  # type: ignore[attr-defined]
    return kind, node.tag, value, style, marks


def typed(value: Any) -> Any:
    """A value with the type of every part spelled out (so 1 != "1" and True != 1)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def shape(front: FrontMatter) -> tuple[Any, ...]:
    entries = [(e.key, e.line, node_shape(e.node)) for e in front.entries]
    return typed(front.mapping), entries, front.block_style


def scanned_equals_composed(text: str) -> bool:
    """Whether the scanner took `text`; if it did, its result must equal the YAML path's."""
    if scan(text, MAX_NODES) is None:
        return False
    composed = compose_front_matter(text)
    assert shape(read_front_matter(text)) == shape(composed)
    assert typed(read_mapping(text)) == typed(composed.mapping)
    return True


def front_text(data: bytes) -> str:
    return split_post(data).front_text()


def refresh(data: bytes, round_no: int, keep: int = 30) -> bytes:
    """A typical refresh edit: new counts, a new key, the stamp, the old values as history."""
    old = parse(data).front.mapping
    values = {"viewcount": str(round_no * 1000), "likeCount": str(round_no), "commentCount": "7",
              "refreshed_at": f"{STAMP[:-3]}{round_no % 60:02d}Z"}
    entry: dict[str, str | None] = {
        "at": str(old.get("refreshed_at") or old.get("date")),
        "viewcount": old.get("viewcount"), "likeCount": old.get("likeCount"), "status": None}
    return apply_edit(data, Edit(values=values, history_entry=entry, history_keep=keep)).data


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.md")) if CORPUS.is_dir() else []


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    site = tmp_path_factory.mktemp("gen")
    generate_site(site, 300, seed=11)
    return [p.read_bytes() for p in sorted((site / "_posts").iterdir())]


# --- the corpus format is scanned, and scanned right -----------------------------------

@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not on this machine")
def test_every_corpus_post_is_scanned_equal_unless_it_holds_a_character_yaml_refuses() -> None:
    for path in corpus_files():
        text = front_text(path.read_bytes())
        assert scanned_equals_composed(text) is (TOLERATED.search(text) is None), path.name


def test_every_generated_post_is_scanned_and_equals_the_yaml_path(generated: list[bytes]) -> None:
    assert all(scanned_equals_composed(front_text(data)) for data in generated)


def test_seed_posts_are_scanned_equal_or_declined() -> None:
    results = [scanned_equals_composed(front_text(p.read_bytes())) for p in sorted(SEEDS.glob("*.md"))]
    assert any(results)


def test_posts_the_editor_writes_are_scanned_and_equal_after_each_refresh(generated: list[bytes]) -> None:
    sources = generated[:60] + [p.read_bytes() for p in corpus_files()[:60]]
    for data in sources:
        for round_no in range(1, 5):
            data = refresh(data, round_no, keep=3)
            text = front_text(data)
            assert scanned_equals_composed(text) is (TOLERATED.search(text) is None)


def test_golden_editor_files_and_their_results_are_scanned_equal_or_declined() -> None:
    for path in sorted(GOLDEN.glob("*.md")):
        scanned_equals_composed(front_text(path.read_bytes()))


def test_parse_and_the_edit_read_back_go_through_the_scanner(
    generated: list[bytes], monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def composing(text: str) -> FrontMatter:
        calls.append(text)
        return compose_front_matter(text)

    monkeypatch.setattr(document, "compose_front_matter", composing)
    refresh(refresh(generated[0], 1), 2)
    assert calls == []


# --- it declines what it is not sure of, and the YAML path then answers as before --------

DECLINED = {
    "comment": 'a: "x" # note\n',
    "comment line": '# note\na: "x"\n',
    "trailing space": 'a: "x" \n',
    "tab": 'a:\t"x"\n',
    "blank line": 'a: "x"\n\nb: "y"\n',
    "bool key": 'yes: "x"\n',
    "null key": 'null: "x"\n',
    "number key": '1: "x"\n',
    "duplicate key": 'a: "x"\na: "y"\n',
    "duplicate history key": 'history:\n  - {at: "x", at: "y"}\n',
    "anchor": 'a: &x "x"\n',
    "single quotes": "a: 'x'\n",
    "plain string": "a: x\n",
    "multi-line value": 'a: "x\n  y"\n',
    "block scalar": "a: |\n  x\n",
    "surrogate escape": 'a: "\\ud83d\\ude00"\n',
    "yaml-only escape": 'a: "\\x41"\n',
    "raw control": 'a: "\x01"\n',
    "raw C1": 'a: "\x8c"\n',
    "raw line separator": 'a: "\u2028"\n',
    "no final newline": 'a: "x"',
    "bare CR": 'a: "x"\rb: "y"\r',
    "leading zero": "a: 007\n",
    "history in another form": "history:\n  - at: x\n",
    "history items indented unevenly": 'history:\n  - {at: "x"}\n    - {at: "y"}\n',
    "bare key": "a:\n",
    "empty": "",
    "flow mapping": '{a: "x"}\n',
}


@pytest.mark.parametrize("text", list(DECLINED.values()), ids=list(DECLINED))
def test_scanner_declines_and_the_yaml_path_answers_unchanged(text: str) -> None:
    assert scan(text, MAX_NODES) is None
    try:
        expected: Any = shape(compose_front_matter(text))
    except PostFormatError as exc:
        expected = str(exc)
    try:
        got: Any = shape(read_front_matter(text))
    except PostFormatError as exc:
        got = str(exc)
    assert got == expected


def test_scanner_counts_values_as_the_yaml_path_does_and_declines_past_the_limit() -> None:
    text = 'tags: ["a","b","c"]\nn: 1\nhistory:\n  - {at: "x", v: null}\n  - {at: "y"}\n'
    count = len(list(document._walk(yaml.compose(text, Loader=yaml.CSafeLoader))))
    assert scan(text, count) is not None
    assert scan(text, count - 1) is None


def test_an_edit_that_would_not_read_back_is_still_refused() -> None:
    with pytest.raises(UnsafeEdit, match="history"):
        apply_edit(b'---\na: "x"\nhistory: "not a list"\n---\n', Edit(history_entry={"at": "y"}))


# --- hypothesis: random front matter, near the scanned form and past its edges ----------

EDGE_KEYS = ["yes", "No", "ON", "off", "true", "False", "null", "NULL", "y", "n", "~", "1",
             "0x1F", "1_000", ".inf", "<<", "=", "history", "-a", "a b", "a:b", "é", "a#", "_",
             "True1", "on_", "k" * 130]
ODD_ESCAPES = [r"\x41", r"\e", r"\N", r"\_", r"\0", r"\ ", r"\'", r"\a", r"\v", r"\L", r"\P",
               r"\U0001F600", r"\uD83D\uDE00", r"\ud800", r"\uDFFF", r"\u00e9", r"\u0000",
               r"\u0085", r"\u2028", r"\ufeff", r"\/", r'\"', r"\\", r"\t", "\\\t", "\\"]
plain_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True)
keys = st.one_of(plain_keys, st.sampled_from(EDGE_KEYS))
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
odd_text = st.text(st.sampled_from("ab\\/\"'#:\t\r\n \x00\x01\x7f\x85\x8c\xa0\u2028\ufeff\ufffe😀é"),
                   max_size=8)


def odd(draw: st.DrawFn, wild: bool) -> bool:
    """Whether to step off the scanned form here: now and then, in a wild example only."""
    return wild and draw(st.integers(0, 7)) == 0


@st.composite
def json_strings(draw: st.DrawFn, wild: bool) -> str:
    """A JSON-style string literal of any text, with or without `\\/`; in the wild, odd escapes."""
    value = draw(odd_text if odd(draw, wild) else any_text)
    encoded = json.dumps(value, ensure_ascii=draw(st.integers(0, 3)) == 0)
    if draw(st.booleans()):
        encoded = encoded.replace("/", "\\/")
    if odd(draw, wild):
        at = draw(st.integers(1, len(encoded) - 1))
        encoded = encoded[:at] + draw(st.sampled_from(ODD_ESCAPES)) + encoded[at:]
    return encoded


@st.composite
def values(draw: st.DrawFn, wild: bool) -> str:
    if odd(draw, wild):
        return draw(st.one_of(
            st.from_regex(r"[+-]?[0-9_]{1,5}", fullmatch=True), odd_text,
            st.sampled_from(["null", "~", "true", "x", "", "'x'", "&a x", "*a", "!!str x", "[ ]"])))
    kind = draw(st.sampled_from(["json", "json", "json", "int", "list"]))
    if kind == "json":
        return draw(json_strings(wild))
    if kind == "int":
        return str(draw(st.integers(0, 10**20)))
    items = draw(st.lists(json_strings(wild), max_size=3))
    separators = [" ,", ",  "] if odd(draw, wild) else [",", ", "]
    separator = draw(st.sampled_from(separators))
    return "[" + separator.join(items) + "]"


@st.composite
def history_blocks(draw: st.DrawFn, newline: str, wild: bool) -> str:
    indent = draw(st.sampled_from(["", " ", "  ", "  ", "    "]))
    lines = []
    for _ in range(draw(st.integers(0 if wild else 1, 3))):
        pairs = []
        for name in draw(st.lists(plain_keys, min_size=1, max_size=3, unique=True)):
            key = draw(keys) if odd(draw, wild) else name
            value = draw(st.sampled_from(["~", "1", "Null"])) if odd(draw, wild) else (
                "null" if draw(st.integers(0, 3)) == 0 else draw(json_strings(wild)))
            pairs.append(f"{key}: {value}")
        separator = draw(st.sampled_from([",", ",  "])) if odd(draw, wild) else ", "
        lead = draw(st.sampled_from(["", "   "])) if odd(draw, wild) else indent
        lines.append(f"{lead}- {{{separator.join(pairs)}}}{newline}")
    return "".join(lines)


@st.composite
def front_matters(draw: st.DrawFn) -> str:
    """Front matter in the scanned forms; in a wild example (half), now and then off them."""
    wild = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for name in draw(st.lists(plain_keys, min_size=1, max_size=6, unique=True)):
        key = draw(keys) if odd(draw, wild) else name
        if draw(st.integers(0, 4)) == 0:
            lines.append(f"{key}:{newline}{draw(history_blocks(newline, wild))}")
            continue
        ending = draw(st.sampled_from([" \n", "\r", "\t\n", " # c\n"])) if odd(draw, wild) else newline
        lines.append(f"{key}: {draw(values(wild))}{ending}")
    return "".join(lines)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example('a: "\\u0000\\ufeff\ufeff"\n')
@example('history:\n- {at: "x"}\nb: "2"\n')
@given(front_matters())
def test_random_front_matter_is_scanned_equal_or_declined(text: str) -> None:
    try:
        compose_front_matter(text)
    except PostFormatError:
        assert scan(text, MAX_NODES) is None
        event("the YAML path refuses it")
        return
    event("scanned" if scanned_equals_composed(text) else "declined")


string_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True).filter(
    lambda k: type(next(iter(yaml.safe_load(f"{k}: 0")))) is str)
# Raw characters YAML refuses or reads as line breaks, and \u escapes of surrogates.
REFUSED = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]|\\\\u[dD][89a-fA-F]")


@st.composite
def scanned_forms(draw: st.DrawFn) -> str:
    """Front matter only in the forms the scanner reads, with any keys and any strings."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for key in draw(st.lists(string_keys, min_size=1, max_size=6, unique=True)):
        encoded = json.dumps(draw(any_text), ensure_ascii=draw(st.booleans()))
        slash = draw(st.sampled_from(["/", "\\/"]))
        lines.append(f"{key}: {encoded.replace('/', slash)}{newline}")
    return "".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example('a: "\\ud83d\\ude00"\n')
@given(scanned_forms())
def test_json_style_strings_are_scanned_and_equal_unless_yaml_would_refuse_them(text: str) -> None:
    assert scanned_equals_composed(text) is (REFUSED.search(text) is None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, st.one_of(any_text, odd_text, st.none()), max_size=4),
       st.dictionaries(st.from_regex(r"[a-z][A-Za-z]{0,6}", fullmatch=True),
                       st.one_of(any_text, st.none()), min_size=1, max_size=3),
       st.integers(0, 299))
def test_posts_after_random_edits_are_scanned_equal_or_declined(
    generated: list[bytes], values: dict[str, str | None], entry: dict[str, str | None], index: int,
) -> None:
    data = generated[index]
    for _ in range(2):
        try:
            data = apply_edit(data, Edit(values=values, history_entry=entry, history_keep=2)).data
        except UnsafeEdit:
            event("the edit is refused")
            return
        event("scanned" if scanned_equals_composed(front_text(data)) else "declined")
