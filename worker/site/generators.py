"""Which static site generator builds a site, and where each one wants posts, data, history and thumbnails.

The generator is recognised by a marker file at the site's root, tried in MARKERS' order (the
first match decides; a second generator's marker is named in a warning). No marker: Jekyll,
as before generators were told apart. `generator = "hugo"` skips the detection. Every default
here is a setting a site can override (`posts_globs`, `data_dir`, `history_dir`,
`thumbnail_dir`, `thumbnail_public_path`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.settings import SiteSettings, ThumbnailSettings
from worker.site.paths import thumbnail_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generator:
    """A generator's defaults: where posts are, where summary.json, history CSVs and thumbnails go."""

    name: str
    posts_globs: tuple[str, ...]
    data_dir: str  # summary.json: a folder the generator reads as site data
    history_dir: str  # the CSV overflow: a folder the build tolerates (reads or ignores)
    thumbnail_dir: str
    public_root: str  # the folder the generator copies to the site's "/" ("" : the site itself)


_SITE, _THUMBNAILS = SiteSettings(), ThumbnailSettings()
GENERATORS: Mapping[str, Generator] = {g.name: g for g in (
    # Settings' own defaults are Jekyll's, as they were before generators were told apart
    Generator("jekyll", _SITE.posts_globs, _SITE.data_dir, _SITE.history_dir, _THUMBNAILS.dir, ""),
    # Hugo's docs: "Do not place CSV files in the data directory"; assets/ is read by
    # resources.Get (and transform.Unmarshal reads CSV) and published only when a template asks.
    Generator("hugo", ("content/**/*.md",), "data/postrefresh", "assets/postrefresh",
              "static/thumbnails", "static"),
    # Eleventy's input folder is the site (its default "."); node_modules and _site are never
    # searched. Its _data reads no CSV and ignores it; public/ needs a passthrough copy.
    Generator("eleventy", ("**/*.md",), "_data/postrefresh", "_data/postrefresh",
              "public/thumbnails", "public"),
    # Astro reads src/data only through imports: a CSV nobody imports is never built.
    Generator("astro", ("src/content/**/*.md", "src/content/**/*.mdx"), "src/data/postrefresh",
              "src/data/postrefresh", "public/thumbnails", "public"),
)}
# (marker at the site's root, generator), most specific first: the first present decides.
MARKERS: tuple[tuple[str, str], ...] = (
    ("astro.config.*", "astro"),
    ("eleventy.config.*", "eleventy"), (".eleventy.js", "eleventy"),
    ("hugo.toml", "hugo"), ("hugo.yaml", "hugo"), ("hugo.json", "hugo"),
    ("_config.yml", "jekyll"),
    ("config.toml", "hugo"), ("config.yaml", "hugo"), ("config.json", "hugo"),
)
DEFAULT = _SITE.generator


def detect(site: Path) -> str:
    """The generator whose marker is at `site`'s root (MARKERS' order); Jekyll when none is."""
    found: dict[str, str] = {}  # generator -> its first marker found
    for pattern, name in MARKERS:
        marker = next((p.name for p in sorted(site.glob(pattern)) if p.is_file()), None)
        if marker is not None:
            found.setdefault(name, marker)
    if not found:
        return DEFAULT
    name, marker = next(iter(found.items()))
    others = [f"{other} ({m})" for other, m in found.items() if other != name]
    if others:
        log.warning("%s: found markers of %s and %s; building for %s (set generator = \"...\" to choose)",
                    site, f"{name} ({marker})", " and ".join(others), name)
    return name


def generator_named(name: str) -> Generator:
    """The generator called `name`; ValueError naming the known ones otherwise."""
    if name not in GENERATORS:
        raise ValueError(f"must be one of {', '.join(GENERATORS)}")
    return GENERATORS[name]


def site_defaults(site: Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `site`'s generator brings (as TOML would give them), for `load_settings`.

    `given` holds the values set elsewhere: `generator` skips the detection, and a given
    `thumbnail_dir` under the generator's public folder gets its public path from there.
    """
    generator = generator_named(str(given.get("generator") or detect(site)))
    thumbnail_dir = thumbnail_folder(str(given.get("thumbnail_dir", generator.thumbnail_dir)))
    defaults: dict[str, Any] = {
        "generator": generator.name, "posts_globs": list(generator.posts_globs),
        "data_dir": generator.data_dir, "history_dir": generator.history_dir,
        "thumbnail_dir": generator.thumbnail_dir,
    }
    root = generator.public_root
    if root and thumbnail_dir.startswith(root + "/"):
        defaults["thumbnail_public_path"] = "/" + thumbnail_dir.removeprefix(root + "/") + "/"
    return defaults
