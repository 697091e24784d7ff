"""The README's "Code map" and worker/__init__.py's step table match the tree."""

import re
from pathlib import Path

import worker

ROOT = Path(__file__).resolve().parents[1]


def code_map_blocks() -> dict[str, str]:
    """The Code map's text per package: 'worker', 'tasks' and each 'worker/<pkg>'."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code map", 1)[1]
    block = section.split("```", 2)[1]
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in block.splitlines():
        top = re.match(r"^(worker|tasks)/\s", line)
        sub = re.match(r"^  (\w+)/\s", line)
        if top:
            current = top.group(1)
        elif sub:
            current = f"worker/{sub.group(1)}"
        if current:
            blocks.setdefault(current, []).append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def modules_of(folder: Path) -> list[Path]:
    """Every module file of a package folder, its sub-packages' included."""
    return sorted(path for path in folder.rglob("*.py") if path.name not in {"__init__.py", "__main__.py"})


def test_the_code_map_names_every_module_in_its_package() -> None:
    blocks = code_map_blocks()
    packages = sorted(p.parent.name for p in (ROOT / "worker").glob("*/__init__.py"))
    missing = []
    for package in packages:
        text = blocks.get(f"worker/{package}")
        if text is None:
            missing.append(f"worker/{package}/ (the package)")
            continue
        for module in modules_of(ROOT / "worker" / package):
            if not re.search(rf"\b{module.stem}\b", text):
                missing.append(str(module.relative_to(ROOT)))
    for module in (ROOT / "worker").glob("*.py"):
        if module.name not in blocks["worker"]:
            missing.append(str(module.relative_to(ROOT)))
    for module in modules_of(ROOT / "tasks"):
        if not re.search(rf"\b{module.stem}\b", blocks["tasks"]):
            missing.append(str(module.relative_to(ROOT)))
    assert missing == [], f"the README's Code map does not name: {missing}"


def test_the_code_map_names_no_package_that_is_gone() -> None:
    gone = [name for name in code_map_blocks() if not (ROOT / name / "__init__.py").is_file()]
    assert gone == []


def test_the_step_table_in_worker_init_points_at_real_modules() -> None:
    named = re.findall(r"\b([\w/]+\.py)\b", worker.__doc__ or "")
    assert named, "worker/__init__.py names no module"
    here = Path(worker.__file__).parent

    def exists(name: str) -> bool:
        if name.startswith("tasks/"):
            return (ROOT / name).is_file()
        if "/" in name:
            return (here / name).is_file()
        return any(here.glob(f"*/{name}"))  # "(http.py … beside it)": in the same package

    assert [name for name in named if not exists(name)] == []
