"""Disk, file-system and hostile-input faults: one clear line each, nothing else harmed.

Permission faults are provoked with `chattr +i` (tests run as root in CI, and root ignores
mode bits) and a full disk with a tiny tmpfs; both need root and are skipped without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SEEDS, CliResult
from tests.test_run import assert_matches_truth, mapping, video_posts

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
KREMLIN = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"),
                                reason="chattr and mount need root (CI runs as root)")


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def no_temp_files(site: Path) -> bool:
    return not list(site.rglob(".postrefresh-*.tmp"))


@needs_root
def test_an_immutable_post_is_reported_and_the_rest_refreshed(cli: Cli, site: Path) -> None:
    post = site / KREMLIN
    before = post.read_bytes()
    with immutable(post):
        result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    summary = json.loads(result.out)
    assert result.code == 1 and post.read_bytes() == before
    assert [b["path"] for b in summary["bad"]] == [KREMLIN]
    assert "cannot write" in summary["bad"][0]["reason"]
    assert summary["refreshed"] == 11 and no_temp_files(site)


@needs_root
def test_a_read_only_folder_reports_its_posts_and_leaves_them_whole(cli: Cli, site: Path) -> None:
    sub = site / "_posts" / "2023"
    before = {p: p.read_bytes() for p in sub.iterdir()}
    with immutable(sub):
        result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    summary = json.loads(result.out)
    assert result.code == 1 and {p: p.read_bytes() for p in before} == before
    assert len(summary["bad"]) == 1 and "cannot write" in summary["bad"][0]["reason"]
    assert no_temp_files(site)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_root
def test_a_full_disk_during_the_temp_file_write_loses_nothing(cli: Cli, tiny_disk: Path) -> None:
    site = tiny_disk / "site"
    shutil.copytree(SEEDS, site)
    assert cli("run", "--site", str(site), "--no-thumbnails", "--dry-run").code == 0  # state db exists
    before = {p: p.read_bytes() for p in site.rglob("*.m*") if p.is_file()}
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code in (1, 75), result.err
    assert "Traceback" not in result.err
    for path, data in before.items():
        now = path.read_bytes()
        assert now == data or "refreshed_at" in mapping(path)  # old bytes or a whole new post
    assert no_temp_files(site)
    filler.unlink()
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    for post in video_posts(site):
        assert_matches_truth(post)


def test_a_site_on_a_path_with_spaces_and_unicode_works(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "my blog ✓ Über"
    shutil.copytree(SEEDS, site)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    for post in video_posts(site):
        assert_matches_truth(post)


def test_non_utf8_file_names_are_refreshed_or_reported_without_crashing(cli: Cli, site: Path) -> None:
    good_name = os.fsencode(site / "_posts") + b"/caf\xe9-good.md"
    with open(good_name, "wb") as out:
        out.write(b'---\r\nvid_id: "AbCdEfGhIjK"\r\nviewcount: "1"\r\n---\r\nbody\r\n')
    bad_name = os.fsencode(site / "_posts") + b"/caf\xe9-bad.md"
    with open(bad_name, "wb") as out:
        out.write(b"no front matter\n")
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    summary = json.loads(result.out)
    assert result.code == 1 and summary["refreshed"] == 13
    assert [b["path"] for b in summary["bad"]] == ["_posts/caf\ufffd-bad.md"]
    with open(good_name, "rb") as post:
        assert b"refreshed_at" in post.read()
    assert cli("run", "--site", str(site), "--no-thumbnails", "--stale", "1d").code == 1


def test_a_50_mb_file_is_reported_and_100000_tags_are_refreshed(cli: Cli, site: Path) -> None:
    huge = site / "_posts" / "huge.md"
    huge.write_bytes(b'---\nvid_id: "AbCdEfGhIjK"\n---\n' + b"x" * (50 << 20))
    tags = site / "_posts" / "tags.md"
    tag_list = ",".join(f'"t{n}"' for n in range(100_000))
    tags.write_text(f'---\nvid_id: "ZyXwVuTsRqP"\nviewcount: "1"\ntags: [{tag_list}]\n---\n')
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    summary = json.loads(result.out)
    assert [b["path"] for b in summary["bad"]] == ["_posts/huge.md"]
    assert "larger than" in summary["bad"][0]["reason"]
    assert_matches_truth(tags)
    assert len(mapping(tags)["tags"]) == 100_000  # type: ignore[arg-type]
