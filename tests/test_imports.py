"""The import graph of the project's code, read with `ast` (nothing is imported):

(a) `core` imports no other project package: only itself, the standard library, Django and third-party
    packages (DESIGN.md: "core/ shared mechanics, no domain, imports no other app");
(b) no import cycle passes through a `core` module.

Every `import` / `from ... import` counts, absolute or relative, at module level or inside a function
or class. Imports under `if TYPE_CHECKING:` count for (a) but not for (b) (they never run). Importing
`pkg.mod` is an edge to `pkg.mod` only: the implicit execution of `pkg/__init__.py` is not an edge.
Scanned: the apps and config/ (not tests/, bench/ or migrations).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = (
    "core",
    "accounts",
    "audit",
    "webhooks",
    "messaging",
    "integration",
    "leads",
    "patients",
    "sync",
    "sessions_analytics",
    "config",
)
CORE = "core"


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (the deepest scanned module it names, else the dotted name itself)
    path: str  # file, relative to the root
    line: int
    statement: str
    type_checking: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.statement}"


@dataclass
class Graph:
    modules: dict[str, str]  # module -> file (relative)
    edges: list[Edge]
    project_packages: set[str]  # top-level names that are the project's own code

    def top(self, module: str) -> str:
        return module.split(".", 1)[0]


def _module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers of statements inside `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for statement in node.body:
                    for inner in ast.walk(statement):
                        if hasattr(inner, "lineno"):
                            lines.add(inner.lineno)
    return lines


def build_graph(root: Path, packages: tuple[str, ...] | list[str]) -> Graph:
    """Parse every .py file under root/<package> (migrations excepted) into an import graph."""
    modules: dict[str, str] = {}
    trees: dict[str, tuple[ast.AST, bool]] = {}
    for package in packages:
        base = root / package
        if not base.exists():
            continue
        for file in sorted(base.rglob("*.py")):
            relative = file.relative_to(root)
            if "migrations" in relative.parts or "__pycache__" in relative.parts:
                continue
            name = _module_name(relative)
            modules[name] = relative.as_posix()
            trees[name] = (ast.parse(file.read_text(encoding="utf-8"), filename=str(file)), file.name == "__init__.py")

    project = set(packages) | {
        entry.name for entry in root.iterdir() if entry.is_dir() and (entry / "__init__.py").exists()
    }
    project |= {entry.stem for entry in root.glob("*.py")}

    def resolve(name: str) -> str:
        """The deepest scanned module that `name` names (a.b.C -> a.b), else `name`."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                return candidate
        return name

    edges: list[Edge] = []
    for name, (tree, is_package) in trees.items():
        path = modules[name]
        guarded = _type_checking_lines(tree)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [resolve(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package_parts = name.split(".") if is_package else name.split(".")[:-1]
                    if node.level - 1 > len(package_parts):
                        raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                    base_parts = package_parts[: len(package_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    submodule = f"{base}.{alias.name}" if base else alias.name
                    targets.append(submodule if submodule in modules else resolve(base))
            else:
                continue
            statement = ast.unparse(node)
            for target in dict.fromkeys(targets):  # once per target, in order
                edges.append(
                    Edge(
                        source=name,
                        target=target,
                        path=path,
                        line=node.lineno,
                        statement=statement,
                        type_checking=node.lineno in guarded,
                    )
                )
    return Graph(modules=modules, edges=edges, project_packages=project)


def core_violations(graph: Graph, core: str = CORE) -> list[Edge]:
    """(a) Imports of another project package from a core module."""
    return [
        edge
        for edge in graph.edges
        if graph.top(edge.source) == core
        and graph.top(edge.target) in graph.project_packages
        and graph.top(edge.target) != core
    ]


@dataclass(frozen=True)
class Cycle:
    component: frozenset[str]  # every module of the strongly connected component
    edges: list[Edge]  # one shortest cycle through its first `package` module

    def __str__(self) -> str:
        return " ->\n".join(str(edge) for edge in self.edges) + f"\n(modules in the cycle: {sorted(self.component)})"


def cycles_through(graph: Graph, package: str = CORE) -> list[Cycle]:
    """(b) One import cycle per strongly connected component of the run-time import graph that contains
    a module of `package`."""
    adjacency: dict[str, dict[str, Edge]] = {module: {} for module in graph.modules}
    for edge in graph.edges:
        if edge.type_checking or edge.target not in graph.modules:
            continue
        adjacency[edge.source].setdefault(edge.target, edge)

    # Tarjan's strongly connected components, iteratively (no recursion limit on a deep graph).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(adjacency):
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)

    cycles: list[Cycle] = []
    for component in components:
        members = set(component)
        starts = sorted(m for m in component if graph.top(m) == package)
        if not starts:
            continue
        start = starts[0]
        if len(component) == 1 and start not in adjacency[start]:
            continue  # a single module that does not import itself: no cycle
        # Shortest path start -> ... -> start inside the component (breadth-first).
        previous: dict[str, Edge] = {}
        frontier = [start]
        found: Edge | None = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for child, edge in sorted(adjacency[node].items()):
                    if child == start:
                        found = edge
                        break
                    if child in members and child not in previous:
                        previous[child] = edge
                        following.append(child)
                if found is not None:
                    break
            frontier = following
        assert found is not None, component
        path = [found]
        while path[0].source != start:
            path.insert(0, previous[path[0].source])
        cycles.append(Cycle(component=frozenset(component), edges=path))
    return cycles


# --- the graph function on a synthetic tree -----------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_graph_finds_a_domain_import_and_a_cycle_through_core(tmp_path):
    _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/clean.py": "import os\nfrom django.conf import settings\nfrom core.b import helper\n",
            "core/a.py": "def f():\n    from accounts.models import User\n    return User\n",  # (a), in a function
            "core/b.py": "from . import c\n\ndef helper():\n    pass\n",  # relative, to core.c
            "core/c.py": "from core import b\n",  # core.c -> core.b: a cycle inside core
            "core/sub/__init__.py": "from .. import d\n",  # relative from a package
            "core/d.py": "import accounts.services\n",  # (a) and a cycle core.d -> accounts.services -> core.d
            "core/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from leads.models import Lead\n",
            "accounts/__init__.py": "",
            "accounts/models.py": "from core.clean import settings\n",
            "accounts/services.py": "from core.d import accounts\n",
            "leads/__init__.py": "",
            "leads/models.py": "from core.typed import TYPE_CHECKING\n",
            "accounts/migrations/0001_initial.py": "import leads.models\n",  # not scanned
        },
    )

    graph = build_graph(tmp_path, ["core", "accounts", "leads"])

    assert "accounts.migrations.0001_initial" not in graph.modules
    violations = {(edge.path, edge.line, edge.target) for edge in core_violations(graph)}
    assert violations == {
        ("core/a.py", 2, "accounts.models"),
        ("core/d.py", 1, "accounts.services"),
        ("core/typed.py", 3, "leads.models"),  # type-only still couples core to a domain app
    }
    cycles = [[(edge.source, edge.target) for edge in cycle.edges] for cycle in cycles_through(graph)]
    assert sorted(cycles) == [
        [("core.b", "core.c"), ("core.c", "core.b")],
        [("core.d", "accounts.services"), ("accounts.services", "core.d")],
    ]  # core.typed <-> leads.models is not a cycle at run time
    assert any(str(edge) == "core/sub/__init__.py:1: from .. import d" for edge in graph.edges)


def test_a_cycle_that_does_not_touch_core_is_not_reported(tmp_path):
    _write(
        tmp_path, {"core/__init__.py": "", "a/__init__.py": "", "a/x.py": "from a import y\n", "a/y.py": "import a.x\n"}
    )
    graph = build_graph(tmp_path, ["core", "a"])
    assert cycles_through(graph) == []
    assert cycles_through(graph, package="a")  # the function does see it


# --- the project ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Graph:
    return build_graph(ROOT, SCANNED)


def test_core_imports_no_other_project_package(project):
    found = core_violations(project)
    assert not found, "core imports another project package:\n" + "\n".join(str(edge) for edge in found)


def test_no_import_cycle_passes_through_core(project):
    cycles = list(cycles_through(project))
    assert not cycles, "import cycles through core:\n" + "\n\n".join(str(cycle) for cycle in cycles)


def test_the_scan_sees_the_project(project):
    assert {project.top(module) for module in project.modules} == set(SCANNED)
    assert "core.registry" in project.modules and "config.settings" in project.modules
