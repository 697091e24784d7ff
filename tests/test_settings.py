"""Settings: one object from flags, env vars and TOML files, in that order of precedence."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import KEYS, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "postrefresh.example.toml"


def test_the_example_file_documents_every_setting_and_holds_the_defaults() -> None:
    text = EXAMPLE.read_text()
    undocumented = [key for key in KEYS
                    if not re.search(rf"^(# )?{key} =|^\[{key}\]", text, re.MULTILINE)]
    assert undocumented == []
    assert load_settings({}, {}, EXAMPLE) == Settings()


def test_flags_beat_env_which_beats_config_which_beats_the_site_file(tmp_path: Path) -> None:
    (tmp_path / "_postrefresh.toml").write_text("concurrency = 2\nhistory_keep = 5\nretry_attempts = 4\n")
    config = tmp_path / "extra.toml"
    config.write_text("concurrency = 3\nhistory_keep = 6\napi_url = 'http://from-config'\n")
    env = {"POSTREFRESH_SITE": str(tmp_path), "POSTREFRESH_CONFIG": str(config),
           "YOUTUBE_API_URL": "http://from-env"}
    settings = load_settings({"max_units": 9}, env)
    assert (settings.api.concurrency, settings.site.history_keep, settings.api.retry_attempts) == (3, 6, 4)
    assert settings.api.url == "http://from-env" and settings.api.max_units == 9
    assert settings.site.site == tmp_path


def test_the_broker_prefers_celery_broker_url() -> None:
    assert load_settings({}, {"REDIS_URL": "redis://a"}).broker == "redis://a"
    both = load_settings({}, {"REDIS_URL": "redis://a", "CELERY_BROKER_URL": "redis://b"})
    assert both.broker == "redis://b" and both.queue.redis_url == "redis://a"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 'blue'\n", "unknown setting"),
        ("history_mode = 'attic'\n", "history_mode"),
        ("concurrency = 0\n", "concurrency"),
        ("scan_every = 'soon'\n", "scan_every"),
        ("thumbnail_sizes = ['huge']\n", "thumbnail_sizes"),
        ("concurrency = \n", "not valid TOML"),
    ],
)
def test_bad_settings_say_what_to_fix(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, {}, config)


def test_a_toml_holding_the_key_readable_by_others_gets_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "secret.toml"
    config.write_text("api_key = 'k-123'\n")
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        settings = load_settings({}, {}, config)
    assert "chmod 600" in caplog.text and "k-123" not in caplog.text
    assert "k-123" not in repr(settings)
    config.chmod(0o600)
    caplog.clear()
    load_settings({}, {}, config)
    assert "chmod 600" not in caplog.text


def postrefresh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, with no postrefresh or YouTube variables but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE", "REDIS"))}
    return subprocess.run([sys.executable, "-m", "worker", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ('concurrency = "eight"\n', "concurrency = 'eight': must be a whole number, e.g. 8"),
        ("concurency = 4\n", "concurency: unknown setting (did you mean concurrency?)"),
        ("thumbnails = 'maybe'\n", "thumbnails = 'maybe': must be true or false"),
        ("read_timeout = 'long'\n", "read_timeout = 'long': must be a number of seconds, e.g. 5.0"),
        ("scan_every = 3600\n", "scan_every = 3600: must be a string (in quotes)"),
        ("history_keep = 0\n", "history_keep = 0: must be at least 1"),
        ("api_url = 'localhost:8765'\n",
         "api_url = 'localhost:8765': must be a URL starting with http:// or https://"),
    ],
)
def test_a_bad_setting_in_a_file_names_the_file_and_the_key(tmp_path: Path, toml: str, line: str) -> None:
    (tmp_path / "_posts").mkdir()
    site_file = tmp_path / "_postrefresh.toml"
    site_file.write_text(toml)
    result = postrefresh("run", "--site", str(tmp_path), env={"YOUTUBE_API_KEY": "k"})
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"postrefresh: {site_file}: {line}"])


def test_a_bad_env_var_is_named(tmp_path: Path) -> None:
    result = postrefresh("run", "--site", str(tmp_path), env={"YOUTUBE_API_URL": "localhost:8765"})
    assert (result.returncode, result.stderr.splitlines()) == (2, [
        "postrefresh: env var YOUTUBE_API_URL='localhost:8765': must be a URL starting with http:// "
        "or https://"])
    missing = tmp_path / "nope.toml"
    result = postrefresh("run", "--site", str(tmp_path), env={"POSTREFRESH_CONFIG": str(missing)})
    assert result.stderr.splitlines() == [
        f"postrefresh: config file not found: {missing} (named by POSTREFRESH_CONFIG)"]
    result = postrefresh("run", env={"POSTREFRESH_SITE": str(tmp_path / "blog")})
    assert result.stderr.splitlines() == [
        f"postrefresh: site directory not found: {tmp_path / 'blog'} (from --site or POSTREFRESH_SITE)"]


def test_a_redis_url_is_never_shown_it_may_hold_a_password() -> None:
    result = postrefresh("run", env={"REDIS_URL": "localhost:6379?password=hunter2"})
    assert (result.returncode, result.stderr.splitlines()) == (2, [
        "postrefresh: env var REDIS_URL: must be a URL starting with redis:// or rediss:// or unix://"])


def test_an_env_var_one_typo_from_a_known_one_gets_a_hint(tmp_path: Path) -> None:
    result = postrefresh("run", env={"POSTREFRESH_SITES": str(tmp_path), "POSTREFRESH_IMAGE": "x"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "WARNING worker.settings: env var POSTREFRESH_SITES is not read by postrefresh: "
        "did you mean POSTREFRESH_SITE?",
        "postrefresh: no site given: pass --site DIR or set POSTREFRESH_SITE"]


def test_a_bad_flag_is_named_as_typed(tmp_path: Path) -> None:
    result = postrefresh("run", "--site", str(tmp_path), "--max-units", "0")
    assert result.stderr.splitlines() == ["postrefresh: --max-units 0: must be at least 1"]
