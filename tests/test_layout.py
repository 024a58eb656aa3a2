"""The package layout mirrors the architecture, and nothing imports in a circle.

``builder/`` (what the builder process runs) and ``server/`` (what a server process runs) share
only ``model/`` (the model and its format), ``config`` and ``errors``; neither imports the
other. ``model/`` imports nothing but itself, ``config`` and ``errors``. ``cli/`` ties it all
together. Checked on the source with :mod:`ast`, so it cannot drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "recommendation_service"
SHARED = {"config", "errors", "model"}
#: Which top-level parts of the package each part may import (besides itself).
ALLOWED = {
    "model": {"config", "errors"},
    "builder": SHARED,
    "server": SHARED,
    "evaluation": SHARED,
    "sandbox": SHARED,
    "config": {"errors", "model"},
    "errors": set(),
    "cli": SHARED | {"builder", "server", "evaluation", "sandbox", "__init__"},
    "__main__": {"cli"},
    "__init__": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, runtime?) for every import of the package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rsplit(".", 1)[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            targets = [n for n in names if _is_module(n)] or [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t == "recommendation_service" or t.startswith("recommendation_service."):
                found.append((t, id(node) not in type_only))
    return found


def _is_module(name: str) -> bool:
    rel = name.split(".")[1:]
    return bool(rel) and (
        PACKAGE.joinpath(*rel).with_suffix(".py").exists() or PACKAGE.joinpath(*rel).is_dir()
    )


def part(module: str) -> str:
    rel = module.split(".")[1:]
    return rel[0] if rel else "__init__"


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_what_its_role_may(path):
    mine = part(module_name(path))
    for target, _ in imports(path):
        theirs = part(target)
        assert theirs == mine or theirs in ALLOWED[mine], f"{module_name(path)} imports {target}"


def test_no_import_cycles_at_run_time():
    graph = {module_name(p): {t for t, runtime in imports(p) if runtime} for p in SOURCES}
    # A package's __init__ is imported with each of its modules; the edges above already say so.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_modules_stay_small():
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in SOURCES}
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
