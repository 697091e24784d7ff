"""TOML front matter (`+++`, Hugo's default) read with the standard library's strict reader.

tomllib gives the same plain values the YAML reader does (str, int, float, bool, list, dict,
and dates as `datetime`/`date`, which worker.times and the history read); the same size and
depth limits as for YAML apply. Nothing here writes.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from worker.errors import PostFormatError

# tomllib ends each message with where: "(at line 3, column 9)" or "(at end of document)".
_WHERE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def read_toml(text: str, max_values: int, max_depth: int) -> dict[str, Any]:
    """The mapping of TOML front matter text; PostFormatError names what is wrong and where."""
    try:
        mapping = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PostFormatError(_message(str(exc), text)) from None
    except RecursionError:
        raise PostFormatError("front matter is nested too deeply") from None
    _check_shape(mapping, max_values, max_depth)
    return mapping


def _message(error: str, text: str) -> str:
    where = _WHERE.search(error)
    if where is None:
        return f"invalid TOML: {error}"
    if where.group(1):
        line = int(where.group(1)) + 1  # the file's first line is the opening `+++`
        return f"invalid TOML at line {line}: {error[: where.start()]}"
    last = len(text.splitlines()) + 1
    return f"invalid TOML at line {last} (the end of the front matter): {error[: where.start()]}"


def _check_shape(mapping: dict[str, Any], max_values: int, max_depth: int) -> None:
    """Refuse absurd sizes and depths, as the YAML reader does."""
    stack: list[tuple[Any, int]] = [(mapping, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > max_depth:
            raise PostFormatError(f"front matter is nested deeper than {max_depth} levels")
        if count > max_values:
            raise PostFormatError(f"front matter has more than {max_values} values")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
