"""tracking.hybrid: explain's hybrid workspaces (a run's files, another's written over)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import commit, runbase_cmd, write
from runbase.capture.manifest import load_manifest
from runbase.errors import UnsafePathError
from runbase.records.record import build_record
from runbase.store import Store
from runbase.tracking.hybrid import Workspace, clone_file, hybrid_tree

JOB = """
import runbase
rows = open("data/in.txt").read().split()
runbase.summary(n=len(rows))
"""


@pytest.fixture
def recorded(project: Path) -> Iterator[tuple[Store, str]]:
    """A run with code (a script, an executable, a symlink, a nested file) and an input."""
    write(project, "job.py", JOB)
    write(project, "src/a.py", "A = 1\n")
    write(project, "src/deep/b.py", "B = 2\n")
    write(project, "gone.py", "# removed in the hybrid\n")
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (project / "run.sh").chmod(0o755)
    os.symlink("src/a.py", project / "link.py")
    (project / "data").mkdir()
    (project / "data" / "in.txt").write_text("1 2 3\n")
    (project / ".gitignore").write_text("data/\n")
    commit(project, "job")
    runbase_cmd("run", "--", sys.executable, "job.py", cwd=project, check=True)
    out = runbase_cmd("show", "latest", "--json", "--no-patch", cwd=project, check=True).stdout
    store = Store.open(project / ".runbase")
    try:
        yield store, json.loads(out)["id"]
    finally:
        store.close()


def _files(root: Path) -> dict[str, os.stat_result]:
    return {
        str(p.relative_to(root)): p.lstat()
        for p in root.rglob("*")
        if not p.is_dir() or p.is_symlink()
    }


def _entry(store: Store, data: bytes, kind: str = "f") -> dict[str, object]:
    return {"type": kind, "oid": store.objects.put_bytes(data), "size": len(data)}


def test_a_hybrid_is_the_base_with_the_overlay(recorded: tuple[Store, str], tmp_path: Path) -> None:
    store, run = recorded
    ws = Workspace(store, run, tmp_path / "work")
    assert ws.not_restorable == [] and isinstance(ws.reflinks, bool)
    assert (ws.base / "data" / "in.txt").read_text() == "1 2 3\n"
    h = ws.make(
        "h1",
        code={
            "src/a.py": _entry(store, b"A = 2\n"),
            "src/new/c.py": _entry(store, b"C = 3\n", "x"),
            "gone.py": None,
            "src/deep/b.py": None,
        },
        data={"data/in.txt": _entry(store, b"1 2 3 4\n")},
    )
    assert (h / "src" / "a.py").read_text() == "A = 2\n"
    assert (h / "src" / "new" / "c.py").stat().st_mode & 0o111
    assert not (h / "gone.py").exists()
    assert not (h / "src" / "deep").exists()  # emptied by the deletion: pruned
    assert (h / "data" / "in.txt").read_text() == "1 2 3 4\n"
    assert (h / "link.py").is_symlink() and os.readlink(h / "link.py") == "src/a.py"
    assert (h / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (h / "job.py").read_text() == (ws.base / "job.py").read_text()
    # the base is untouched; another hybrid starts from it again
    assert (ws.base / "src" / "a.py").read_text() == "A = 1\n"
    assert (ws.base / "gone.py").is_file()
    h2 = ws.make("h2", code={}, data={})
    assert (h2 / "src" / "a.py").read_text() == "A = 1\n"
    ws.remove("h1")
    assert not h.exists() and h2.exists()


def test_no_file_of_a_hybrid_is_a_hard_link(recorded: tuple[Store, str], tmp_path: Path) -> None:
    store, run = recorded
    ws = Workspace(store, run, tmp_path / "work")
    h = ws.make("h", code={"src/a.py": _entry(store, b"A = 3\n")}, data={})
    files = _files(h)
    assert "data/in.txt" in files and "job.py" in files and "link.py" in files
    for rel, st in files.items():
        assert st.st_nlink == 1, rel


def test_a_script_writing_into_its_hybrid_changes_neither_store_nor_base(
    recorded: tuple[Store, str], tmp_path: Path
) -> None:
    store, run = recorded
    ws = Workspace(store, run, tmp_path / "work")
    data_oid = store.objects.put_bytes(b"9 9\n")
    h = ws.make("h", code={}, data={"data/in.txt": {"type": "f", "oid": data_oid}})
    base_before = {rel: (ws.base / rel).read_bytes() for rel in _files(ws.base) if rel != "link.py"}
    script = (
        "import os\n"
        "for d, _, files in os.walk('.'):\n"
        "    for f in files:\n"
        "        p = os.path.join(d, f)\n"
        "        if not os.path.islink(p):\n"
        "            os.chmod(p, 0o644)\n"
        "            open(p, 'ab').write(b'scribbled')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=h, check=True)
    assert (h / "data" / "in.txt").read_bytes() == b"9 9\nscribbled"
    assert store.objects.get_bytes(data_oid) == b"9 9\n"  # verified against its id
    for entry in load_manifest(store, build_record(store, run)["code"]["tree"]):
        if entry["type"] != "link":
            store.objects.get_bytes(entry["oid"])  # CorruptObject if it had changed
    assert {rel: (ws.base / rel).read_bytes() for rel in base_before} == base_before


def _snapshot(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry under ``root``: kind, permissions, bytes (or a symlink's target)."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", 0, os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
    return out


def test_a_hybrid_given_back_is_reset_to_the_base_and_reused(
    recorded: tuple[Store, str], tmp_path: Path
) -> None:
    store, run = recorded
    ws = Workspace(store, run, tmp_path / "work")
    h1 = ws.make("h1", code={"src/a.py": _entry(store, b"A = 9\n")}, data={})
    untouched = (h1 / ".gitignore").stat().st_ino
    # what a command may do to its hybrid: edit in place (same size), append, chmod,
    # delete, replace a directory by a file, re-point a symlink, write new files
    with open(h1 / "job.py", "r+b") as f:
        f.write(b"#")
    with open(h1 / "data" / "in.txt", "ab") as f:
        f.write(b"4\n")
    (h1 / "run.sh").chmod(0o700)
    (h1 / "gone.py").unlink()
    shutil.rmtree(h1 / "src" / "deep")
    (h1 / "src" / "deep").write_text("now a file\n")
    (h1 / "link.py").unlink()
    os.symlink("job.py", h1 / "link.py")
    (h1 / "out").mkdir()
    (h1 / "out" / "model.bin").write_bytes(b"weights")
    (h1 / "__pycache__").mkdir()
    ws.remove("h1")
    assert not h1.exists()

    h2 = ws.make("h2", code={"gone.py": None}, data={"data/in.txt": _entry(store, b"7\n")})
    want = _snapshot(ws.base)
    del want["gone.py"]
    want["data/in.txt"] = ("file", want["data/in.txt"][1], b"7\n")
    assert _snapshot(h2) == want  # the base and h2's overlay, nothing of h1
    assert (h2 / "src" / "a.py").read_text() == "A = 1\n"  # h1's overlay is gone too
    # the directory was re-used, not cloned again: a file nobody touched is the same inode
    assert (h2 / ".gitignore").stat().st_ino == untouched
    assert all(p.stat().st_nlink == 1 for p in h2.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "overlay",
    [
        {"../outside.py": {"type": "f"}},
        {"/etc/passwd": None},
        {".git/hooks/pre-commit": None},
        {"src//a.py": None},
        {"escape": {"type": "link", "target": "../../../etc"}},
        {"src/a.py": {"type": "f", "oid": "not-an-id"}},
        {"src/a.py": {"type": "socket"}},
    ],
)
def test_unsafe_overlays_are_refused(
    recorded: tuple[Store, str], tmp_path: Path, overlay: dict[str, dict[str, str] | None]
) -> None:
    store, run = recorded
    ws = Workspace(store, run, tmp_path / "work")
    with pytest.raises(UnsafePathError):
        ws.make("h", code=overlay, data={})
    assert not (tmp_path / "work" / "h").exists()
    assert not (tmp_path / "outside.py").exists()


def test_hybrid_tree_is_the_base_tree_with_the_code_overlay(recorded: tuple[Store, str]) -> None:
    store, run = recorded
    tree = build_record(store, run)["code"]["tree"]
    new_a = _entry(store, b"A = 5\n")
    oid = hybrid_tree(store, tree, {"src/a.py": new_a, "gone.py": None, "link.py": None})
    assert oid is not None and oid != tree
    entries = {e["path"]: e for e in load_manifest(store, oid)}
    base = {e["path"]: e for e in load_manifest(store, tree)}
    assert entries["src/a.py"]["oid"] == new_a["oid"]
    assert "gone.py" not in entries and "link.py" not in entries
    assert entries["job.py"] == base["job.py"]
    assert hybrid_tree(store, tree, {}) == hybrid_tree(store, tree, {})
    assert hybrid_tree(store, None, {}) is None


def test_clone_file_copies_bytes_and_mode(tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(os.urandom(300_000))
    src.chmod(0o750)
    clone_file(str(src), str(tmp_path / "b"), src.stat().st_mode)
    assert (tmp_path / "b").read_bytes() == src.read_bytes()
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o750
    assert (tmp_path / "b").stat().st_ino != src.stat().st_ino


SPEC_JOB = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
runbase.summary(lr_seen=p.parse_args().lr)
"""


def test_run_spec_sets_the_run_options(project: Path, tmp_path: Path) -> None:
    write(project, "spec_job.py", SPEC_JOB)
    commit(project, "spec job")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "hybrid-1",
                "tags": {"explain": "x123", "explain.role": "hybrid"},
                "overrides": {"lr": 0.5},
                "project_root": str(project),
                "extra_env": {"RB_SPEC_TEST": "1"},
                "code_record": None,
            }
        )
    )
    args = ["run", "--spec", str(spec), "-t", "explain.role=a", "--", sys.executable, "spec_job.py"]
    runbase_cmd(*args, cwd=project, check=True)
    out = runbase_cmd("show", "latest", "--json", "--no-patch", cwd=project, check=True).stdout
    rec = json.loads(out)
    assert rec["name"] == "hybrid-1"
    assert rec["tags"]["explain"] == "x123" and rec["tags"]["explain.role"] == "a"  # -t on top
    assert rec["params"]["lr"] == 0.5 and rec["metrics"]["lr_seen"]["value"] == 0.5


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"colour": "red"}', "unknown key 'colour'"),
        ('{"tags": {"a": 1}}', "'tags' in the run spec must be a JSON object of strings"),
        ('{"name": 3}', "'name' in the run spec must be a JSON string"),
        ('["name"]', "must be a JSON object"),
        ("{not json", "is not JSON"),
    ],
)
def test_a_bad_run_spec_is_a_usage_error(
    project: Path, tmp_path: Path, text: str, says: str
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(text)
    r = runbase_cmd("run", "--spec", str(spec), "--", sys.executable, "-c", "pass", cwd=project)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = runbase_cmd("run", "--spec", str(tmp_path / "none.json"), "--", "true", cwd=project)
    assert r.returncode == 2 and "cannot read the run spec" in r.stderr
