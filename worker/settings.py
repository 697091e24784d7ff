"""The one settings object, built once at start from flags, env vars and TOML files."""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
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
THUMBNAIL_SIZES = ("maxres", "sd", "hq", "mq", "default")
DURATIONS = ("scan_every", "tier_new_age", "tier_new_every", "tier_recent_age", "tier_recent_every",
             "tier_old_every", "tier_unavailable_every", "publish_every")
URL_SCHEMES: Mapping[str, tuple[str, ...]] = {
    "api_url": ("http://", "https://"), "thumbnail_url": ("http://", "https://"),
    "dislikes_url": ("http://", "https://"), "redis_url": ("redis://", "rediss://", "unix://"),
}
SECRET = ("api_key", "redis_url", "broker_url")  # never shown in an error (a URL may hold a password)
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
            raise ConfigError(f"site directory not found: {self.site} (from --site or POSTREFRESH_SITE)")
        return self.site


def parse_duration(text: str) -> float:
    """Seconds in `30m`, `12h`, `7d` or `2w`; ValueError otherwise."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 30m, 12h, 7d, 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class _Source:
    """Where a value came from, to name it in an error: `FILE: key = value`, `env var VAR=value`."""

    prefix: str
    key: str
    sep: str

    def says(self, value: Any, reason: str, *, secret: bool = False) -> str:
        shown = "" if secret else f"{self.sep}{value!r}"
        return f"{self.prefix}{self.key}{shown}: {reason}"


Layer = dict[str, tuple[Any, _Source]]  # setting -> (value as given, where it was given)


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
) -> Settings:
    """Build Settings: flags over env vars over a TOML file over the site's TOML over defaults.

    `config_file` is `--config`; when absent, POSTREFRESH_CONFIG is used. The site's own
    `_postrefresh.toml` is read too, under any explicit file. A bad value is reported with
    the file, env var or flag it came from.
    """
    _warn_near_misses(env)
    from_env: Layer = {name: (env[var], _Source("env var ", var, "="))
                       for var, name in ENV_VARS.items() if env.get(var)}
    from_flags: Layer = {name: (value, _Source("", "--" + name.replace("_", "-"), " "))
                         for name, value in flags.items() if value is not None}
    layers: list[Layer] = []
    site = (from_flags.get("site") or from_env.get("site") or (None,))[0]
    site_toml = Path(os.path.expanduser(str(site))) / SITE_CONFIG_NAME if site else None
    if site_toml is not None and site_toml.is_file():
        layers.append(_read_toml(site_toml, str(site_toml)))
    if config_file is not None:
        layers.append(_read_toml(config_file, str(config_file)))
    elif env.get("POSTREFRESH_CONFIG"):
        layers.append(_read_toml(Path(env["POSTREFRESH_CONFIG"]), "POSTREFRESH_CONFIG"))
    values: Layer = {}
    for layer in [*layers, from_env, from_flags]:
        values.update(layer)
    return _build(values)


def _read_toml(path: Path, named_by: str) -> Layer:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        origin = "" if named_by == str(path) else f" (named by {named_by})"
        raise ConfigError(f"config file not found: {path}{origin}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if "api_key" in data and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds the API key and is readable by others: chmod 600 it", path)
    return {key: (value, _Source(f"{path}: ", key, " = ")) for key, value in data.items()}


def _build(values: Layer) -> Settings:
    known = [f.name for f in fields(Settings)]
    unknown = [name for name in values if name not in known]
    if unknown:
        raise ConfigError("; ".join(values[name][1].says(None, "unknown setting" + _nearest(name, known),
                                                         secret=True) for name in unknown))
    coerced: dict[str, Any] = {}
    for name, (value, source) in values.items():
        try:
            coerced[name] = _coerce(name, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(source.says(value, str(exc), secret=name in SECRET)) from None
    settings = replace(Settings(), **coerced)
    for name, reason in _problems(settings):  # the defaults have none: the value was given
        value, source = values[name]
        raise ConfigError(source.says(value, reason, secret=name in SECRET))
    return settings


def _nearest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _warn_near_misses(env: Mapping[str, str]) -> None:
    """An env var one typo away from one postrefresh reads is almost surely meant as that one."""
    read = [*ENV_VARS, "POSTREFRESH_CONFIG"]
    for var in env:
        if var.startswith(("POSTREFRESH_", "YOUTUBE_")) and var not in read:
            close = difflib.get_close_matches(var, read, n=1, cutoff=0.85)
            if close:
                log.warning("env var %s is not read by postrefresh: did you mean %s?", var, close[0])


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings(), name)
    if name == "site":
        return Path(os.path.expanduser(str(value)))
    if name in ("posts_globs", "thumbnail_sizes"):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("must be a list of strings, e.g. [\"hq\"]")
        return tuple(str(v).strip() for v in items if str(v).strip())
    if name in ("fields", "fill_empty"):
        if not isinstance(value, Mapping):
            raise ValueError("must be a table of post key = API path")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(default, bool):
        return _boolean(value)
    if isinstance(default, int) or name == "max_units":
        return _number(value, int, "must be a whole number, e.g. 8")
    if isinstance(default, float):
        return _number(value, float, "must be a number of seconds, e.g. 5.0")
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError("must be a string (in quotes)")
    return value


def _number(value: Any, kind: type[int] | type[float], hint: str) -> int | float:
    wrong = (bool, float) if kind is int else (bool,)  # 8.5 is no count; true is no number
    if isinstance(value, wrong) or not isinstance(value, int | float | str):
        raise ValueError(hint)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(hint) from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _problems(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, what is wrong with it) for each value out of its range."""
    at_least_one = ("concurrency", "retry_attempts", "history_keep", "absent_runs", "thumbnail_concurrency",
                    "daily_quota", "dislikes_retry_attempts", "dislikes_per_minute", "dislikes_concurrency",
                    "summary_top")
    yield from ((name, "must be at least 1") for name in at_least_one if getattr(s, name) < 1)
    if s.max_units is not None and s.max_units < 1:
        yield "max_units", "must be at least 1"
    if s.history_mode not in HISTORY_MODES:
        yield "history_mode", f"must be one of {', '.join(HISTORY_MODES)}"
    for name in DURATIONS:
        try:
            parse_duration(getattr(s, name))
        except ValueError as exc:
            yield name, str(exc)
    if not s.thumbnail_sizes or any(size not in THUMBNAIL_SIZES for size in s.thumbnail_sizes):
        yield "thumbnail_sizes", f"must be a list of {', '.join(THUMBNAIL_SIZES)}"
    for name, schemes in URL_SCHEMES.items():
        if not str(getattr(s, name)).startswith(schemes):
            yield name, f"must be a URL starting with {' or '.join(schemes)}"
