"""The front-matter editor: golden files, refusals, corpus round trips and properties."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from worker.errors import PostFormatError, UnsafeEdit
from worker.frontmatter.document import read_front_matter, split_post
from worker.frontmatter.editor import Edit, apply_edit, normalise

GOLDEN = Path(__file__).parent / "golden" / "editor"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "posts"
SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "_posts"
STATS = {"viewcount": "987654321", "likeCount": "4321", "refreshed_at": "2026-11-24T21:49:14Z"}
ENTRY = {"at": "2022-04-13T13:25:55+03:00", "viewcount": "542436", "status": None}
GOLDEN_EDIT = Edit(values={**STATS, "status": None}, history_entry=ENTRY)


def mapping_of(data: bytes) -> dict[Any, Any]:
    return read_front_matter(split_post(data).front_text()).mapping


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.md") if ".expected" not in p.name))
def test_golden_edit_matches_expected_file(case: str) -> None:
    source = (GOLDEN / f"{case}.md").read_bytes()
    expected = GOLDEN / f"{case}.expected.md"
    result = apply_edit(source, GOLDEN_EDIT).data
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_bytes(result)
    assert result == expected.read_bytes()


def test_no_edit_returns_the_same_bytes() -> None:
    source = (GOLDEN / "real-crlf.md").read_bytes()
    assert apply_edit(source, Edit()).data is source


def test_changed_value_keeps_single_quotes_and_unquoted_numbers_stay_unquoted() -> None:
    source = b"---\nvid_id: 'abcdefghijk'\nviewcount: 10\ntitle: 'x'\n---\n"
    out = apply_edit(source, Edit(values={"viewcount": "11", "title": "it's"})).data
    assert out == b"---\nvid_id: 'abcdefghijk'\nviewcount: 11\ntitle: 'it''s'\n---\n"


def test_value_that_would_change_type_unquoted_gets_quoted() -> None:
    out = apply_edit(b"---\nviewcount: 10\n---\n", Edit(values={"viewcount": "0012"})).data
    assert out == b'---\nviewcount: "0012"\n---\n'


def test_slash_escapes_follow_the_file() -> None:
    escaped = b'---\nimage: "a\\/b"\nchannel: "x"\n---\n'
    plain = b'---\nimage: "a/b"\nchannel: "x"\n---\n'
    assert b'channel: "c\\/d"' in apply_edit(escaped, Edit(values={"channel": "c/d"})).data
    assert b'channel: "c/d"' in apply_edit(plain, Edit(values={"channel": "c/d"})).data


def test_control_and_c1_characters_are_escaped_in_new_values() -> None:
    out = apply_edit(b'---\ntitle: "x"\n---\n', Edit(values={"title": "a\x8cb\x7f\u2028\n"})).data
    assert out == b'---\ntitle: "a\\u008cb\\u007f\\u2028\\n"\n---\n'
    assert mapping_of(out)["title"] == "a\x8cb\x7f\u2028\n"


def test_post_with_raw_c1_character_is_read_and_edited_with_it_kept() -> None:
    source = '---\r\ntitle: "A \x8c song"\r\nviewcount: "1"\r\n---\r\nbody'.encode()
    out = apply_edit(source, Edit(values={"viewcount": "2"})).data
    assert out == source.replace(b'viewcount: "1"', b'viewcount: "2"')
    assert mapping_of(out)["title"] == "A \x8c song"


def test_history_keeps_at_most_n_entries_and_returns_the_dropped_ones() -> None:
    data = b'---\nviewcount: "1"\n---\n'
    for n in range(2, 6):
        entry = {"at": f"t{n}", "viewcount": str(n - 1)}
        result = apply_edit(data, Edit(values={"viewcount": str(n)}, history_entry=entry, history_keep=2))
        data = result.data
    assert mapping_of(data)["history"] == [{"at": "t4", "viewcount": "3"}, {"at": "t5", "viewcount": "4"}]
    assert result.dropped_history == [{"at": "t3", "viewcount": "2"}]


def test_new_keys_go_before_the_history_block_which_stays_last() -> None:
    data = b'---\nviewcount: "1"\nhistory:\n  - {at: "t0", viewcount: "0"}\n---\n'
    out = apply_edit(data, Edit(values={"status": "unavailable"}, history_entry={"at": "t1", "status": None}))
    assert out.data == (
        b'---\nviewcount: "1"\nstatus: "unavailable"\nhistory:\n  - {at: "t0", viewcount: "0"}\n'
        b'  - {at: "t1", status: null}\n---\n'
    )


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("viewcount: |\n  12\n", "multi-line block value"),
        ("viewcount: \"12\n  34\"\n", "spanning several lines"),
        ("viewcount: &a 12\nx: 1\n", "anchor"),
        ("viewcount: !!str 12\n", "anchor, alias or tag"),
        ("viewcount: [1, 2]\n", "holds a list"),
        ("viewcount:\n  a: 1\n", "holds a mapping"),
        ("viewcount: 1\nviewcount: 2\n", "appears 2 times"),
        ("{viewcount: 1}\n", "flow mapping"),
        ("viewcount: 1\nhistory:\n- at: x\n  viewcount: 2\n", "one-line-per-entry"),
    ],
)
def test_unsafe_edits_are_refused_with_a_reason(front: str, reason: str) -> None:
    with pytest.raises(UnsafeEdit, match=reason):
        edit = Edit(values={"viewcount": "3"}, history_entry={"at": "t"})
        apply_edit(f"---\n{front}---\nbody".encode(), edit)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just text\n", "no front matter"),
        (b"+++\ntitle = 'x\n+++\n", "invalid TOML at line 2"),  # TOML is read now: broken TOML is not
        (b'{"title": "x"}\n', "JSON front matter is not supported"),
        (b"---\ntitle: x\n", "not closed"),
        (b"---\ntitle: [x\n---\n", "invalid YAML at line"),
        (b"---\n- a\n- b\n---\n", "not a mapping"),
        (b"---\nx: !!python/object:os.system {}\n---\n", "invalid YAML"),
        (b"---\na: &a [1]\nb: [*a, *a]\n---\n", "aliases"),
        (b"---\nt: \xff\xfe\n---\n", "not UTF-8"),
        (b"---\nt: \"\x00\"\n---\n", "invalid YAML"),
        (b"---\nt: " + b"[" * 200 + b"]" * 200 + b"\n---\n", "nested deeper"),
    ],
)
def test_unreadable_posts_raise_post_format_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(PostFormatError, match=reason):
        apply_edit(data, Edit(values={"viewcount": "1"}))


def round_trip_files() -> list[Path]:
    files = sorted(SEEDS.rglob("*.md")) + sorted(SEEDS.rglob("*.markdown"))
    if CORPUS.is_dir():
        files += sorted(CORPUS.glob("*.md"))
    return files


@pytest.mark.parametrize("path", round_trip_files(), ids=lambda p: p.name[:60])
def test_real_and_seed_posts_change_only_their_stat_lines(path: Path) -> None:
    source = path.read_bytes()
    before = mapping_of(source)
    if "vid_id" not in before:
        pytest.skip("not a video post")
    result = apply_edit(source, Edit(values=STATS, history_entry=ENTRY)).data
    old_doc, new_doc = split_post(source), split_post(result)
    assert (new_doc.bom, new_doc.opening, new_doc.closing, new_doc.body) == (
        old_doc.bom, old_doc.opening, old_doc.closing, old_doc.body)
    edited = {"viewcount", "likeCount"}
    for old_line, new_line in zip(old_doc.lines, new_doc.lines, strict=False):
        key = old_line.split(b":", 1)[0].decode()
        if key not in edited:
            assert new_line == old_line
    added = new_doc.lines[len(old_doc.lines) - sum(k not in before for k in edited):]
    assert all(line.endswith(old_doc.newline) for line in added)
    after = mapping_of(result)
    assert {k: normalise(v) for k, v in after.items() if k != "history"} == {
        **{k: normalise(v) for k, v in before.items()}, **STATS}


# --- properties -------------------------------------------------------------------------

keys = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("history", "y", "n", "yes", "no", "on", "off", "true", "false", "null"))
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
printable = st.text(st.characters(exclude_categories=("Cs", "Cc", "Co", "Zl", "Zp")), max_size=20)


@st.composite
def scalar_lines(draw: st.DrawFn, key: str) -> tuple[str, Any]:
    style = draw(st.sampled_from(["json", "json-slash", "single", "digits", "word", "list"]))
    if style in ("json", "json-slash"):
        value = draw(printable | st.sampled_from(["a\nb", "tab\there", 'q"uote', "back\\slash"]))
        encoded = json.dumps(value, ensure_ascii=False)
        if style == "json-slash":
            encoded = encoded.replace("/", "\\/")
        return f"{key}: {encoded}", value
    if style == "single":
        value = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12))
        return f"{key}: '{value.replace(chr(39), chr(39) * 2)}'", value
    if style == "digits":
        number = draw(st.integers(min_value=0, max_value=10**12))
        return f"{key}: {number}", number
    if style == "word":
        value = draw(st.from_regex(r"[A-Za-z][A-Za-z ]{0,10}[A-Za-z]", fullmatch=True))
        return f"{key}: {value}", yaml.safe_load(f"k: {value}")["k"]
    items = draw(st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), max_size=3))
    return f"{key}: {json.dumps(items)}", items


@st.composite
def posts_and_edits(draw: st.DrawFn) -> tuple[bytes, dict[str, str | None], list[str]]:
    names = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines, scalars = [], []
    for name in names:
        line, value = draw(scalar_lines(name))
        if draw(st.booleans()) and not line.endswith("'"):
            line += "  # note"
        if draw(st.integers(0, 5)) == 0:
            lines.append("# comment")
        lines.append(line)
        if not isinstance(value, list):
            scalars.append(name)
    bom = "\ufeff" if draw(st.booleans()) else ""
    body = draw(st.text(max_size=30))
    text = bom + "---" + newline + newline.join(lines) + newline + "---" + newline + body
    edits: dict[str, str | None] = {}
    for name in draw(st.lists(st.sampled_from(scalars), unique=True)) if scalars else []:
        edits[name] = None if draw(st.integers(0, 6)) == 0 else draw(texts)
    for name in draw(st.lists(keys.filter(lambda k: k not in names), max_size=2, unique=True)):
        edits[name] = draw(texts)
    return text.encode(), edits, names


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example((b"---\n# comment\nb: \"\"\n# comment\nc: '0'\n---\n", {"a": "\r"}, ["b", "c"]))
@given(posts_and_edits())
def test_edit_reads_back_exactly_and_touches_only_edited_lines(
    case: tuple[bytes, dict[str, str | None], list[str]],
) -> None:
    source, edits, _ = case
    before = mapping_of(source)
    result = apply_edit(source, Edit(values=edits)).data
    after = mapping_of(result)
    expected = {k: v for k, v in {**before, **edits}.items() if v is not None or k not in edits}
    assert {k: normalise(v) for k, v in after.items()} == {k: normalise(v) for k, v in expected.items()}
    old_doc, new_doc = split_post(source), split_post(result)
    assert new_doc.body == old_doc.body and new_doc.bom == old_doc.bom
    old_lines = [ln for ln in old_doc.lines if ln.split(b":", 1)[0].decode() not in edits]
    kept = [ln for ln in new_doc.lines if ln.split(b":", 1)[0].decode() not in edits]
    assert kept == old_lines
