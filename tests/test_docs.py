"""Formats are specs: the documents name every key the code writes, and vice versa."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import documented_keys, runbase_cmd, write

DOCS = Path(__file__).parent.parent / "docs"


def _documented(section_title: str | None, doc: str = "run-record.md") -> set[str]:
    return documented_keys(doc, section_title)


def test_run_record_matches_its_document(project: Path) -> None:
    import json

    write(project, "t.py", "import runbase\nrunbase.log(x=1.0)\n")
    runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert set(rec) == _documented(None)
    assert set(rec["code"]) == _documented("code")
    assert set(rec["env"]) == _documented("env")


def test_diff_report_matches_its_document(project: Path) -> None:
    import json

    write(project, "t.py", "import runbase\nrunbase.summary(acc=0.5)\n")
    for _ in range(2):
        runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    ids_ = [r["id"] for r in json.loads(runbase_cmd("ls", "--json", cwd=project).stdout)]
    report = json.loads(runbase_cmd("diff", *ids_, "--json", cwd=project, check=True).stdout)
    head = json.loads(runbase_cmd("diff", ids_[0], "--json", cwd=project, check=True).stdout)
    top = _documented(None, "diff-format.md")
    assert set(report) == top - {"head"} and set(head) == {"diff_version", "a", "b", "head"}
    for section in ("params", "metrics", "code", "data", "env", "run"):
        assert set(report[section]) == _documented(section, "diff-format.md"), section
    assert set(head["head"]) == _documented("head", "diff-format.md")


def test_store_format_names_every_table() -> None:
    from runbase.store.schema import SCHEMA_V1

    text = (DOCS / "store-format.md").read_text()
    tables = {
        m for stmt in SCHEMA_V1 for m in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", stmt)
    }
    for t in tables:
        assert f"`{t}`" in text, f"table {t} is not documented in docs/store-format.md"


def test_server_routes_match_their_document(tmp_path: Path) -> None:
    """docs/server.md's routes table names every route of the team server's OpenAPI
    description, and no route the server does not have."""
    from runbase.server.admin import migrate
    from runbase.server.app import create_server_app
    from runbase.server.service import ServerConfig

    db, objects = str(tmp_path / "server.db"), str(tmp_path / "objects")
    migrate(db, objects)
    app = create_server_app(ServerConfig(db, objects, scratch=tmp_path / "scratch"))
    try:
        served = {
            (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
        }
    finally:
        app.state.server.close()
    text = (DOCS / "server.md").read_text().split("### Routes", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\|\s*`([A-Z]+)`\s*\|\s*`(/[^`]*)`\s*\|", text, re.M))
    assert served - documented == set(), "routes missing from docs/server.md"
    assert documented - served == set(), "docs/server.md names routes the server lacks"
