"""Generate a synthetic Jekyll site of video posts in the real corpus format (FORMAT.md).

Every post is CRLF, has the 12 keys in the corpus order with JSON-style double-quoted values
(`\\/`, `\\"`, raw UTF-8), a one-line `{% raw %}` HTML body, and a size drawn from a
log-normal fitted to the corpus sizes (median ~1.6 KB, p10 ~0.6 KB, long tail to ~15 KB).
Posts are written one at a time, so memory stays flat however many are asked for.

    python bench/gen_posts.py DIR --count 100000 [--seed 0] [--share-every 0]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MASK64 = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15

SIZE_MEDIAN, SIZE_SIGMA, SIZE_MIN, SIZE_MAX = 1650, 0.8, 342, 14500
EMPTY_BODY_RATE = 0.0055

CATEGORIES = {
    "People-Blogs": 7179, "Music": 6780, "Entertainment": 5905, "Education": 5564,
    "Gaming": 3751, "News-Politics": 2780, "Howto-Style": 2377, "Science-Technology": 1745,
    "Sports": 1700, "Film-Animation": 1204, "Comedy": 856, "Autos-Vehicles": 803,
    "Travel-Events": 619, "Nonprofits-Activism": 551, "Pets-Animals": 313, "Movies": 35,
}
DURATION_FORMS = {
    "PT{m}M{s}S": 36587, "PT{h}H{m}M{s}S": 2386, "PT{s}S": 1973, "PT{m}M": 780,
    "PT{h}H{s}S": 242, "PT{h}H{m}M": 65, "PT{h}H": 44, "P0D": 80,
}
WORDS = {
    "en": (
        "how", "to", "make", "the", "best", "easy", "quick", "guide", "review", "live", "full",
        "video", "official", "new", "top", "ten", "tips", "tricks", "for", "beginners", "home",
        "garden", "kitchen", "recipe", "song", "cover", "remix", "game", "play", "part",
        "episode", "news", "today", "world", "city", "travel", "vlog", "day", "night", "music",
        "lesson", "learn", "fix", "build", "test", "first", "look", "unboxing", "vs", "challenge",
        "story", "history", "science", "space", "car", "bike", "dog", "cat",
    ),
    "ru": (
        "как", "сделать", "лучший", "простой", "рецепт", "обзор", "новости", "сегодня", "музыка",
        "песня", "игра", "урок", "история", "путешествие", "дом", "сад", "кухня", "машина",
        "собака", "кошка", "день", "ночь", "первый", "новый",
    ),
    "ar": (
        "كيف", "تعلم", "أفضل", "طريقة", "سهلة", "وصفة", "مطبخ", "أخبار", "اليوم", "أغنية", "لعبة",
        "درس", "رحلة", "سيارة", "بيت",
    ),
}
LANGUAGES = {"en": 60, "ru": 25, "ar": 15}
EMOJI = ("🔥", "🎧", "✨", "🌙", "⚽", "🎮", "❤️", "😂")
SLUG_CUT = 75


def weighted(table: dict[str, int]) -> tuple[list[str], list[int]]:
    """Split a {value: weight} table into the two lists `random.choices` wants."""
    return list(table), list(table.values())


CATEGORY_CHOICES = weighted(CATEGORIES)
DURATION_CHOICES = weighted(DURATION_FORMS)
LANGUAGE_CHOICES = weighted(LANGUAGES)


def video_id(index: int, seed: int = 0) -> str:
    """The 11-char id of post `index`: a bijective 64-bit mix, so distinct indexes never collide."""
    x = (index + seed * GOLDEN64) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return base64.urlsafe_b64encode(x.to_bytes(8, "big")).decode("ascii")[:11]


def json_string(value: str) -> str:
    """A PHP `json_encode` style literal: raw UTF-8, and `/` written as `\\/`."""
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")


def make_title(rng: random.Random, lang: str) -> str:
    """A title up to 100 characters, with the corpus's rare quotes, slashes and escapes."""
    words = rng.choices(WORDS[lang], k=rng.randint(3, 12))
    if lang != "en" and rng.random() < 0.95:
        words += rng.choices(WORDS["en"], k=2)
    if rng.random() < 0.067:
        words[0] = f'"{words[0]}"'
    if rng.random() < 0.06:
        words.append(f"{rng.randint(1, 9)}/{rng.randint(10, 20)}")
    if rng.random() < 0.05:
        words.append(rng.choice(EMOJI))
    if rng.random() < 0.0005:
        words.insert(1, "\\")
    if rng.random() < 0.0002:
        words.insert(2, "\n")
    return " ".join(words)[:100].strip().capitalize()


def make_duration(rng: random.Random) -> str:
    """An ISO 8601 duration in one of the corpus's forms."""
    form = rng.choices(*DURATION_CHOICES)[0]
    return form.format(h=rng.randint(1, 3), m=rng.randint(1, 59), s=rng.randint(1, 59))


def make_counts(rng: random.Random) -> tuple[str, str, str]:
    """Quoted-string viewcount, likeCount, dislikeCount, sometimes empty like the corpus."""
    views = int(rng.lognormvariate(8.5, 2.2))
    likes = int(views * rng.uniform(0.002, 0.06))
    view_text = "" if rng.random() < 0.001 else str(views)
    like_text = "" if rng.random() < 0.016 else str(likes)
    dislike_text = str(likes // rng.randint(10, 60)) if rng.random() < 0.13 else ""
    return view_text, like_text, dislike_text


def make_dates(rng: random.Random) -> tuple[str, str]:
    """The post `date` (+03:00, 2021-2022) and an earlier `vid_date` (UTC)."""
    posted = 1609459200 + rng.randrange(2 * 365 * 86400)
    uploaded = posted - int(rng.expovariate(1 / (200 * 86400)))
    date = time.strftime("%Y-%m-%dT%H:%M:%S+03:00", time.gmtime(posted + 3 * 3600))
    return date, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(uploaded))


def body_fragment(rng: random.Random, lang: str) -> str:
    """One piece of a one-line HTML description: a sentence, a break, a link or hashtags."""
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(("<br />", "<br /><br />"))
    if roll < 0.25:
        url = f"https://example.com/{rng.choice(WORDS['en'])}/{rng.randrange(10**6)}"
        return f'<a rel="nofollow" target="blank" href="{url}">{url}</a>'
    if roll < 0.30:
        return " ".join("#" + word for word in rng.choices(WORDS[lang], k=3))
    sentence = " ".join(rng.choices(WORDS[lang], k=rng.randint(5, 16)))
    if rng.random() < 0.1:
        sentence += " &quot;" + rng.choice(WORDS[lang]) + "&quot; &amp; more"
    return sentence.capitalize() + ". "


def make_body(rng: random.Random, lang: str, budget: int) -> str:
    """A single-line HTML description of roughly `budget` bytes (empty for a few posts)."""
    if rng.random() < EMPTY_BODY_RATE:
        return ""
    chars = budget // (1 if lang == "en" else 2)
    parts: list[str] = []
    length = 0
    while length < chars:
        part = body_fragment(rng, lang)
        parts.append(part)
        length += len(part)
    return "".join(parts).strip()


def render_post(rng: random.Random, vid: str) -> tuple[str, bytes]:
    """The (title, file bytes) of one post for `vid`, in the corpus layout."""
    lang = rng.choices(*LANGUAGE_CHOICES)[0]
    title = make_title(rng, lang)
    date, vid_date = make_dates(rng)
    views, likes, dislikes = make_counts(rng)
    tags = rng.choices(WORDS[lang], k=rng.choices((1, 2, 3), (1281, 2075, 38807))[0])
    head = (
        "---\r\n"
        f"title: {json_string(title)}\r\n"
        f'image: "https:\\/\\/i.ytimg.com\\/vi\\/{vid}\\/hqdefault.jpg"\r\n'
        f'vid_id: "{vid}"\r\n'
        f'categories: "{rng.choices(*CATEGORY_CHOICES)[0]}"\r\n'
        f"tags: [{','.join(json_string(tag) for tag in tags)}]\r\n"
        f'date: "{date}"\r\nvid_date: "{vid_date}"\r\nduration: "{make_duration(rng)}"\r\n'
        f'viewcount: "{views}"\r\nlikeCount: "{likes}"\r\ndislikeCount: "{dislikes}"\r\n'
        f"channel: {json_string(' '.join(rng.choices(WORDS[lang], k=2)).title())}\r\n"
        "---\r\n"
    ).encode()
    size = min(SIZE_MAX, max(SIZE_MIN, int(rng.lognormvariate(0, SIZE_SIGMA) * SIZE_MEDIAN)))
    body = make_body(rng, lang, size - len(head) - 25)
    return title, head + ("{% raw %}" + body + "{% endraw %}\r\n").encode()


def file_name(title: str, vid: str, index: int) -> str:
    """`0001-01-01-<slug>-<index>.md`, or `0001-01-01-<vid_id>.md` when the title has no Latin.

    The index suffix keeps names unique without remembering every name written (flat memory).
    """
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:SLUG_CUT].strip("-")
    if len(slug) < 3:
        return f"0001-01-01-{vid}.md"
    return f"0001-01-01-{slug}-{index}.md"


def write_site(
    directory: Path, count: int, seed: int = 0, share_every: int = 0
) -> Iterator[str]:
    """Write `count` posts into `directory/_posts/` lazily, yielding each post's vid_id.

    With `share_every=k > 0`, every k-th post reuses the previous post's vid_id (and always
    gets a slug name, so it cannot overwrite an id-named file).
    """
    posts = Path(directory) / "_posts"
    posts.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for index in range(count):
        shared = share_every > 0 and index > 0 and index % share_every == 0
        vid = video_id(index - 1 if shared else index, seed)
        title, data = render_post(rng, vid)
        name = file_name(title, vid, index)
        if shared and name == f"0001-01-01-{vid}.md":
            name = f"0001-01-01-{vid}-{index}.md"
        with open(posts / name, "wb") as fh:
            fh.write(data)
        yield vid


def generate_site(directory: Path, count: int, seed: int = 0, share_every: int = 0) -> list[str]:
    """Write `count` posts into `directory/_posts/` and return their vid_ids in write order."""
    return list(write_site(directory, count, seed, share_every))


def main(argv: list[str] | None = None) -> int:
    """CLI: generate a site and print a one-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="site root; posts go to DIR/_posts/")
    parser.add_argument("--count", type=int, required=True, help="number of posts")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--share-every", type=int, default=0,
                        help="every K-th post reuses the previous vid_id (0: all unique)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = sum(1 for _ in write_site(args.dir, args.count, args.seed, args.share_every))
    seconds = round(time.perf_counter() - started, 3)
    print(json.dumps({"posts": written, "dir": str(args.dir), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
