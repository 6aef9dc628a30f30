"""Code snapshots: git state, patch with untracked files, manifest, stat cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import GIT, commit, write
from runbase.capture.code import snapshot
from runbase.capture.manifest import load_manifest
from runbase.store import Store


def _restore(store: Store, tree: str, into: Path) -> None:
    for e in load_manifest(store, tree):
        dest = into / e["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(store.objects.get_bytes(e["oid"]))


def _tree_files(root: Path, skip: set[str]) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    }


def test_dirty_git_tree(project: Path) -> None:
    write(project, "src/model.py", "def f():\n    return 1\n")
    write(project, "train.py", "print('hi')\n")
    head = commit(project, "code")
    subprocess.run(
        ["git", "remote", "add", "origin", "https://alice:s3cretpw@github.com/org/repo.git"],
        cwd=project,
        check=True,
    )
    write(project, "src/model.py", "def f():\n    return 2\n")  # modified
    write(project, "new_module.py", "X = 1\n")  # untracked
    write(project, "debug.log", "ignored by .gitignore\n")
    write(project, ".env", "API_TOKEN=abc\n")  # secret file: never stored
    (project / "data.csv").write_text("a,b\n1,2\n")  # data, not code
    (project / "weights.txt").write_bytes(b"x" * (2 << 20))  # large: data, not code
    store = Store.open(project / ".runbase", create=True)
    snap = snapshot(store, project)
    assert snap.kind == "git" and snap.commit == head and snap.branch == "main" and snap.dirty
    assert snap.remote == "https://alice:***@github.com/org/repo.git"
    paths = {e["path"] for e in load_manifest(store, snap.tree)}
    assert paths == {".gitignore", "README.md", "src/model.py", "train.py", "new_module.py"}
    skipped = {s["path"]: s["reason"] for s in snap.skipped}
    assert set(skipped) == {".env", "data.csv", "weights.txt"}
    patch = store.objects.get_bytes(snap.patch).decode()
    assert "return 2" in patch and "new_module.py" in patch and "debug.log" not in patch
    assert "API_TOKEN" not in patch and "weights.txt" not in patch
    # the repository's own index is untouched by the snapshot
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    ).stdout
    assert "?? new_module.py" in status
    # the patch applied to a clean checkout of the commit gives exactly the snapshot
    clone = project.parent / "clone"
    subprocess.run([*GIT, "clone", "-q", str(project), str(clone)], check=True)
    (clone / "p.diff").write_bytes(store.objects.get_bytes(snap.patch))
    subprocess.run(["git", "apply", "p.diff"], cwd=clone, check=True)
    (clone / "p.diff").unlink()
    restored = project.parent / "restored"
    _restore(store, snap.tree, restored)
    assert _tree_files(restored, set()) == _tree_files(clone, {".git"})


def test_unchanged_files_are_not_rehashed(project: Path) -> None:
    for i in range(50):
        write(project, f"pkg/m{i}.py", f"V = {i}\n")
    commit(project)
    store = Store.open(project / ".runbase", create=True)
    # make the files look old enough for the stat cache (racy-mtime protection)
    import os
    import time

    old = time.time() - 60
    for p in project.rglob("*"):
        if p.is_file() and ".git" not in p.parts:
            os.utime(p, (old, old))
    first = snapshot(store, project)
    assert first.hashed == first.files
    second = snapshot(store, project)
    assert second.hashed == 0 and second.tree == first.tree
    write(project, "pkg/m3.py", "V = 'changed'\n")
    third = snapshot(store, project)
    assert third.hashed == 1 and third.tree != first.tree


def test_repo_without_commits(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "fresh"
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "a.py", "print(1)\n")
    store = Store.open(root / ".runbase", create=True)
    snap = snapshot(store, root)
    assert snap.commit is None and snap.dirty
    assert "a.py" in store.objects.get_bytes(snap.patch).decode()


def test_plain_directory_uses_ignore_rules(tmp_path: Path) -> None:
    root = tmp_path / "nogit"
    write(root, "train.py", "print(1)\n")
    write(root, "lib/util.py", "X = 1\n")
    write(root, "__pycache__/x.pyc", "junk")
    write(root, ".venv/lib/site.py", "junk")
    write(root, "out/result.txt", "ignored by .runbaseignore")
    write(root, ".runbaseignore", "out/\n")
    store = Store.open(root / ".runbase", create=True)
    snap = snapshot(store, root)
    assert snap.kind == "dir" and snap.commit is None
    assert {e["path"] for e in load_manifest(store, snap.tree)} == {
        "train.py",
        "lib/util.py",
        ".runbaseignore",
    }
