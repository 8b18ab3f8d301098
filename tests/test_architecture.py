"""The `runbook` package has no import cycles.

The import graph is computed from the source: every module under src/runbook/ is parsed with `ast`,
and every `import` / `from ... import` in it counts — at the top, inside functions (the lazy imports
that keep start-up fast) and under `if TYPE_CHECKING:` alike, because each of them ties the two
modules together. Relative imports are resolved against the module's package; `from .pkg import name`
is an edge to `pkg.name` when that is a module, else to `pkg`. A cycle is a strongly connected set of
modules, reported as one concrete loop (`runbook.a -> runbook.b -> runbook.a`).

Two cycles were known when this test was written and are being removed (issue 11): `cli` <-> `docs`
and `gitops` <-> `reports`. Each has a strict xfail test that starts failing the day the cycle is
gone: drop its entry from KNOWN_CYCLES then. Any other cycle, or a known one that grows, fails
`test_no_import_cycles` now.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "runbook"
KNOWN_CYCLES: dict[str, frozenset[str]] = {}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(path, src): path for path in sorted((src / package).rglob("*.py"))}


def _imported(node: ast.AST, name: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            yield submodule if submodule in known else target


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in its body)."""
    files = modules(src, package)
    known = set(files)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(node, name, is_package, known):
                if target in known and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected sets of more than one module (Tarjan), in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=sorted)


def loop(graph: dict[str, set[str]], group: frozenset[str]) -> str:
    """One concrete import loop through the first module of `group`, e.g. `a -> b -> a`."""
    start = min(group)
    paths = [[start]]
    seen = {start}
    while paths:  # breadth first: the shortest way back to `start`
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & group):
            if nxt == start:
                return " -> ".join([*path, start])
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return " <-> ".join(sorted(group))


def test_the_graph_sees_relative_lazy_and_package_imports() -> None:
    graph = import_graph()
    assert "runbook.record" in graph["runbook.executor"]  # `from .record import ...`
    assert "runbook.targets" in graph["runbook.api"]  # `from .targets import open_target` inside a function
    assert "runbook.actions" in graph["runbook.executor"]  # `from . import actions`
    assert all(target.startswith("runbook") for targets in graph.values() for target in targets)


def test_cycles_are_found_and_named(tmp_path: Path) -> None:
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import g\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import demo.a\n")
    (pkg / "d.py").write_text("from .a import x\n")
    graph = import_graph(tmp_path, "demo")
    (group,) = cycles(graph)
    assert group == {"demo.a", "demo.b", "demo.sub.c"}
    assert loop(graph, group) == "demo.a -> demo.b -> demo.sub.c -> demo.a"


def test_no_import_cycles() -> None:
    graph = import_graph()
    new = [group for group in cycles(graph) if group not in KNOWN_CYCLES.values()]
    assert not new, "import cycles in src/runbook:\n" + "\n".join(loop(graph, group) for group in new)


def test_no_module_is_over_800_lines() -> None:
    # One clear room per concern: a module past ~800 lines is doing several jobs.
    big = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 800
    }
    assert not big, f"modules over 800 lines: {big}"
