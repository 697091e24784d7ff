"""The `fields` partial-response mask as Google documents it: `a,b`, `a/b`, `a(b,c)` and `*`."""

from __future__ import annotations

from typing import Any

# A parsed mask: each selected key maps to its own mask, or to None for "all of it".
Mask = dict[str, "Mask | None"]


class MaskError(ValueError):
    """A `fields` value that is not a valid selection."""


def parse_mask(text: str) -> Mask:
    """The mask in `text` (`items(id,snippet/title)`); MaskError when it does not parse."""
    mask, rest = _parse_list(text.replace(" ", ""))
    if rest:
        raise MaskError(f"unexpected {rest[:10]!r} in fields")
    return mask


def _parse_list(text: str) -> tuple[Mask, str]:
    mask: Mask = {}
    while True:
        path, text = _parse_path(text)
        sub: Mask | None = None
        if text.startswith("("):
            sub, text = _parse_list(text[1:])
            if not text.startswith(")"):
                raise MaskError("unbalanced parentheses in fields")
            text = text[1:]
        for name in reversed(path):
            sub = {name: sub}
        merged = _merge(mask, sub)
        assert merged is not None  # neither side is "all of it" at this level
        mask = merged
        if not text.startswith(","):
            return mask, text
        text = text[1:]


def _parse_path(text: str) -> tuple[list[str], str]:
    names: list[str] = []
    while True:
        end = 0
        while end < len(text) and (text[end].isalnum() or text[end] in "_*"):
            end += 1
        name, text = text[:end], text[end:]
        if not name or ("*" in name and name != "*"):
            raise MaskError("empty or malformed field name in fields")
        names.append(name)
        if not text.startswith("/"):
            return names, text
        text = text[1:]


def _merge(a: Mask | None, b: Mask | None) -> Mask | None:
    if a is None or b is None:
        return None
    merged = dict(a)
    for key, sub in b.items():
        merged[key] = _merge(merged[key], sub) if key in merged else sub
    return merged


def select(value: Any, mask: Mask | None) -> Any:
    """The part of a JSON value that `mask` selects (arrays are selected item by item)."""
    if mask is None:
        return value
    if isinstance(value, list):
        return [select(v, mask) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in mask.items():
        keys = list(value) if key == "*" else [key] if key in value else []
        for name in keys:
            chosen = select(value[name], sub)
            out[name] = chosen if name not in out else _union(out[name], chosen)
    return out


def _union(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: _union(a[k], v) if k in a else v for k, v in b.items()}}
    return b
