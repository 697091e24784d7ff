"""What a site generator's build shows of each page, and the check every generator test makes.

Each test's page template prints the page's front matter as JSON, then BODY on a line of its
own, then the rendered body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BODY = "@@body@@"  # a separator (an HTML comment would be dropped by some templates)
Pages = dict[str, tuple[dict[str, Any], str]]


def built_pages(out: Path, pages: Iterable[Path], prefix: str = "") -> Pages:
    """Each built page's (front matter as the generator saw it, rendered body), by path under `out`."""
    found: Pages = {}
    for page in sorted(pages):
        front, body = page.read_text(encoding="utf-8").removeprefix(prefix).split("\n" + BODY + "\n")
        found[page.relative_to(out).as_posix()] = (json.loads(front), body)
    return found


def assert_only_refreshed_changed(before: Pages, after: Pages, refreshed: set[str],
                                  added: frozenset[str] = frozenset()) -> None:
    """The same pages, bodies identical, front matter equal but for `refreshed` (and `added` keys)."""
    assert set(after) == set(before)
    for page, (front, body) in before.items():
        new_front, new_body = after[page]
        assert new_body == body, page
        assert {k: v for k, v in new_front.items() if k not in refreshed | added} == {
            k: v for k, v in front.items() if k not in refreshed}, page
