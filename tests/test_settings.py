"""Settings: one object from flags, env vars and TOML files, in that order of precedence."""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "postrefresh.example.toml"


def test_the_example_file_documents_every_setting_and_holds_the_defaults() -> None:
    text = EXAMPLE.read_text()
    undocumented = [f.name for f in fields(Settings)
                    if not re.search(rf"^(# )?{f.name} =|^\[{f.name}\]", text, re.MULTILINE)]
    assert undocumented == []
    assert load_settings({}, {}, EXAMPLE) == Settings()


def test_flags_beat_env_which_beats_config_which_beats_the_site_file(tmp_path: Path) -> None:
    (tmp_path / "_postrefresh.toml").write_text("concurrency = 2\nhistory_keep = 5\nretry_attempts = 4\n")
    config = tmp_path / "extra.toml"
    config.write_text("concurrency = 3\nhistory_keep = 6\napi_url = 'http://from-config'\n")
    env = {"POSTREFRESH_SITE": str(tmp_path), "POSTREFRESH_CONFIG": str(config),
           "YOUTUBE_API_URL": "http://from-env"}
    settings = load_settings({"max_units": 9}, env)
    assert (settings.concurrency, settings.history_keep, settings.retry_attempts) == (3, 6, 4)
    assert settings.api_url == "http://from-env" and settings.max_units == 9
    assert settings.site == tmp_path


def test_the_broker_prefers_celery_broker_url() -> None:
    assert load_settings({}, {"REDIS_URL": "redis://a"}).broker == "redis://a"
    both = load_settings({}, {"REDIS_URL": "redis://a", "CELERY_BROKER_URL": "redis://b"})
    assert both.broker == "redis://b" and both.redis_url == "redis://a"


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
