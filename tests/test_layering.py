"""The package's dependency arrows point one way (docs/architecture.md), checked with `ast` so they cannot rot.

Every `import`/`from … import` in `mmsearch_gym/` (at module level or inside functions: a lazy import is
still an arrow) is mapped to the room it comes from and the room it goes to; an arrow that the layout
does not allow fails the test with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmsearch_gym"

GROUND = {"imaging", "net", "runs", "checks", "archives"}
ALLOWED: dict[str, set[str]] = {
    # room: the rooms it may import (besides itself and the ground)
    "ground": set(),
    "search": set(),
    "data": set(),
    "hf": set(),
    "cache": {"search"},
    "envs": {"search", "cache", "data"},
    "agents": {"envs", "hf", "data"},
    "trainers": {"envs", "hf", "runs", "search", "cache", "data"},
    "benchmarks": {"envs", "search", "cache", "data", "agents", "hf", "trainers"},
    "integrations": {"envs", "agents", "search", "cache", "data"},
    "commands": {"*"},
    "registration": {"envs", "integrations"},
    "cli": {"commands"},
    "package": {"registration"},
}
EVERYWHERE = ("ground", "package", "registration")
"""The ground, plus the package root and `registration` (the env id and `__version__`), which any room may read."""
HEAVY = ("torch", "transformers", "trl", "vllm")
HEAVY_ALLOWED = ("hf/", "agents/hf.py", "agents/vllm.py", "trainers/")


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mmsearch_gym":
        return None
    if len(parts) == 1:
        return "package"
    top = parts[1]
    return "ground" if top in GROUND else top


def _source_room(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if relative.parts == ("__init__.py",):
        return "package"
    top = relative.parts[0].removesuffix(".py")
    return "ground" if top in GROUND else top


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    package_parts = ["mmsearch_gym", *path.relative_to(PACKAGE).parent.parts]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_arrow_points_the_way_the_layout_draws_it() -> None:
    wrong = []
    for path in _modules():
        source = _source_room(path)
        allowed = ALLOWED[source]
        for line, module in _imports(path):
            target = _room(module)
            if target is None or target in (source, *EVERYWHERE) or "*" in allowed or target in allowed:
                continue
            wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} -> {target} ({module})")
    assert not wrong, "imports against the layout:\n" + "\n".join(wrong)


@pytest.mark.parametrize("source, forbidden", [
    ("trainers", ("mmsearch_gym.benchmarks", "mmsearch_gym.agents")),
    ("agents", ("mmsearch_gym.search", "mmsearch_gym.data.synth")),
    ("search", ("mmsearch_gym.cache",)),
])
def test_the_arrows_the_refactor_removed_stay_removed(source: str, forbidden: tuple[str, ...]) -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
                 for path in (PACKAGE / source).rglob("*.py") for line, module in _imports(path)
                 if module.startswith(forbidden)]
    assert not offenders, offenders


def test_nothing_imports_the_cli() -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in _modules()
                 for line, module in _imports(path) if module == "mmsearch_gym.cli"]
    assert not offenders, offenders


def test_heavy_frameworks_are_imported_only_where_the_layout_allows() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(HEAVY_ALLOWED):
            continue
        offenders += [f"{relative}:{line}: {module}" for line, module in _imports(path)
                      if module.split(".")[0] in HEAVY]
    assert not offenders, offenders


def test_no_module_is_over_400_lines() -> None:
    big = {path.relative_to(PACKAGE).as_posix(): n for path in _modules()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert not big, big
