"""Notifications through Apprise's `json://` target, received by a real local HTTP server.

One message per run when something needs a person, none otherwise; never the API key or a
notification URL in a message, an output or a log line; a failing target never fails the run.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.gen_posts import generate_site
from tests.celery_fixtures import (
    CELERY,
    ROOT,
    celery_env,
    celery_worker,
    postrefresh,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG, SEEDS, CliResult
from tests.simulator_fixtures import API_KEY
from worker.outputs.notify import MAX_LISTED, Events, notice_for
from worker.simulator.server import YouTubeSimulator
from worker.site.state import SiteState

__all__ = ["redis_client", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
TOKEN = "notify-test-token-5f2a"


@dataclass
class Inbox:
    """What the local server received, and the status it answers with."""

    port: int = 0
    status: int = 200
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook/{TOKEN}"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            box.messages.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(box.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


@pytest.fixture
def config(tmp_path: Path, inbox: Inbox) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(FAST_CONFIG + f'notify = ["{inbox.url}"]\n')
    return path


def secrets_absent(*texts: str) -> bool:
    return not any(secret in text for text in texts for secret in (TOKEN, API_KEY))


def test_notify_test_sends_one_message(cli: Cli, config: Path, inbox: Inbox, site: Path) -> None:
    result = cli("notify", "--test", "--config", str(config), "--site", str(site))
    assert result.code == 0, result.err
    assert [m["title"] for m in inbox.messages] == ["postrefresh: test message"]
    assert "sent to every notify target" in result.out and secrets_absent(result.out, result.err)


def test_a_clean_run_sends_nothing_and_a_rejected_key_sends_one_message(
        cli: Cli, config: Path, inbox: Inbox, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("run", "--site", str(site), "--config", str(config), "--no-thumbnails").code == 0
    assert inbox.messages == []
    monkeypatch.setenv("YOUTUBE_API_KEY", "wrong-key-7c1")
    result = cli("run", "--site", str(site), "--config", str(config))
    assert result.code == 2
    [message] = inbox.messages
    assert message["type"] == "failure" and "The run stopped early:" in message["message"]
    assert "key" in message["message"].lower() and "wrong-key-7c1" not in json.dumps(message)
    assert secrets_absent(json.dumps(message), result.out, result.err)


def test_a_run_refused_by_the_lock_sends_one_message(cli: Cli, config: Path, inbox: Inbox,
                                                     site: Path) -> None:
    with SiteState(site) as state, state.run_lock():
        result = cli("run", "--site", str(site), "--config", str(config))
    assert result.code == 75
    [message] = inbox.messages
    assert "another postrefresh run" in message["message"]


def test_posts_newly_bad_are_named_once(cli: Cli, config: Path, inbox: Inbox, site: Path) -> None:
    broken = site / "_posts/2024-01-01-broken.md"
    broken.write_bytes(b'---\r\nvid_id: "QkqV7TrhN-c"\r\ntitle: [unclosed\r\n---\r\nbody\r\n')
    assert cli("run", "--site", str(site), "--config", str(config), "--no-thumbnails").code == 1
    [message] = inbox.messages
    assert message["type"] == "info"
    assert "1 posts became unreadable" in message["message"]
    assert "_posts/2024-01-01-broken.md: invalid YAML" in message["message"]
    assert cli("run", "--site", str(site), "--config", str(config), "--no-thumbnails").code == 1
    assert len(inbox.messages) == 1  # still bad, not newly bad: no second message


def test_a_failing_target_is_logged_once_and_never_fails_the_run(
        cli: Cli, config: Path, inbox: Inbox, site: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    inbox.status = 500
    result = cli("notify", "--test", "--config", str(config), "--site", str(site))
    assert result.code == 1 and "NOT delivered" in result.out
    lines = [r.getMessage() for r in caplog.records if "notify target" in r.getMessage()]
    assert lines == ["notify target 1 (json): the notification was not delivered (the run goes on)"]
    assert secrets_absent(caplog.text, result.out, result.err)
    config.write_text(FAST_CONFIG + f'notify = ["json://127.0.0.1:9/hook/{TOKEN}"]\n')  # nobody listens
    (site / "_posts/2024-01-01-broken.md").write_bytes(b"---\r\nvid_id: [\r\n---\r\n")
    assert cli("run", "--site", str(site), "--config", str(config), "--no-thumbnails").code == 1


def test_a_long_list_is_cut_and_counted() -> None:
    bad = [(f"_posts/p{n:02d}.md", "invalid YAML") for n in range(MAX_LISTED + 5)]
    notice = notice_for(Events(site="blog", became_bad=bad))
    assert notice is not None
    assert notice.lines[-1] == "  ... and 5 more" and len(notice.lines) == MAX_LISTED + 2
    assert notice_for(Events(site="blog")) is None


@pytest.mark.timeout(180)
def test_the_celery_quota_pause_sends_one_message_for_all_workers(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path,
        inbox: Inbox) -> None:
    site = tmp_path / "site"
    generate_site(site, 500, seed=7)
    settings = tmp_path / "fast.toml"
    settings.write_text(FAST_CONFIG + f'thumbnails = false\nnotify = ["{inbox.url}"]\n')
    env = celery_env(redis_url, sim, site, settings)
    sim.config = dataclasses.replace(sim.config, quota_units=2)
    postrefresh(env, "enqueue", "--all")
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: redis_client.get("postrefresh:paused-until") is not None, 60, "no pause")
        wait_for(lambda: redis_client.llen("fetch") == 0, 60, "fetch queue did not empty into retries")
        wait_for(lambda: bool(inbox.messages), 30, "no message about the pause")
    [message] = inbox.messages  # every paused task retried; only the one that began the pause told
    assert message["type"] == "failure"
    assert "The daily API quota is spent: no calls until" in message["message"]
    assert secrets_absent(json.dumps(message), (tmp_path / "worker.log").read_text())


@pytest.mark.timeout(180)
def test_a_key_the_api_rejects_in_the_celery_path_sends_one_message_for_all_workers(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path,
        inbox: Inbox) -> None:
    site = tmp_path / "site"
    generate_site(site, 300, seed=7)  # 6 batches, each refused
    settings = tmp_path / "fast.toml"
    settings.write_text(FAST_CONFIG + f'thumbnails = false\nnotify = ["{inbox.url}"]\n')
    wrong = "wrong-key-the-api-rejects-7c1d"
    env = {**celery_env(redis_url, sim, site, settings), "YOUTUBE_API_KEY": wrong}
    postrefresh(env, "enqueue", "--all")
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: redis_client.llen("fetch") == 0 and not redis_client.keys("postrefresh:queued:*"),
                 60, "the refused posts were not given up")
        wait_for(lambda: bool(inbox.messages), 30, "no message about the rejected key")
        time.sleep(1)  # a second message, were there one, would be on its way by now
    [message] = inbox.messages  # every batch gave up; only the first told, once for the hour
    assert message["type"] == "failure"
    assert "The workers give up fetching" in message["message"] and "key" in message["message"]
    log = (tmp_path / "worker.log").read_text()
    assert secrets_absent(json.dumps(message), log) and wrong not in json.dumps(message) + log
    assert log.count("gave up on ") == 6, log  # one line per refused batch, not one per post


def test_a_milestone_and_a_video_gone_are_told_once_each(cli: Cli, config: Path, inbox: Inbox, site: Path,
                                                         sim: YouTubeSimulator) -> None:
    post = site / "_posts/2022-04-13-kremlin-admits-significant-losses.md"

    def run(epoch: int, **changes: object) -> None:
        sim.config = dataclasses.replace(sim.config, epoch=epoch, **changes)
        assert cli("run", "--site", str(site), "--config", str(config), "--no-thumbnails").code == 0

    run(0)
    assert inbox.messages == []
    post.write_bytes(re.sub(rb'viewcount: "\d+"', b'viewcount: "999"', post.read_bytes()))
    run(1)
    [passed] = inbox.messages
    assert "1 videos passed a round number of views:\n  QkqV7TrhN-c: 1,000,000 views" in passed["message"]
    time.sleep(1)  # runs a second apart, as runs are: a stamp has whole seconds
    run(2, deleted=frozenset({"QkqV7TrhN-c"}))  # missing once: not yet unavailable, nothing new to tell
    run(3)  # missing twice: marked
    assert len(inbox.messages) == 2
    gone = inbox.messages[1]["message"]
    assert "1 videos became unavailable" in gone
    assert "_posts/2022-04-13-kremlin-admits-significant-losses.md (QkqV7TrhN-c)" in gone
    run(4)  # still unavailable: nothing new
    assert len(inbox.messages) == 2


@pytest.mark.timeout(120)
def test_a_celery_scan_tells_the_posts_newly_bad_once(redis_url: str, redis_client: redis.Redis,
                                                      sim: YouTubeSimulator, tmp_path: Path,
                                                      inbox: Inbox) -> None:
    site = tmp_path / "site"
    shutil.copytree(SEEDS, site)
    broken = site / "_posts/2024-01-01-broken.md"
    broken.write_bytes(b'---\r\nvid_id: "QkqV7TrhN-c"\r\ntitle: [x\r\n---\r\n')
    settings = tmp_path / "fast.toml"
    settings.write_text(FAST_CONFIG + f'thumbnails = false\nnotify = ["{inbox.url}"]\n')
    env = celery_env(redis_url, sim, site, settings)
    python = str(Path(CELERY).with_name("python"))
    log = tmp_path / "scan.log"
    with celery_worker(env, log, queues="scan", concurrency=1):
        for scans in (1, 2):
            subprocess.run([python, "-c", "import tasks.celery; from tasks.jobs import scan; scan.delay()"],
                           cwd=ROOT, env=env, check=True)
            wait_for(lambda n=scans: log.read_text().count("scan: ") == n, 60, "the scan did not run")
    [message] = inbox.messages  # the second scan finds the same bad post: nothing new to tell
    assert "1 posts became unreadable" in message["message"]
    assert "_posts/2024-01-01-broken.md: invalid YAML" in message["message"]
