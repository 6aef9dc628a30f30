"""Architecture figures for docs/architecture.md and the P1 closing note.

Counts the top-level modules of ``src/runbase``, the function-level imports (all, and
those of runbase's own modules), and the import cycles between runbase modules (strongly
connected components of grimp's import graph, the graph import-linter checks).

    .venv/bin/python scripts/archstats.py [--json]
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parent.parent / "src" / "runbase"


def top_level_modules() -> list[str]:
    return sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__")


LAZY_MARK = "# lazy:"


def _has_reason(lines: list[str], node: ast.stmt) -> bool:
    """A ``# lazy: why`` comment on the import itself, or above it (one comment may head a
    block of consecutive imports)."""
    if any(LAZY_MARK in line for line in lines[node.lineno - 1 : node.end_lineno]):
        return True
    i = node.lineno - 2
    while i >= 0:
        text = lines[i].strip()
        if text.startswith("#"):  # the comment above, however many lines it takes
            while i >= 0 and lines[i].strip().startswith("#"):
                if LAZY_MARK in lines[i]:
                    return True
                i -= 1
            return False
        if not (text.startswith(("import ", "from ")) or text in (")",) or text.endswith(",")):
            return False
        i -= 1
    return False


def function_level_imports() -> tuple[int, list[str], list[str]]:
    """(count of all imports inside functions, locations of those of runbase's own modules,
    locations of those among them with no ``# lazy:`` reason)."""
    total, internal, unexplained = 0, [], []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for fn in ast.walk(ast.parse(source, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                total += 1
                if any(n.startswith(".") or n.split(".")[0] == "runbase" for n in names):
                    where = f"{path.relative_to(SRC.parent)}:{node.lineno}"
                    internal.append(where)
                    if not _has_reason(lines, node):
                        unexplained.append(where)
    return total, internal, unexplained


def import_cycles() -> list[list[str]]:
    """Strongly connected components (size > 1) of the module import graph (Tarjan)."""
    graph = grimp.build_graph("runbase", include_external_packages=False)
    mods = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    return out


def main() -> None:
    mods = top_level_modules()
    total, internal, unexplained = function_level_imports()
    cycles = import_cycles()
    stats = {
        "top_level_modules": len(mods),
        "function_level_imports": total,
        "function_level_imports_of_runbase": len(internal),
        "of_which_without_lazy_reason": len(unexplained),
        "import_cycles": len(cycles),
        "modules_in_cycles": sum(len(c) for c in cycles),
        "cycles": cycles,
    }
    if "--json" in sys.argv:
        print(json.dumps(stats, indent=2))
        return
    for k, v in stats.items():
        if k != "cycles":
            print(f"{k}: {v}")
    if "-v" in sys.argv:
        print("without a reason:", *unexplained, sep="\n  ")
    for c in cycles:
        print(f"cycle ({len(c)}): {' '.join(c)}")


if __name__ == "__main__":
    main()
