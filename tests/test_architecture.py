"""The shape of the code: layers point one way, no import cycles, small modules, simple functions.

Read from the source with ``ast`` (every import counts, a function's lazy one too, except those only a
type checker sees), so a violation fails here before a reviewer has to notice it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "clustering", "plugins", "api")
MAX_MODULE_LINES = 400
# Functions allowed above radon grade C, each with the reason (none today).
COMPLEX_ON_PURPOSE: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py")
                  if "migrations" not in path.parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports at run time (``from a import b`` yields ``a.b`` and ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    skipped = {id(child) for node in ast.walk(tree) if _type_checking_only(node) for child in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from this module's package
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def project_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in source_files()}
    return {name: {imported for imported in imports_of(path) if imported in modules and imported != name}
            for name, path in modules.items()}


def test_core_never_imports_api() -> None:
    upward = {module: sorted(target for target in targets if target.split(".")[0] == "api")
              for module, targets in project_graph().items() if module.split(".")[0] != "api"}
    assert {module: targets for module, targets in upward.items() if targets} == {}


def test_clustering_imports_no_database_web_or_core() -> None:
    forbidden = ("core", "api", "plugins", "sqlalchemy", "fastapi")
    found = {module_name(path): sorted({name for name in imports_of(path) if name.split(".")[0] in forbidden})
             for path in source_files(("clustering",))}
    assert {module: names for module, names in found.items() if names} == {}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycles() -> None:
    graph = project_graph()
    # Importing a package runs its __init__, so a module importing its own package's __init__ is no cycle.
    graph = {module: {target for target in targets if not module.startswith(target + ".")}
             for module, targets in graph.items()}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", source_files(PACKAGES + ("tests", "bench")), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by what it does"


def test_functions_are_grade_c_or_better() -> None:
    too_complex = []
    for path in source_files():
        for block in cc_visit(path.read_text(encoding="utf-8")):
            name = f"{module_name(path)}.{getattr(block, 'fullname', block.name)}"
            if cc_rank(block.complexity) > "C" and name not in COMPLEX_ON_PURPOSE:
                too_complex.append(f"{name}: {cc_rank(block.complexity)} ({block.complexity})")
    assert too_complex == []


def test_package_inits_stay_nearly_empty() -> None:
    """No re-export lists: a reader finds a name where it is defined."""
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            tree = ast.parse(init.read_text(encoding="utf-8"))
            statements = [node for node in tree.body if not (isinstance(node, ast.Expr)
                                                             and isinstance(node.value, ast.Constant))]
            allowed = init == ROOT / "core" / "__init__.py" or "demo" in init.parts  # hookimpl, __version__; data
            assert allowed or statements == [], f"{init.relative_to(ROOT)} should hold a docstring only"
