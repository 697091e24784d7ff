"""What `pip install` gives a user: the runtime dependencies pyproject.toml declares."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from tests.celery_fixtures import ROOT

pytestmark = pytest.mark.timeout(60)

CODE = ("worker", "tasks")
# What zoneinfo reads as data, never imported by name.
IMPORTED_BY_NO_NAME = {"tzdata"}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies() -> set[str]:
    """The distributions pyproject.toml installs with no extras, by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalised(re.match(r"[A-Za-z0-9._-]+", d)[0]) for d in project["dependencies"]}


def distributions_the_code_imports() -> set[str]:
    """The installed distributions whose top-level modules worker/ and tasks/ import."""
    providers = packages_distributions()
    imported: set[str] = set()
    for package in CODE:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - set(CODE)
    return {normalised(dist) for module in third_party for dist in providers.get(module, [module])}


def test_every_package_the_code_imports_is_a_runtime_dependency() -> None:
    assert distributions_the_code_imports() - runtime_dependencies() == set()


def test_every_runtime_dependency_is_imported_by_the_code() -> None:
    assert runtime_dependencies() - distributions_the_code_imports() - IMPORTED_BY_NO_NAME == set()
