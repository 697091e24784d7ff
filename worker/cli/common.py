"""What every subcommand shares: Settings from the command line, and the argument types."""

from __future__ import annotations

import argparse
import os
from typing import Any

from worker.settings import Settings, load_settings, parse_duration
from worker.site.generators import site_defaults


def duration_arg(text: str) -> float:
    """An argparse type for durations such as 30m, 12h, 7d, 2w."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_from(args: argparse.Namespace, **flags: Any) -> Settings:
    """Settings from the command line, the environment and the TOML files."""
    return load_settings({"site": getattr(args, "site", None), **flags}, os.environ,
                         getattr(args, "config", None), site_defaults)
