"""The `postrefresh` command (argparse only); `main` is the console script's entry point."""

from worker.cli.program import main

__all__ = ["main"]
