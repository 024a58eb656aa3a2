"""The package layout mirrors the architecture, and nothing imports in a circle.

One role per subpackage (docs/architecture.md draws them). Each part may import only the parts
listed for it in ``ALLOWED``, which stack up in layers: ``common`` and ``errors`` at the bottom;
``data`` and ``vectors`` on them; ``rules``, ``artifacts``, then ``training``, ``experiments``
and ``recommend``; ``config`` on those; the process roles (``builder``, ``server``,
``evaluation``, ``sandbox``) on top, and ``cli`` ties them together. Beyond the direct imports,
what a process loads is checked too: nothing a server module imports, however indirectly,
reaches ``training`` or ``builder``, and nothing the builder imports reaches ``recommend`` or
``server``. Imports under ``TYPE_CHECKING`` count like any other: a cycle hidden from the
interpreter is still a cycle for a reader. Checked on the source with :mod:`ast`, so it
cannot drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "recommendation_service"

BASE = {"errors", "common"}
#: Which top-level parts of the package each part may import (besides itself).
ALLOWED = {
    "errors": set(),
    "common": {"errors"},
    "data": BASE,
    "vectors": BASE,
    "ranking": BASE | {"vectors"},
    "rules": BASE | {"data"},
    "artifacts": BASE | {"data", "vectors"},
    "training": BASE | {"data", "vectors", "artifacts", "ranking"},
    "experiments": BASE | {"data", "rules", "ranking"},
    "recommend": BASE | {"data", "vectors", "rules", "artifacts", "ranking"},
    "config": BASE | {"data", "vectors", "rules", "artifacts", "training", "experiments",
                      "recommend", "ranking"},
    "erasure": BASE | {"config", "data"},
    "builder": BASE | {"config", "data", "vectors", "rules", "artifacts", "training",
                       "experiments", "erasure", "ranking"},
    "server": BASE | {"config", "data", "vectors", "rules", "artifacts", "experiments",
                      "recommend", "erasure", "ranking"},
    "evaluation": BASE | {"data", "vectors", "training", "ranking"},
    "sandbox": BASE | {"config", "data"},
    "cli": {"__init__", "errors", "common", "config", "data", "vectors", "rules", "artifacts",
            "training", "experiments", "recommend", "builder", "server", "evaluation",
            "sandbox", "erasure", "ranking"},
    "__main__": {"cli"},
    "__init__": set(),
}
#: Parts a process role must never load, directly or through anything it imports.
NEVER_LOADED = {
    "server": {"training", "builder", "evaluation", "sandbox", "cli"},
    "builder": {"recommend", "server", "evaluation", "sandbox", "cli"},
}
#: The longest a module may grow (lines): one job per module.
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module of the package that ``path`` imports, at run time or for type checking."""
    source = path.read_text(encoding="utf-8")
    return imports_of(source, module_name(path), package=path.name == "__init__.py")


def imports_of(source: str, this: str, package: bool) -> list[str]:
    """``imports`` of ``source`` as module ``this`` (``package``: an ``__init__``)."""
    tree = ast.parse(source)
    package = this if package else this.rsplit(".", 1)[0]
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
        found += [t for t in targets if t.split(".")[0] == "recommendation_service"]
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
GRAPH = {module_name(p): set(imports(p)) for p in SOURCES}


def _with_packages(module: str) -> set[str]:
    """``module`` and the packages Python imports before it (their ``__init__``)."""
    parts = module.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts) + 1)}


def loaded_by(module: str) -> set[str]:
    """Every module of the package that importing ``module`` loads."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for m in _with_packages(todo.pop()):
            if m in GRAPH and m not in seen:
                seen.add(m)
                todo += GRAPH[m]
    return seen


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_what_its_role_may(path):
    mine = part(module_name(path))
    for target in imports(path):
        theirs = part(target)
        assert theirs == mine or theirs in ALLOWED[mine], f"{module_name(path)} imports {target}"


def test_every_package_says_what_it_is_for():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init.parent.name}/ has no docstring saying its role"


@pytest.mark.parametrize("role", sorted(NEVER_LOADED))
def test_a_process_role_never_loads_the_other_roles_code(role):
    for module in (m for m in GRAPH if part(m) == role):
        reached = {part(m) for m in loaded_by(module)} & NEVER_LOADED[role]
        assert not reached, f"{module} loads {sorted(reached)}"


def test_no_import_cycles_type_only_imports_included():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH:
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_the_layout_check_sees_type_only_imports():
    # The cycle check must not be fooled by `if TYPE_CHECKING:` (it once was).
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .store import X\n"
    found = imports_of(source, "recommendation_service.artifacts.control_files", package=False)
    assert found == ["recommendation_service.artifacts.store"]


def test_modules_stay_small():
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in SOURCES}
    assert max(sizes.values()) <= MAX_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


#: The classes of a served version: only their own methods set their attributes (#25's rule).
VERSION_MODULES = ("recommend/version.py", "recommend/served_model.py")


def _instance_attributes(paths) -> set[str]:
    """Every ``self.<name> = ...`` target in ``paths``."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            )  # fmt: skip
            for t in targets:
                if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self":
                    names.add(t.attr)
    return names


def outside_assignments(source: str, attributes: set[str]) -> list[str]:
    """``x.attr = ...`` (or ``+=``) in ``source`` for an ``attr`` of a served version, where
    ``x`` is not ``self``: a version's state set from outside it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        )  # fmt: skip
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and t.attr in attributes
                and not (isinstance(t.value, ast.Name) and t.value.id == "self")
            ):
                found.append(f"line {t.lineno}: {ast.unparse(t)}")
    return found


def test_nothing_sets_a_served_versions_attributes_from_outside_it():
    """A served version gets its state through its constructor and its own methods only,
    so what a request sees is what the version's code decided (the watcher once set
    ``model.erasures`` and ``model.applied_update`` itself)."""
    owners = [PACKAGE / m for m in VERSION_MODULES]
    attributes = _instance_attributes(owners) - {"index", "ef"}
    assert {"erasures", "applied_update", "fresh", "scoring_matrix"} <= attributes
    # Only the parts that may import recommend/ can hold a version (the builder never does).
    holders = {"recommend"} | {p for p, allowed in ALLOWED.items() if "recommend" in allowed}
    offenders = {
        str(p.relative_to(PACKAGE)): hits
        for p in SOURCES
        if part(module_name(p)) in holders
        and p not in owners
        and (hits := outside_assignments(p.read_text(), attributes))
    }
    assert offenders == {}


def test_the_outside_assignment_check_sees_one():
    source = "def load(model, ledger):\n    model.erasures = ledger\n    self.erasures = 1\n"
    assert outside_assignments(source, {"erasures"}) == ["line 2: model.erasures"]
