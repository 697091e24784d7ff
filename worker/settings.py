"""The one settings object, built once at start from flags, env vars and TOML files."""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from worker.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_FIELDS: Mapping[str, str] = {
    "viewcount": "statistics.viewCount",
    "likeCount": "statistics.likeCount",
    "commentCount": "statistics.commentCount",
}
DEFAULT_FILL_EMPTY: Mapping[str, str] = {
    "title": "snippet.title",
    "channel": "snippet.channelTitle",
    "duration": "contentDetails.duration",
}
HISTORY_MODES = ("frontmatter", "data")
SITE_CONFIG_NAME = "_postrefresh.toml"
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}

# env var -> settings field; everything else comes from TOML or flags.
ENV_VARS: Mapping[str, str] = {
    "YOUTUBE_API_KEY": "api_key",
    "YOUTUBE_API_URL": "api_url",
    "YOUTUBE_THUMBNAIL_URL": "thumbnail_url",
    "REDIS_URL": "redis_url",
    "CELERY_BROKER_URL": "broker_url",
    "POSTREFRESH_SITE": "site",
}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; immutable, passed in, never read from globals."""

    api_key: str | None = field(default=None, repr=False)
    api_url: str = "https://www.googleapis.com/youtube/v3"
    thumbnail_url: str = "https://i.ytimg.com"
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str | None = None
    site: Path | None = None
    posts_globs: tuple[str, ...] = ("_posts/**/*.md", "_posts/**/*.markdown")
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    fill_empty: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FILL_EMPTY))
    concurrency: int = 8
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retry_attempts: int = 6
    retry_max_wait: float = 60.0
    daily_quota: int = 10_000
    max_units: int | None = None
    history_mode: str = "frontmatter"
    history_keep: int = 30
    absent_runs: int = 2
    thumbnails: bool = True
    thumbnail_sizes: tuple[str, ...] = ("hq",)
    thumbnail_dir: str = "assets/thumbnails"
    thumbnail_max_bytes: int = 2_000_000
    thumbnail_budget_mb: int = 500
    thumbnail_concurrency: int = 16
    rewrite_image: bool = False
    scan_every: str = "1h"
    tier_new_age: str = "2d"
    tier_new_every: str = "1h"
    tier_recent_age: str = "30d"
    tier_recent_every: str = "1d"
    tier_old_every: str = "7d"
    tier_unavailable_every: str = "30d"
    stats_cache_ttl: int = 900
    visibility_timeout: int = 7_200
    site_summary: bool = True
    summary_top: int = 20
    publish_commit: bool = False
    publish_push: bool = False
    publish_every: str = "1h"
    dislikes: bool = False
    dislikes_url: str = "https://returnyoutubedislikeapi.com"
    dislikes_timeout: float = 10.0
    dislikes_retry_attempts: int = 3
    dislikes_retry_max_wait: float = 30.0
    dislikes_per_minute: int = 100
    dislikes_per_day: int = 10_000
    dislikes_concurrency: int = 4

    @property
    def broker(self) -> str:
        """The Celery broker URL: CELERY_BROKER_URL wins over REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def refreshed_fields(self) -> Mapping[str, str]:
        """`fields`, plus `dislikeCount` <- `ryd.dislikes` when dislikes are on."""
        if self.dislikes and "dislikeCount" not in self.fields:
            return {**self.fields, "dislikeCount": "ryd.dislikes"}
        return self.fields

    def require_site(self) -> Path:
        """The site directory, or a ConfigError saying how to give one."""
        if self.site is None:
            raise ConfigError("no site given: pass --site DIR or set POSTREFRESH_SITE")
        if not self.site.is_dir():
            raise ConfigError(f"site directory not found: {self.site}")
        return self.site


def parse_duration(text: str) -> float:
    """Seconds in `30m`, `12h`, `7d` or `2w`; ValueError otherwise."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 30m, 12h, 7d, 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
) -> Settings:
    """Build Settings: flags over env vars over a TOML file over the site's TOML over defaults.

    `config_file` is `--config`; when absent, POSTREFRESH_CONFIG is used. The site's own
    `_postrefresh.toml` is read too, under any explicit file.
    """
    values: dict[str, Any] = {}
    from_env = {name: env[var] for var, name in ENV_VARS.items() if env.get(var)}
    from_flags = {k: v for k, v in flags.items() if v is not None}
    site = from_flags.get("site") or from_env.get("site")
    if site:
        site_toml = Path(site) / SITE_CONFIG_NAME
        if site_toml.is_file():
            values.update(_read_toml(site_toml))
    explicit = config_file or (Path(env["POSTREFRESH_CONFIG"]) if env.get("POSTREFRESH_CONFIG") else None)
    if explicit is not None:
        values.update(_read_toml(explicit))
    values.update(from_env)
    values.update(from_flags)
    return _build(values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if "api_key" in data and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds the API key and is readable by others: chmod 600 it", path)
    return data


def _build(values: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        settings = replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad setting: {exc}") from None
    _validate(settings)
    return settings


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings(), name)
    if name == "site":
        return Path(os.path.expanduser(str(value)))
    if name in ("posts_globs", "thumbnail_sizes"):
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(v).strip() for v in items if str(v).strip())
    if name in ("fields", "fill_empty"):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a table of post key = API path")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int) or name == "max_units":
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def _validate(s: Settings) -> None:
    if s.summary_top < 1:
        raise ConfigError("summary_top must be at least 1")
    try:
        parse_duration(s.publish_every)
    except ValueError as exc:
        raise ConfigError(f"publish_every: {exc}") from None
    if s.history_mode not in HISTORY_MODES:
        raise ConfigError(f"history_mode must be one of {', '.join(HISTORY_MODES)}")
    for name in ("concurrency", "retry_attempts", "history_keep", "absent_runs",
                 "thumbnail_concurrency", "daily_quota", "dislikes_retry_attempts",
                 "dislikes_per_minute", "dislikes_concurrency"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if s.max_units is not None and s.max_units < 1:
        raise ConfigError("max_units must be at least 1")
    for name in ("scan_every", "tier_new_age", "tier_new_every", "tier_recent_age",
                 "tier_recent_every", "tier_old_every", "tier_unavailable_every"):
        try:
            parse_duration(getattr(s, name))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    bad = [size for size in s.thumbnail_sizes if size not in ("maxres", "sd", "hq", "mq", "default")]
    if bad or not s.thumbnail_sizes:
        raise ConfigError("thumbnail_sizes must be a list of maxres, sd, hq, mq, default")
