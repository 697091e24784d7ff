"""The install stage: what `pip install` gives a user, proven outside the checkout.

The package is built as a wheel (not editable) from a copy of the checkout and installed with
no extras into a fresh venv in a temp folder; every command then runs from that venv with the
current folder elsewhere and no PYTHONPATH. pip's own cache keeps the dependency wheels
between runs.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.celery_fixtures import POSTREFRESH, ROOT
from tests.conftest import SEEDS

# The first test builds the wheel and installs it: cold, that downloads every dependency.
pytestmark = pytest.mark.timeout(600)

CODE = ("worker", "tasks")
# What zoneinfo reads as data, never imported by name.
IMPORTED_BY_NO_NAME = {"tzdata"}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies() -> set[str]:
    """The distributions pyproject.toml installs with no extras, by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalised(re.match(r"[A-Za-z0-9._-]+", d)[0]) for d in project["dependencies"]}


def modules_of_the_code() -> list[str]:
    """Every module of worker/ and tasks/ by dotted name (not `__main__`, which runs the CLI)."""
    files = sorted(p for package in CODE for p in (ROOT / package).rglob("*.py"))
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in files]
    return [n for n in names if not n.endswith("__main__")]


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


def bare_env() -> dict[str, str]:
    """The caller's environment minus anything that points at the checkout or sets postrefresh."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY", "FLOWER", "REDIS"))}


@dataclass(frozen=True)
class Install:
    """A venv outside the checkout holding the wheel built from it."""

    venv: Path
    wheel: Path

    def exe(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **settings: str) -> dict[str, str]:
        """A bare environment with the venv first on PATH, and `settings`."""
        env = bare_env()
        return {**env, "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **settings}

    def run(self, cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)

    def pip_install(self, requirement: str) -> None:
        # The test's own pip installs into the venv: the venv itself has no pip or setuptools,
        # so nothing that pip would bring can stand in for an undeclared dependency.
        result = subprocess.run([sys.executable, "-m", "pip", "--python", self.exe("python"), "install",
                                 "--quiet", requirement], capture_output=True, text=True, timeout=540)
        assert result.returncode == 0, result.stderr

    def has_flower(self) -> bool:
        probe = "import importlib.util as u; print(u.find_spec('flower') is not None)"
        return self.run(self.venv, self.env(), self.exe("python"), "-c", probe).stdout.strip() == "True"


def build_wheel(out: Path) -> Path:
    """`pip wheel` of a copy of the checkout's files (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    source = out / "source"
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is not copied
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                             str(out / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return next((out / "dist").glob("postrefresh-*.whl"))


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel, installed with no extras into a fresh venv in a temp folder."""
    folder = tmp_path_factory.mktemp("install")
    wheel = build_wheel(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    installed = Install(folder / "venv", wheel)
    installed.pip_install(str(wheel))
    return installed


def test_the_wheel_carries_every_module_and_the_sample_site(install: Install) -> None:
    names = set(zipfile.ZipFile(install.wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for package in CODE for p in (ROOT / package).rglob("*.py")}
    assert modules <= names
    seeds = {p.relative_to(SEEDS).as_posix() for p in SEEDS.rglob("*") if p.is_file()}
    assert {f"worker/sample_site/{name}" for name in seeds} <= names
    assert not any(name.startswith(("seeds/", "tests/", "bench/")) for name in names)


def test_every_module_imports_from_the_venv_and_not_from_the_checkout(install: Install,
                                                                       tmp_path: Path) -> None:
    script = ("import importlib, sys\n"
              f"for name in {modules_of_the_code()!r}:\n"
              "    module = importlib.import_module(name)\n"
              f"    assert module.__file__.startswith({str(install.venv)!r}), module.__file__\n"
              f"assert not any(p.startswith({str(ROOT)!r}) for p in sys.path), sys.path\n")
    result = install.run(tmp_path, install.env(), install.exe("python"), "-c", script)
    assert result.returncode == 0, result.stderr
    assert not install.has_flower()


def test_demo_refreshes_the_packaged_sample_site_from_another_folder(install: Install,
                                                                     tmp_path: Path) -> None:
    result = install.run(tmp_path, install.env(), install.exe("postrefresh"), "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"a copy of {install.venv}" in result.stdout and "/worker/sample_site" in result.stdout
    assert "+++ b/_posts/2022-04-13-kremlin-admits-significant-losses.md" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo works on a temporary copy


def test_demo_of_the_checkouts_editable_install_copies_its_seeds(tmp_path: Path) -> None:
    result = subprocess.run([POSTREFRESH, "demo"], cwd=tmp_path, env=bare_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"a copy of {SEEDS} in" in result.stdout
