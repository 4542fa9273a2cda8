"""Source identities of components: the modules that define a class and its bases, and every module
of the project (the top-level packages of the ``unlearnbench`` distribution: the core and the
built-in plugins) or of the class's own top-level package that they import, transitively.

The imports are read statically with :mod:`ast` (function-level imports included, ``if
TYPE_CHECKING:`` blocks skipped) and resolved to files under those package roots without importing
anything; the standard library and third-party packages are left out. A package's ``__init__``
counts only when it is imported itself (``import pkg``, ``from pkg import name``), so a plugin
package whose ``__init__`` registers all its modules does not tie each module to its siblings.
Identities are computed once per process (the code a process runs is the code it imported) and
cached; :func:`clear_source_cache` forgets them (tests that edit files).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path

CORE_PACKAGE = "unlearnbench"


@functools.cache
def project_packages() -> frozenset[str]:
    """The top-level packages of the ``unlearnbench`` distribution (at least the core)."""
    found = {CORE_PACKAGE}
    for top, dists in importlib.metadata.packages_distributions().items():
        if CORE_PACKAGE in dists:
            found.add(top)
    return frozenset(found)


@functools.cache
def _package_root(top: str) -> Path | None:
    """The folder of top-level package ``top`` or the file of top-level module ``top`` (None when
    it cannot be found), located without importing it."""
    module = sys.modules.get(top)
    try:
        spec = getattr(module, "__spec__", None) or importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return Path(spec.origin).resolve() if spec.origin and spec.origin.endswith(".py") else None


def _module_file(name: str, roots: frozenset[str]) -> Path | None:
    """The ``.py`` file of module ``name`` when its top-level package is one of ``roots``."""
    top, *rest = name.split(".")
    if top not in roots or (root := _package_root(top)) is None:
        return None
    if root.is_file():
        return root if not rest else None
    base = root.joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names of the modules (and candidate submodules) that ``tree`` imports at run time."""
    found: list[str] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        todo.extend(ast.iter_child_nodes(node))
    return found


@functools.cache
def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def source_modules(module: str) -> tuple[tuple[str, Path], ...]:
    """``module`` and every project or own-package module it imports, transitively, as sorted
    ``(name, file)`` pairs (empty when ``module`` has no source file)."""
    roots = project_packages() | {module.split(".")[0]}
    first = _module_file(module, roots)
    if first is None:
        loaded = sys.modules.get(module)
        path = getattr(loaded, "__file__", None)
        first = Path(path).resolve() if path and path.endswith(".py") else None
    if first is None:
        return ()
    seen: dict[str, Path] = {module: first}
    todo = [module]
    while todo:
        name = todo.pop()
        path = seen[name]
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for imported in runtime_imports(tree, name, path.name == "__init__.py"):
            if imported in seen or (found := _module_file(imported, roots)) is None:
                continue
            seen[imported] = found
            todo.append(imported)
    return tuple(sorted(seen.items()))


def class_modules(cls: type) -> tuple[tuple[str, Path], ...]:
    """:func:`source_modules` of the modules defining ``cls`` and its project or own-package bases."""
    own = cls.__module__.split(".")[0]
    found: dict[str, Path] = {}
    for base in getattr(cls, "__mro__", (cls,)):  # a function (a function unlearner) has no bases
        top = base.__module__.split(".")[0]
        if base is cls or top == own or top in project_packages():
            found.update(source_modules(base.__module__))
    return tuple(sorted(found.items()))


def source_sha256(cls: type) -> str | None:
    """sha256 over the names and contents of :func:`class_modules` of ``cls`` (None when it has
    no source file): editing the component's module, a base class's, or any project module they
    import (a helper, the engine) changes its identity even without a version bump."""
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None
    modules = class_modules(cls) if path is not None else ()
    if not modules:
        return None
    digest = hashlib.sha256()
    try:
        for name, file in modules:
            digest.update(f"{name}\t{_file_sha256(file)}\n".encode())
    except OSError:
        return None
    return digest.hexdigest()


def clear_source_cache() -> None:
    """Forget every cached identity (for tests that edit source files within one process)."""
    for cached in (_package_root, _file_sha256, source_modules, project_packages):
        cached.cache_clear()
