"""TOML front matter (`+++`, Hugo's default): read, edited in place line by line, read back."""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CliResult
from worker.errors import PostFormatError, UnsafeEdit
from worker.frontmatter.document import parse
from worker.frontmatter.editor import Edit, apply_edit, normalise
from worker.settings import SiteSettings
from worker.simulator.truth import expected_fields
from worker.site import history
from worker.times import parse_time

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]

HUGO_POST = """+++
# Made by `hugo new`, then edited by hand.
title = "Tiny house tour: \\"18 m²\\""
date = 2024-03-05T10:20:30+01:00
publishDate = 2024-03-05
draft = false
vid_id = 'QkqV7TrhN-c'
viewcount = 1200  # updated by postrefresh
likeCount = "34"
rating = 4.5
author = 'Ana O\u2019Neil'
tags = ["cabin",
  "timber"]

[params]
  mood = 'calm'
  [params.nested]
    x = 1
+++
Body with +++ inside
and a last line without newline"""


def post(text: str = HUGO_POST, newline: str = "\n", bom: bool = False) -> bytes:
    return ("\ufeff" if bom else "").encode() + text.replace("\n", newline).encode()


def mapping_of(data: bytes) -> dict[str, Any]:
    return parse(data).front.mapping


def replaced_lines(old: bytes, new: bytes) -> list[tuple[bytes, bytes]]:
    """The (old, new) pairs of lines that differ, for an edit that keeps the line count."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    return [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]


def changed_lines(old: bytes, new: bytes) -> list[str]:
    """The lines a diff of old and new adds or removes, with their endings."""
    diff = difflib.ndiff(old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True))
    return [line for line in diff if line[:1] in "+-"]


def test_parse_gives_plain_values_times_read_and_history_reads_them() -> None:
    values = mapping_of(post())
    assert values["title"] == 'Tiny house tour: "18 m²"'
    assert values["viewcount"] == 1200 and values["likeCount"] == "34" and values["rating"] == 4.5
    assert values["tags"] == ["cabin", "timber"] and values["params"]["nested"] == {"x": 1}
    assert values["draft"] is False and values["publishDate"] == date(2024, 3, 5)
    assert parse_time(values["date"]) == datetime(2024, 3, 5, 9, 20, 30, tzinfo=UTC).timestamp()
    assert history.as_text(values["date"]) == "2024-03-05T10:20:30+01:00"
    assert history.as_text(values["publishDate"]) == "2024-03-05"


@pytest.mark.parametrize(("newline", "bom"), [("\n", False), ("\r\n", False), ("\r\n", True)])
def test_an_edit_changes_exactly_the_changed_lines_each_in_its_own_style(newline: str, bom: bool) -> None:
    source = post(newline=newline, bom=bom)
    edit = Edit(values={"viewcount": "98765", "likeCount": "40", "author": "Bo", "rating": "4.75"})
    result = apply_edit(source, edit).data
    pairs = [(a.decode(), b.decode()) for a, b in replaced_lines(source, result)]
    assert pairs == [
        (f"viewcount = 1200  # updated by postrefresh{newline}",
         f"viewcount = 98765  # updated by postrefresh{newline}"),
        (f'likeCount = "34"{newline}', f'likeCount = "40"{newline}'),
        (f"rating = 4.5{newline}", f"rating = 4.75{newline}"),
        (f"author = 'Ana O\u2019Neil'{newline}", f"author = 'Bo'{newline}"),
    ]
    assert result.startswith(b"\xef\xbb\xbf+++" if bom else b"+++")
    assert result.endswith(b"and a last line without newline")


def test_no_change_gives_identical_bytes_and_a_same_value_edit_too() -> None:
    source = post()
    assert apply_edit(source, Edit()).data == source
    assert apply_edit(source, Edit(values={"viewcount": "1200", "likeCount": "34"})).data == source


def test_a_literal_string_that_cannot_hold_the_value_becomes_a_basic_one() -> None:
    result = apply_edit(post(), Edit(values={"author": "it's\tme\n"})).data
    assert b'author = "it\'s\\tme\\n"\n' in result
    assert mapping_of(result)["author"] == "it's\tme\n"


def test_a_count_that_is_not_a_number_any_more_is_written_as_a_string() -> None:
    result = apply_edit(post(), Edit(values={"viewcount": "", "rating": "n/a"})).data
    assert b'viewcount = ""  # updated' in result and b'rating = "n/a"\n' in result


def test_new_keys_go_after_the_last_top_level_value_before_the_first_table() -> None:
    result = apply_edit(post(), Edit(values={"commentCount": "7", "status": "unavailable"})).data
    text = result.decode()
    assert '  "timber"]\ncommentCount = 7\nstatus = "unavailable"\n\n[params]\n' in text
    assert mapping_of(result)["params"] == mapping_of(post())["params"]


def test_new_keys_without_tables_go_at_the_end_and_literal_files_get_literal_strings() -> None:
    source = b"+++\ntitle = 'A'\nvid_id = 'QkqV7TrhN-c'\n+++\n"
    result = apply_edit(source, Edit(values={"status": "unavailable"})).data
    assert result == b"+++\ntitle = 'A'\nvid_id = 'QkqV7TrhN-c'\nstatus = 'unavailable'\n+++\n"


def test_new_keys_in_a_post_without_top_level_values_go_above_the_blank_before_the_table() -> None:
    source = b"+++\n# only a comment\n\n[params]\n  vid_id = 'QkqV7TrhN-c'\n+++\n"
    result = apply_edit(source, Edit(values={"viewcount": "5"})).data
    assert result == b"+++\n# only a comment\nviewcount = 5\n\n[params]\n  vid_id = 'QkqV7TrhN-c'\n+++\n"


def test_deleting_a_key_removes_its_line_only() -> None:
    source = post()
    result = apply_edit(source, Edit(values={"likeCount": None, "missing": None})).data
    assert changed_lines(source, result) == ['- likeCount = "34"\n']


def test_deleting_a_multi_line_value_removes_all_its_lines() -> None:
    source = post()
    result = apply_edit(source, Edit(values={"tags": None})).data
    assert sorted(changed_lines(source, result)) == ['-   "timber"]\n', '- tags = ["cabin",\n']


def test_a_key_after_a_dotted_key_is_refused_not_written_twice() -> None:
    source = b"+++\ntitle = 'a'\nparams.mood = 'calm'\nviewcount = 5\n+++\n"
    with pytest.raises(UnsafeEdit, match="'viewcount' is not a plain top-level"):
        apply_edit(source, Edit(values={"viewcount": "6"}))
    result = apply_edit(source, Edit(values={"title": "b", "likeCount": "1"})).data
    assert result == b"+++\ntitle = 'b'\nlikeCount = 1\nparams.mood = 'calm'\nviewcount = 5\n+++\n"


def test_history_is_appended_as_tables_at_the_end_trimmed_and_read_back(tmp_path: Path) -> None:
    data = post()
    dropped: list[list[dict[str, Any]]] = []
    for step in range(4):
        entry = {"at": f"2026-01-0{step + 1}T00:00:00Z", "viewcount": str(1200 + step), "gone": None}
        values = {"viewcount": str(1201 + step), "refreshed_at": f"2026-01-0{step + 2}T00:00:00Z"}
        result = apply_edit(data, Edit(values=values, history_entry=entry, history_keep=2))
        assert changed_lines(data, result.data) == [
            line for line in changed_lines(data, result.data)
            if line[2:].startswith(("viewcount", "refreshed_at", "[[history]]", "at =", "\n"))
        ]
        data, _ = result.data, dropped.append(result.dropped_history)
    assert dropped[:2] == [[], []]
    assert dropped[2] == [{"at": "2026-01-01T00:00:00Z", "viewcount": "1200"}]
    assert dropped[3] == [{"at": "2026-01-02T00:00:00Z", "viewcount": "1201"}]
    text = data.decode()
    assert text.count("[[history]]") == 2
    assert text.split("+++")[1].endswith(
        '\n[[history]]\nat = "2026-01-04T00:00:00Z"\nviewcount = "1203"\n')
    values = mapping_of(data)
    assert values["history"][0] == {"at": "2026-01-03T00:00:00Z", "viewcount": "1202"}
    points = history.series(tmp_path, SiteSettings().history_dir, "QkqV7TrhN-c", values, ["viewcount"])
    assert points == [("2026-01-03T00:00:00Z", "viewcount", "1202"),
                      ("2026-01-04T00:00:00Z", "viewcount", "1203"),
                      ("2026-01-05T00:00:00Z", "viewcount", "1204")]


def test_history_that_is_not_tables_at_the_end_is_refused_not_rewritten() -> None:
    inline = b'+++\nviewcount = 1\nhistory = [{at = "x"}]\n+++\n'
    before_table = b'+++\nviewcount = 1\n[[history]]\nat = "x"\n[params]\ny = 1\n+++\n'
    for source in (inline, before_table):
        with pytest.raises(UnsafeEdit, match="history"):
            apply_edit(source, Edit(values={"viewcount": "2"}, history_entry={"at": "y"}))


def test_multi_line_and_list_values_are_refused() -> None:
    source = b'+++\nviewcount = """\n12"""\ntags = ["a"]\n+++\n'
    with pytest.raises(UnsafeEdit, match="several lines"):
        apply_edit(source, Edit(values={"viewcount": "13"}))
    with pytest.raises(UnsafeEdit, match="a list"):
        apply_edit(source, Edit(values={"tags": "b"}))


@pytest.mark.parametrize(("source", "reason"), [
    (b'+++\nvid_id = "QkqV7TrhN-c"\nviewcount = \n+++\n', "invalid TOML at line 3: Invalid value"),
    (b'+++\ntitle = "a"\ntitle = "b"\n+++\n', "invalid TOML at line 3"),
    (b'+++\ntags = [\n+++\n', "invalid TOML at line 2 (the end of the front matter)"),
    (b'+++\ntitle = "a"\n', "not closed: no '+++' line"),
    (b'+++\n' + b"a = " + b"[" * 100 + b"]" * 100 + b"\n+++\n", "nested"),
    (b'{\n"title": "a"\n}\n', "JSON front matter is not supported: use YAML (---) or TOML (+++)"),
])
def test_broken_toml_is_one_clear_post_format_error(source: bytes, reason: str) -> None:
    with pytest.raises(PostFormatError) as info:
        parse(source)
    assert reason in str(info.value) and "\n" not in str(info.value)


keys = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(lambda k: k != "history")
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=15)


@st.composite
def value_lines(draw: st.DrawFn, key: str) -> str:
    style = draw(st.sampled_from(["basic", "literal", "int", "float", "bool", "date", "list"]))
    if style == "basic":
        basic = json.dumps(draw(texts), ensure_ascii=False).replace("\x7f", "\\u007f")
        return f"{key} = {basic}"
    if style == "literal":
        return f"{key} = '{draw(st.from_regex(r'[ -&(-~]{0,12}', fullmatch=True))}'"
    if style == "int":
        return f"{key} = {draw(st.integers(-10**12, 10**12))}"
    if style == "float":
        return f"{key} = {draw(st.floats(-1e6, 1e6, allow_nan=False))!r}"
    if style == "bool":
        return f"{key} = {'true' if draw(st.booleans()) else 'false'}"
    if style == "date":
        return f"{key} = {draw(st.dates()).isoformat()}"
    return f"{key} = {json.dumps(draw(st.lists(st.integers(0, 9), max_size=3)))}"


@st.composite
def posts_and_edits(draw: st.DrawFn) -> tuple[bytes, dict[str, str | None]]:
    names = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for name in names:
        line = draw(value_lines(name))
        if draw(st.booleans()):
            line += "  # note"
        if draw(st.integers(0, 4)) == 0:
            lines.append("# comment")
        lines.append(line)
    if draw(st.booleans()):
        lines += ["", "[params]", 'mood = "calm"']
    front = newline.join(lines) + newline
    text = "+++" + newline + front + "+++" + newline + draw(st.text(max_size=20))
    scalars = [n for n, line in zip(names, (ln for ln in lines if " = " in ln), strict=False)
               if not line.split(" = ", 1)[1].startswith("[")]
    edits: dict[str, str | None] = {}
    for name in draw(st.lists(st.sampled_from(scalars), unique=True)) if scalars else []:
        edits[name] = None if draw(st.integers(0, 6)) == 0 else draw(texts | st.integers(0, 10**9).map(str))
    for name in draw(st.lists(keys.filter(lambda k: k not in names), max_size=2, unique=True)):
        edits[name] = draw(texts | st.integers(0, 10**9).map(str))
    return text.encode(), edits


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts_and_edits())
def test_random_edits_keep_every_untouched_line_and_read_back(
        case: tuple[bytes, dict[str, str | None]]) -> None:
    source, edits = case
    before = mapping_of(source)
    result = apply_edit(source, Edit(values=edits)).data
    after = mapping_of(result)
    expected = {k: v for k, v in {**before, **edits}.items() if v is not None or k not in edits}
    assert {k: normalise(v) for k, v in after.items()} == {k: normalise(v) for k, v in expected.items()}
    assert tomllib.loads(parse(result).doc.front_text()) == after

    def untouched(data: bytes) -> list[bytes]:
        return [ln for ln in data.splitlines(keepends=True)
                if ln.split(b" = ", 1)[0].decode() not in edits]
    assert untouched(result) == untouched(source)


def test_run_refreshes_a_toml_post_changing_only_its_stat_lines(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "hugo-ish"
    (site / "_posts").mkdir(parents=True)
    target = site / "_posts" / "x.md"
    source = post().replace(b"1200", b'"1200"')
    target.write_bytes(source)
    result = cli("run", "--site", str(site), "--no-thumbnails")
    assert result.code == 0, result.err
    assert "refreshed: 1" in result.out
    new = target.read_bytes()
    touched = {line[2:].split(" = ", 1)[0].strip() for line in changed_lines(source, new)}
    assert touched <= {"viewcount", "likeCount", "commentCount", "refreshed_at", "[[history]]", "at", ""}
    assert b'\ncommentCount = "' in new  # a new count held as a string, as this post's counts are
    values = mapping_of(new)
    truth = expected_fields("QkqV7TrhN-c", 0)
    assert normalise(values["viewcount"]) == truth["statistics.viewCount"]
    assert values["history"][0]["viewcount"] == "1200"
    assert new.endswith(b"Body with +++ inside\nand a last line without newline")
    again = cli("run", "--site", str(site), "--no-thumbnails")
    assert again.code == 0 and "refreshed: 0" in again.out
    assert target.read_bytes() == new
    shown = cli("history", "--site", str(site), "QkqV7TrhN-c")
    assert shown.code == 0 and "1200" in shown.out, shown.out + shown.err


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 4), st.integers(1, 4), st.sampled_from(["\n", "\r\n"]), st.booleans(),
       st.dictionaries(keys, texts, min_size=1, max_size=3))
def test_random_history_appends_trim_the_oldest_and_keep_the_rest_byte_identical(
        existing: int, keep: int, newline: str, table: bool, entry: dict[str, str]) -> None:
    old_entries = [{"at": f"2026-01-0{i + 1}T00:00:00Z", "viewcount": str(i)} for i in range(existing)]
    head = "+++\nvid_id = 'QkqV7TrhN-c'\nviewcount = 9\n" + ("\n[params]\nmood = 'calm'\n" if table else "")
    tables = "".join(f'\n[[history]]\nat = "{e["at"]}"\nviewcount = "{e["viewcount"]}"\n'
                     for e in old_entries)
    source = (head + tables + "+++\nbody\n").replace("\n", newline).encode()
    result = apply_edit(source, Edit(values={"viewcount": "10"}, history_entry=entry, history_keep=keep))
    drop = max(0, existing + 1 - keep)
    assert result.dropped_history == old_entries[:drop]
    assert mapping_of(result.data)["history"] == [*old_entries[drop:], entry]
    kept_head = head.replace("viewcount = 9", "viewcount = 10").replace("\n", newline).encode()
    assert result.data.startswith(kept_head) and result.data.endswith(f"+++{newline}body{newline}".encode())
