"""The one settings object, built once at start from flags, env vars and TOML files."""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
DISLIKE_FIELD = "ryd.dislikes"  # the flat field the dislike client fills (worker.api.dislikes)
HISTORY_MODES = ("frontmatter", "data")
THUMBNAIL_SIZES = ("maxres", "sd", "hq", "mq", "default")
URL_SCHEMES: Mapping[str, tuple[str, ...]] = {
    "api_url": ("http://", "https://"), "thumbnail_url": ("http://", "https://"),
    "dislikes_url": ("http://", "https://"), "redis_url": ("redis://", "rediss://", "unix://"),
}
SECRET = ("api_key", "redis_url", "broker_url", "notify")  # never shown in an error (URLs hold tokens)
SITE_CONFIG_NAME = "_postrefresh.toml"
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}

# env var -> key (of KEYS); everything else comes from TOML or flags.
ENV_VARS: Mapping[str, str] = {
    "YOUTUBE_API_KEY": "api_key",
    "YOUTUBE_API_URL": "api_url",
    "YOUTUBE_THUMBNAIL_URL": "thumbnail_url",
    "REDIS_URL": "redis_url",
    "CELERY_BROKER_URL": "broker_url",
    "POSTREFRESH_SITE": "site",
}


@dataclass(frozen=True)
class MinChange:
    """How far a count must move before its post is rewritten: a share of it, an amount, or either."""

    share: float | None = None  # 0.01 for "1%"
    amount: int | None = None  # 500 for "500"

    def reached(self, old: int, new: int) -> bool:
        """True when the move from `old` to `new` is at least the share or the amount."""
        moved = abs(new - old)
        return ((self.amount is not None and moved >= self.amount)
                or (self.share is not None and moved >= self.share * old))


@dataclass(frozen=True)
class SiteSettings:
    """The site: where it is, which posts, which front-matter keys, and what a run leaves there."""

    site: Path | None = None
    generator: str = "jekyll"  # the defaults below are Jekyll's; worker/site/generators.py has the others
    posts_globs: tuple[str, ...] = ("_posts/**/*.md", "_posts/**/*.markdown")
    id_key: str | None = None  # None: the first of worker/site/posts.py's ID_KEYS a post has
    data_dir: str = "_data/postrefresh"
    history_dir: str = "_data/postrefresh"
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    fill_empty: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FILL_EMPTY))
    history_mode: str = "frontmatter"
    history_keep: int = 30
    absent_runs: int = 2
    site_summary: bool = True
    summary_top: int = 20
    min_change: MinChange | None = None  # off: every change is written
    max_unwritten: float = 30 * 86_400
    milestone_days: float = 7 * 86_400


@dataclass(frozen=True)
class ApiSettings:
    """The YouTube Data API: the key, the calls' limits and the daily quota."""

    key: str | None = field(default=None, repr=False)
    url: str = "https://www.googleapis.com/youtube/v3"
    concurrency: int = 8
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retry_attempts: int = 6
    retry_max_wait: float = 60.0
    daily_quota: int = 10_000
    max_units: int | None = None

    def units_left(self, spent: int) -> int:
        """The quota units left today once `spent` are gone (negative when overspent)."""
        return self.daily_quota - spent


@dataclass(frozen=True)
class ThumbnailSettings:
    """The thumbnails downloaded into the site."""

    enabled: bool = True
    url: str = "https://i.ytimg.com"
    sizes: tuple[str, ...] = ("hq",)
    dir: str = "assets/thumbnails"
    public_path: str | None = None  # the URL path of `dir` (None: "/" + dir, the site being its root)
    max_bytes: int = 2_000_000
    budget_mb: int = 500
    concurrency: int = 16
    rewrite_image: bool = False


@dataclass(frozen=True)
class DislikeSettings:
    """The Return YouTube Dislike API and its limits."""

    enabled: bool = False
    url: str = "https://returnyoutubedislikeapi.com"
    timeout: float = 10.0
    retry_attempts: int = 3
    retry_max_wait: float = 30.0
    per_minute: int = 100
    per_day: int = 10_000
    concurrency: int = 4


@dataclass(frozen=True)
class TierSettings:
    """How often posts are refreshed, by the age of their video; all in seconds."""

    scan_every: float = 3_600
    new_age: float = 2 * 86_400
    new_every: float = 3_600
    recent_age: float = 30 * 86_400
    recent_every: float = 86_400
    old_every: float = 7 * 86_400
    unavailable_every: float = 30 * 86_400


@dataclass(frozen=True)
class PublishSettings:
    """Whether the worker commits and pushes what it wrote, and how often (`every`, in seconds)."""

    commit: bool = False
    push: bool = False
    every: float = 3_600


@dataclass(frozen=True)
class QueueSettings:
    """Redis and the Celery broker."""

    redis_url: str = "redis://localhost:6379/0"
    broker_url: str | None = None
    stats_cache_ttl: int = 900
    visibility_timeout: int = 7_200


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go: Apprise URLs, which carry tokens (never shown: outputs/notify.py)."""

    urls: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, in sections; immutable, passed in, never read from globals."""

    site: SiteSettings = field(default_factory=SiteSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    thumbnails: ThumbnailSettings = field(default_factory=ThumbnailSettings)
    dislikes: DislikeSettings = field(default_factory=DislikeSettings)
    tiers: TierSettings = field(default_factory=TierSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)

    @property
    def thumbnail_public_path(self) -> str:
        """The URL path the thumbnails are served under, ending in "/" (`/assets/thumbnails/`)."""
        given = self.thumbnails.public_path
        # dir.strip("/") is site/paths.thumbnail_folder's rule, which settings (a lower layer) cannot import
        return given.rstrip("/") + "/" if given else "/" + self.thumbnails.dir.strip("/") + "/"

    @property
    def broker(self) -> str:
        """The Celery broker URL: CELERY_BROKER_URL wins over REDIS_URL."""
        return self.queue.broker_url or self.queue.redis_url

    @property
    def refreshed_fields(self) -> Mapping[str, str]:
        """`fields`, plus `dislikeCount` <- `ryd.dislikes` when dislikes are on."""
        fields = self.site.fields
        if self.dislikes.enabled and "dislikeCount" not in fields:
            return {**fields, "dislikeCount": DISLIKE_FIELD}
        return fields

    @property
    def api_paths(self) -> tuple[str, ...]:
        """Every flat field path a post key is mapped to (`[fields]`, dislikes, `[fill_empty]`)."""
        return tuple(dict.fromkeys([*self.refreshed_fields.values(), *self.site.fill_empty.values()]))

    def require_site(self) -> Path:
        """The site directory, or a ConfigError saying how to give one."""
        site = self.site.site
        if site is None:
            raise ConfigError("no site given: pass --site DIR or set POSTREFRESH_SITE")
        if not site.is_dir():
            raise ConfigError(f"site directory not found: {site} (from --site or POSTREFRESH_SITE)")
        return site

    def with_values(self, **flat: Any) -> Settings:
        """A copy with some values changed by flat key (`tier_old_every="1d"`), each read as in TOML."""
        return _with_parsed(self, {key: KEYS[key][2](value) for key, value in flat.items()})


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
# (site, the values given for it) -> the settings the site's generator brings (worker/site/generators.py)
SiteDefaults = Callable[[Path, Mapping[str, Any]], Mapping[str, Any]]


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
    site_defaults: SiteDefaults | None = None,
) -> Settings:
    """Build Settings: flags over env vars over a TOML file over the site's TOML over defaults.

    `config_file` is `--config`; when absent, POSTREFRESH_CONFIG is used. The site's own
    `_postrefresh.toml` is read too, under any explicit file. `site_defaults` gives the
    defaults of the site's generator, under everything given. A bad value is reported with
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
    if site_defaults is not None and site:
        given = {name: value for name, (value, _) in values.items()}
        try:
            defaults = site_defaults(_path(site), given)
        except ValueError as exc:  # only a given generator can be wrong: a detected one is known
            value, source = values["generator"]
            raise ConfigError(source.says(value, str(exc))) from None
        prefix = f"the {defaults['generator']} defaults: "
        values = {**{name: (v, _Source(prefix, name, " = ")) for name, v in defaults.items()}, **values}
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
    unknown = [name for name in values if name not in KEYS]
    if unknown:
        raise ConfigError("; ".join(values[name][1].says(None, "unknown setting" + _nearest(name, list(KEYS)),
                                                         secret=True) for name in unknown))
    parsed: dict[str, Any] = {}
    for name, (value, source) in values.items():
        try:
            parsed[name] = KEYS[name][2](value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(source.says(value, str(exc), secret=name in SECRET)) from None
    settings = _with_parsed(Settings(), parsed)
    for name, reason in _problems(settings):  # the defaults have none: the value was given
        value, source = values[name]
        raise ConfigError(source.says(value, reason, secret=name in SECRET))
    return settings


def _with_parsed(settings: Settings, parsed: Mapping[str, Any]) -> Settings:
    """`settings` with the parsed values of some flat keys put in their sections."""
    changed: dict[str, dict[str, Any]] = {}
    for key, value in parsed.items():
        section, name, _ = KEYS[key]
        changed.setdefault(section, {})[name] = value
    return replace(settings, **{section: replace(getattr(settings, section), **values)
                                for section, values in changed.items()})


def _value(settings: Settings, key: str) -> Any:
    """The value of a flat key, e.g. `api_key` -> `settings.api.key`."""
    section, name, _ = KEYS[key]
    return getattr(getattr(settings, section), name)


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


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(str(value)))


def _strings(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of strings, e.g. [\"hq\"]")
    return tuple(str(v).strip() for v in items if str(v).strip())


def _table(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("must be a table of post key = API path")
    return {str(k): str(v) for k, v in value.items()}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string (in quotes)")
    return value


def _as_given(value: Any) -> Any:
    return value


def _whole(value: Any) -> int:
    return int(_number(value, int, "must be a whole number, e.g. 8"))


def _seconds(value: Any) -> float:
    return _number(value, float, "must be a number of seconds, e.g. 5.0")


def _duration(value: Any) -> float:
    return parse_duration(_text(value))


def _number(value: Any, kind: type[int] | type[float], hint: str) -> int | float:
    wrong = (bool, float) if kind is int else (bool,)  # 8.5 is no count; true is no number
    if isinstance(value, wrong) or not isinstance(value, int | float | str):
        raise ValueError(hint)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(hint) from None


def _min_change(value: Any) -> MinChange | None:
    """`"1%"`, `"500"` (or 500), `"1% or 500"`; `""`/`"off"` for none."""
    text = str(value).strip().lower()
    if text in ("", "off"):
        return None
    share: float | None = None
    amount: int | None = None
    for part in text.split(" or "):
        part = part.strip()
        if part.endswith("%") and share is None and re.fullmatch(r"\d+(\.\d+)?", part[:-1]):
            share = float(part[:-1]) / 100
        elif part.isdigit() and amount is None:
            amount = int(part)
        else:
            raise ValueError('must be a share, an amount or both, e.g. "1%", "500" or "1% or 500"')
    return MinChange(share, amount)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


Parse = Callable[[Any], Any]
# flat key (TOML key, flag, ENV_VARS' target) -> (section, field, how a given value is read)
KEYS: Mapping[str, tuple[str, str, Parse]] = {
    "api_key": ("api", "key", _as_given),
    "api_url": ("api", "url", _text),
    "thumbnail_url": ("thumbnails", "url", _text),
    "redis_url": ("queue", "redis_url", _text),
    "broker_url": ("queue", "broker_url", _as_given),
    "site": ("site", "site", _path),
    "generator": ("site", "generator", _text),
    "posts_globs": ("site", "posts_globs", _strings),
    "id_key": ("site", "id_key", _text),
    "data_dir": ("site", "data_dir", _text),
    "history_dir": ("site", "history_dir", _text),
    "fields": ("site", "fields", _table),
    "fill_empty": ("site", "fill_empty", _table),
    "concurrency": ("api", "concurrency", _whole),
    "connect_timeout": ("api", "connect_timeout", _seconds),
    "read_timeout": ("api", "read_timeout", _seconds),
    "retry_attempts": ("api", "retry_attempts", _whole),
    "retry_max_wait": ("api", "retry_max_wait", _seconds),
    "daily_quota": ("api", "daily_quota", _whole),
    "max_units": ("api", "max_units", _whole),
    "history_mode": ("site", "history_mode", _text),
    "history_keep": ("site", "history_keep", _whole),
    "absent_runs": ("site", "absent_runs", _whole),
    "thumbnails": ("thumbnails", "enabled", _boolean),
    "thumbnail_sizes": ("thumbnails", "sizes", _strings),
    "thumbnail_dir": ("thumbnails", "dir", _text),
    "thumbnail_public_path": ("thumbnails", "public_path", _text),
    "thumbnail_max_bytes": ("thumbnails", "max_bytes", _whole),
    "thumbnail_budget_mb": ("thumbnails", "budget_mb", _whole),
    "thumbnail_concurrency": ("thumbnails", "concurrency", _whole),
    "rewrite_image": ("thumbnails", "rewrite_image", _boolean),
    "scan_every": ("tiers", "scan_every", _duration),
    "tier_new_age": ("tiers", "new_age", _duration),
    "tier_new_every": ("tiers", "new_every", _duration),
    "tier_recent_age": ("tiers", "recent_age", _duration),
    "tier_recent_every": ("tiers", "recent_every", _duration),
    "tier_old_every": ("tiers", "old_every", _duration),
    "tier_unavailable_every": ("tiers", "unavailable_every", _duration),
    "stats_cache_ttl": ("queue", "stats_cache_ttl", _whole),
    "visibility_timeout": ("queue", "visibility_timeout", _whole),
    "site_summary": ("site", "site_summary", _boolean),
    "summary_top": ("site", "summary_top", _whole),
    "min_change": ("site", "min_change", _min_change),
    "max_unwritten": ("site", "max_unwritten", _duration),
    "milestone_days": ("site", "milestone_days", _duration),
    "publish_commit": ("publish", "commit", _boolean),
    "publish_push": ("publish", "push", _boolean),
    "publish_every": ("publish", "every", _duration),
    "dislikes": ("dislikes", "enabled", _boolean),
    "dislikes_url": ("dislikes", "url", _text),
    "dislikes_timeout": ("dislikes", "timeout", _seconds),
    "dislikes_retry_attempts": ("dislikes", "retry_attempts", _whole),
    "dislikes_retry_max_wait": ("dislikes", "retry_max_wait", _seconds),
    "dislikes_per_minute": ("dislikes", "per_minute", _whole),
    "dislikes_per_day": ("dislikes", "per_day", _whole),
    "dislikes_concurrency": ("dislikes", "concurrency", _whole),
    "notify": ("notify", "urls", _strings),
}


def _problems(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, what is wrong with it) for each value out of its range."""
    at_least_one = ("concurrency", "retry_attempts", "history_keep", "absent_runs", "thumbnail_concurrency",
                    "daily_quota", "dislikes_retry_attempts", "dislikes_per_minute", "dislikes_concurrency",
                    "summary_top")
    yield from ((name, "must be at least 1") for name in at_least_one if _value(s, name) < 1)
    if s.api.max_units is not None and s.api.max_units < 1:
        yield "max_units", "must be at least 1"
    if s.site.history_mode not in HISTORY_MODES:
        yield "history_mode", f"must be one of {', '.join(HISTORY_MODES)}"
    sizes = s.thumbnails.sizes
    if not sizes or any(size not in THUMBNAIL_SIZES for size in sizes):
        yield "thumbnail_sizes", f"must be a list of {', '.join(THUMBNAIL_SIZES)}"
    for name, schemes in URL_SCHEMES.items():
        if not str(_value(s, name)).startswith(schemes):
            yield name, f"must be a URL starting with {' or '.join(schemes)}"
