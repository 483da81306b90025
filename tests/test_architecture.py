"""The import rules that import-linter's contracts (pyproject.toml) do not say on their own.

- No cycle of more than three modules, counting imports written inside functions.
- At most 15 imports inside functions in ``service/``, each with a comment saying why.
- Nothing in ``service/`` but ``service/settings.py`` reads the environment.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "release_notes", "beta", "version_monitor", "versioning", "incidents", "utc")
MAX_CYCLE = 3
MAX_INNER_IMPORTS = 15


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_of_more_than_three_modules() -> None:
    graph = grimp.build_graph(*PACKAGES)
    # grimp reads every import statement, those inside functions too.
    assert graph.direct_import_exists(importer="service.cli", imported="service.app")
    too_long = [sorted(c) for c in _cycles(graph) if len(c) > MAX_CYCLE]
    assert too_long == []


def _service_files() -> Iterator[Path]:
    for path in sorted((ROOT / "service").rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def _inner_imports(path: Path) -> Iterator[tuple[int, bool]]:
    """(line, has a comment saying why) of each import inside a function of ``path``."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom):
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                same = lines[node.lineno - 1]
                yield node.lineno, above.startswith("#") or "#" in same


def test_few_imports_inside_functions_each_saying_why() -> None:
    found = [
        (f"{path.relative_to(ROOT)}:{line}", why)
        for path in _service_files()
        for line, why in _inner_imports(path)
    ]
    assert len(found) <= MAX_INNER_IMPORTS, found
    assert [where for where, why in found if not why] == []


ENVIRONMENT_READ = re.compile(r"os\.environ\.get|os\.getenv|os\.environ\[")


def test_only_the_settings_read_the_environment() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _service_files()
        if path.name != "settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ENVIRONMENT_READ.search(line) and "child process environment" not in line
    ]
    assert readers == []


def test_every_setting_is_in_the_readme() -> None:
    source = (ROOT / "service" / "settings.py").read_text()
    names = set(re.findall(r'"((?:RELGOV|NOTION|SLACK|PROMETHEUS|WEB|FORWARDED)_[A-Z_]+)"', source))
    readme = (ROOT / "README.md").read_text()
    assert names and sorted(n for n in names if f"`{n}`" not in readme) == []
