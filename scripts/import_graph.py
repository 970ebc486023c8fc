"""The import graph of the frgan package: modules, import circles and the longest functions.

    python scripts/import_graph.py              # a summary
    python scripts/import_graph.py --json out.json

Every `import` counts, at module level or inside a function (an import inside a function
hides a circle; it does not remove it). An import names the module it loads: `from frgan.x
import y` loads frgan.x, or frgan.x.y when y is a submodule. Loading a submodule also runs
its packages' __init__, which is not counted as an edge (a package that imports its own
modules would otherwise be a circle with each of them). A circle is a strongly connected
component of more than one module, or a module importing itself. tests/test_repository.py
fails on any.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "frgan"


def module_files(root: Path = REPO) -> dict[str, Path]:
    """{dotted module name: file} of every Python module of the package."""
    files = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def extension_modules(root: Path = REPO) -> set[str]:
    """Compiled modules (Cython sources): imported, but importing nothing of the package."""
    return {
        ".".join(path.relative_to(root).with_suffix("").parts)
        for path in (root / PACKAGE).rglob("*.pyx")
    }


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute name of a (possibly relative) `from ... import` source."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(files: dict[str, Path], extensions: set[str] = frozenset()) -> dict[str, set[str]]:
    """{module: the package's modules it imports}."""
    modules = set(files) | set(extensions)
    graph: dict[str, set[str]] = {name: set() for name in extensions}
    for module, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node, path.name == "__init__.py")
                names = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            else:
                continue
            for name in names:
                # `import frgan.a.b` loads frgan.a.b; keep the longest name that is a module
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name.split(".")[0] == PACKAGE:
                    targets.add(name)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a self-import
    (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def longest_functions(files: dict[str, Path], count: int = 10) -> list[tuple[int, str]]:
    """(lines, module:function) of the longest functions and methods."""
    sizes = []
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes.append((node.end_lineno - node.lineno + 1, f"{module}:{node.name}"))
    return sorted(sizes, reverse=True)[:count]


def report(root: Path = REPO) -> dict:
    files = module_files(root)
    graph = imports(files, extension_modules(root))
    return {
        "modules": len(files),
        "lines": sum(len(path.read_text().splitlines()) for path in files.values()),
        "imports": sum(len(targets) for targets in graph.values()),
        "circles": circles(graph),
        "longest_functions": [
            {"lines": n, "function": name} for n, name in longest_functions(files)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = report(args.root)
    print(f"{figures['modules']} modules, {figures['lines']} lines, {figures['imports']} imports")
    print(f"import circles: {len(figures['circles'])}")
    for circle in figures["circles"]:
        print("  " + " <-> ".join(circle))
    print("longest functions:")
    for entry in figures["longest_functions"]:
        print(f"  {entry['lines']:4d}  {entry['function']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if figures["circles"] else 0


if __name__ == "__main__":
    sys.exit(main())
