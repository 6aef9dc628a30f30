"""Formats are specs: the documents name every key the code writes, and vice versa."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import runbase_cmd, write

DOCS = Path(__file__).parent.parent / "docs"


def _documented(section_title: str | None) -> set[str]:
    text = (DOCS / "run-record.md").read_text()
    if section_title:
        text = text.split(f"## `{section_title}`", 1)[1].split("\n## ", 1)[0]
    else:
        text = text.split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"\|\s*((?:`[^`]+`(?:,\s*)?)+)\s*\|", line)
        if m:
            keys |= set(re.findall(r"`([^`]+)`", m.group(1)))
    return keys


def test_run_record_matches_its_document(project: Path) -> None:
    import json

    write(project, "t.py", "import runbase\nrunbase.log(x=1.0)\n")
    runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert set(rec) == _documented(None)
    assert set(rec["code"]) == _documented("code")
    assert set(rec["env"]) == _documented("env")


def test_store_format_names_every_table() -> None:
    from runbase.store.schema import SCHEMA_V1

    text = (DOCS / "store-format.md").read_text()
    tables = {m for stmt in SCHEMA_V1 for m in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", stmt)}
    for t in tables:
        assert f"`{t}`" in text, f"table {t} is not documented in docs/store-format.md"
