"""The architecture of docs/architecture.md, checked: no import cycle between runbase's
modules, every function-level import of runbase's own modules says why it is lazy, and
no module sits flat in ``src/runbase`` outside the layer packages. (The layers contract
itself is `lint-imports`, run by the test command.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _archstats() -> ModuleType:
    spec = importlib.util.spec_from_file_location("archstats", ROOT / "scripts" / "archstats.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("archstats", module)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles() -> None:
    assert _archstats().import_cycles() == []


def test_every_lazy_import_of_runbase_says_why() -> None:
    _, internal, unexplained = _archstats().function_level_imports()
    assert internal, "the scan found no function-level import at all: it is broken"
    assert unexplained == [], "function-level imports with no '# lazy: why' comment"


def test_no_flat_modules_outside_the_layers() -> None:
    assert _archstats().top_level_modules() == ["__main__", "errors"]


def test_reason_detection(tmp_path: Path) -> None:
    import ast

    source = (
        "def f():\n"
        "    # lazy: the CLI loads no SQLite\n"
        "    from runbase.records import read\n"
        "    from runbase.records import record\n"
        "\n"
        "def g():\n"
        "    x = 1\n"
        "    from runbase.records import read\n"
        "    import runbase.core.ids  # lazy: start-up\n"
    )
    lines = source.splitlines()
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom | ast.Import)]
    has = _archstats()._has_reason
    assert [has(lines, n) for n in sorted(imports, key=lambda n: n.lineno)] == [
        True,
        True,
        False,
        True,
    ]


_SQL = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "WITH", "PRAGMA")


def _sql_text(node: object) -> str:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _sql_text(node.left)
    return ""


def test_sql_only_in_records_and_store() -> None:
    """records/ is the only place that speaks SQL (store/ holds the database itself)."""
    import ast

    src = ROOT / "src" / "runbase"
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.relative_to(src).parts[0] in ("records", "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "query", "query_one")
                and node.args
                and _sql_text(node.args[0]).lstrip().upper().startswith(_SQL)
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert found == []


def test_cli_command_table_names_every_command_where_it_is() -> None:
    """The CLI loads a command's module when the command runs, by its table: the table
    and the modules' COMMANDS must agree (a command missing from it would vanish)."""
    import importlib
    import pkgutil

    import runbase.cli as cli

    defined = {}
    for info in pkgutil.iter_modules(cli.__path__):
        module = importlib.import_module(f"runbase.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            defined[command.name] = info.name
    assert defined == cli.COMMANDS


def test_the_64_bit_range_is_declared_once() -> None:
    """The range of a 64-bit integer (a step, a SQL INTEGER) is core.shapes.I64: a copy
    in another module could drift from the one the bundle and the server check with."""
    import ast

    src = ROOT / "src" / "runbase"
    found = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, (ast.LShift, ast.Pow))
                and isinstance(node.left, ast.Constant)
                and isinstance(node.right, ast.Constant)
                and (node.left.value, node.right.value) in ((1, 63), (2, 63))
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert [f.partition(":")[0] for f in found] == ["core/shapes.py"], found
