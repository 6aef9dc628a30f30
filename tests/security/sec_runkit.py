"""Shared by the path and integrity tests: a real run made by the real CLI (code
snapshot, a stored data input, logs), and ways to plant crafted records in its store
the way a hostile writer or a damaged disk would: objects and SQL rows written directly,
never through runbase's checks."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import GIT, commit, runbase_cmd, write
from runbase.capture.manifest import TREE_FORMAT, TREE_VERSION
from runbase.store.hashing import hash_bytes

TRAIN = """
import runbase
with open("data/in.csv") as f:
    rows = f.read().splitlines()
runbase.param("lr", 0.1)
for i in range(3):
    runbase.log(loss=1.0 / (i + 1) + len(rows), step=i)
with open("out.txt", "w") as f:
    f.write("done")
print("trained on", len(rows), "rows")
"""
DATA = "a,b\n1,2\n3,4\n"


@dataclass
class Made:
    root: Path  # the project (a git repo)
    store: Path  # its .runbase
    run_id: str

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.store / "runbase.db")

    def object_path(self, oid: str) -> Path:
        hexd = oid.split(":", 1)[1]
        return self.store / "objects" / hexd[:2] / hexd[2:]

    def put_object(self, data: bytes) -> str:
        """Store bytes as an object, by hand (as another program could)."""
        oid = hash_bytes(data)
        path = self.object_path(oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)
        return oid

    def code_json(self) -> dict[str, Any]:
        with self.db() as c:
            return json.loads(
                c.execute("SELECT code_json FROM runs WHERE id = ?", (self.run_id,)).fetchone()[0]
            )

    def tree(self) -> list[dict[str, Any]]:
        body = json.loads(self.object_path(self.code_json()["tree"]).read_bytes())
        return list(body["entries"])

    def code_oid(self, name: str = "train.py") -> str:
        """The object id of a file of the run's code snapshot."""
        return next(e["oid"] for e in self.tree() if e["path"] == name)

    def input_oid(self, path: str = "data/in.csv") -> str:
        with self.db() as c:
            row = c.execute(
                "SELECT oid FROM run_files WHERE run_id = ? AND role = 'input' AND path = ?",
                (self.run_id, path),
            ).fetchone()
        return str(row[0])


def make_run(base: Path) -> Made:
    """A git project with train.py and data/in.csv, run once with `runbase run`."""
    root = base / "proj"
    root.mkdir(parents=True)
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    write(root, "data/in.csv", DATA)
    write(root, ".gitignore", "out.txt\n.runbase/\n")
    commit(root, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, check=True)
    shown = runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout
    return Made(root, root / ".runbase", json.loads(shown)["id"])


def clone(made: Made, base: Path) -> Made:
    """A private copy of a made project (each test damages its own)."""
    root = base / "proj"
    shutil.copytree(made.root, root, symlinks=True)
    for p in (root / ".runbase" / "objects").rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return Made(root, root / ".runbase", made.run_id)


def manifest_bytes(entries: list[dict[str, Any]]) -> bytes:
    """A tree manifest in the stored format, with whatever entries it is given."""
    body = {"format": TREE_FORMAT, "version": TREE_VERSION, "entries": entries}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def plant_tree(made: Made, entries: list[dict[str, Any]]) -> str:
    """Point the run's code snapshot at a crafted manifest (written by hand)."""
    oid = made.put_object(manifest_bytes(entries))
    code = made.code_json()
    code["tree"] = oid
    with made.db() as c:
        c.execute("UPDATE runs SET code_json = ? WHERE id = ?", (json.dumps(code), made.run_id))
    return oid


def plant_input(made: Made, path: str, oid: str, kind: str = "file") -> None:
    """Add a stored input row with a crafted path."""
    with made.db() as c:
        c.execute(
            "INSERT INTO run_files (run_id, role, path, source, oid, size, stored, kind) "
            "VALUES (?, 'input', ?, 'declared', ?, 1, 1, ?)",
            (made.run_id, path, oid, kind),
        )
