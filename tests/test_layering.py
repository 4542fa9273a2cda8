"""The package's layering, read from its imports with ast (``run.sources.runtime_imports``, which
skips ``if TYPE_CHECKING:`` blocks): no import cycle between sub-packages,
report/ independent of run/, and the CLI's subcommand modules never importing back from cli.py."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from unlearnbench.run.sources import runtime_imports

PACKAGE = Path(__file__).resolve().parents[1] / "unlearnbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer a module belongs to: its sub-package, ``cli`` for the ``cli*`` modules, or the
    top-level module itself (``api``, ``errors``, ...)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "unlearnbench"
    return "cli" if parts[1].startswith("cli") else parts[1]


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> the module imports behind it; the root package (run by
    every import of a submodule) is left out."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported in runtime_imports(tree, module, path.name == "__init__.py"):
            if imported != "unlearnbench" and not imported.startswith("unlearnbench."):
                continue
            a, b = unit(module), unit(imported)
            if a != b and "unlearnbench" not in (a, b):
                edges.setdefault((a, b), []).append(f"{module} -> {imported}")
    return edges


def find_cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle_between_sub_packages() -> None:
    edges = import_edges()
    assert ("run", "training") in edges  # the graph is read: it has the edges it should
    cycle = find_cycle(edges)
    if cycle is not None:
        why = [edges[(a, b)][0] for a, b in itertools.pairwise(cycle)]
        raise AssertionError(f"import cycle {' -> '.join(cycle)}: {'; '.join(why)}")


def test_report_does_not_import_run() -> None:
    found = [why for (a, b), whys in import_edges().items() if a == "report" and b == "run" for why in whys]
    assert found == []


def test_the_cli_subcommand_modules_do_not_import_cli_py() -> None:
    for path in sorted(PACKAGE.glob("cli_*.py")):
        tree = ast.parse(path.read_text())
        imported = set(runtime_imports(tree, module_name(path), False))
        assert "unlearnbench.cli" not in imported, path.name


def test_the_planner_and_the_pool_planner_do_not_import_each_other() -> None:
    def imports(name: str) -> set[str]:
        tree = ast.parse((PACKAGE / "run" / f"{name}.py").read_text())
        return {n for n in ast.walk(tree) for n in ([n.module] if isinstance(n, ast.ImportFrom) else [])}

    assert "unlearnbench.run.pool_plan" in imports("plan")
    assert "unlearnbench.run.plan" not in imports("pool_plan")  # not even for type checking
