"""The drift check is exact (docs/models.md, `runbase model status`): a deployed file or
directory is in sync only when it holds the version's bytes and nothing else. Each case
a review reproduced as a false "in sync" is here, on a real store made by a real run:
a file rewritten in place with its size and mtime kept, a tree with an added
`__pycache__/`, `.env`, `id_rsa`, `*.pem` or symlink, a FIFO (refused, no hang);
`model get --force` and `runbase.model_path` rewrite a tampered copy."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import blake3
import pytest

from conftest import runbase_cmd, write

TRAIN = """
import os, runbase
os.makedirs("out", exist_ok=True)
with open("out/model.pkl", "w") as f:
    f.write("weights v1")
d = runbase.output("out/tree")
os.makedirs(d + "/sub", exist_ok=True)
open(d + "/w.bin", "w").write("tree weights")
open(d + "/sub/config.json", "w").write('{"layers": 3}')
"""


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def rb(project: Path, *args: str, code: int = 0) -> Any:
    """`runbase ARGS` (a hang fails the test: 60 s); its JSON with --json, else the
    process; it must exit ``code`` and never with a traceback."""
    proc = runbase_cmd(*args, cwd=project, timeout=60)
    assert proc.returncode == code, (
        f"runbase {' '.join(args)} exited {proc.returncode}, not {code}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else proc


@pytest.fixture
def deployed(project: Path) -> Path:
    """A run's file and directory registered (churn, tree) and delivered to deploy/."""
    write(project, "train.py", TRAIN)
    rb(project, "run", "--", sys.executable, "train.py")
    run = rb(project, "show", "latest", "--json", "--no-patch")["id"]
    rb(project, "model", "register", "churn", f"{run}:out/model.pkl")
    rb(project, "model", "register", "tree", f"{run}:out/tree")
    rb(project, "model", "get", "churn@latest", "-o", "deploy/model.pkl")
    rb(project, "model", "get", "tree@latest", "-o", "deploy/tree")
    return project


def status(project: Path, ref: str, path: str, code: int = 1) -> dict[str, Any]:
    return dict(rb(project, "model", "status", ref, path, "--json", code=code))


def age(path: Path) -> None:
    """Date ``path`` (and all below it) an hour back: a stat cache skips a file modified
    just now (it could change again within its clock's grain) and trusts an old one."""
    old = path.stat().st_mtime - 3600
    for p in (path, *(path.rglob("*") if path.is_dir() else ())):
        os.utime(p, (old, old), follow_symlinks=False)


def overwrite_in_place(path: Path, data: bytes) -> None:
    """Rewrite ``path``'s bytes in the same inode, size and mtime kept: what a stat
    cache keyed on (device, inode, size, mtime) cannot see."""
    before = path.stat()
    assert len(data) == before.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_drift(deployed: Path) -> None:
    project = deployed
    target = project / "deploy" / "model.pkl"
    age(target)
    good = status(project, "churn@latest", "deploy/model.pkl", code=0)  # caches, if any
    assert good["in_sync"] and good["differences"] == [] and good["more_differences"] == 0
    overwrite_in_place(target, b"weights v2")
    report = status(project, "churn@latest", "deploy/model.pkl")
    assert report["state"] == "no_version" and report["in_sync"] is False
    assert report["actual_oid"] == b3(target) != report["expected"]["oid"]
    assert report["differences"] == [
        {
            "path": ".",
            "problem": "changed",
            "expected": report["expected"]["oid"],
            "actual": b3(target),
        }
    ]
    # model get: the tampered file is not "already there"; --force rewrites it
    refused = rb(project, "model", "get", "churn@latest", "-o", "deploy/model.pkl", code=1)
    assert "holds other bytes" in refused.stderr and target.read_bytes() == b"weights v2"
    got = rb(project, "model", "get", "churn@latest", "-o", "deploy/model.pkl", "--force", "--json")
    assert got["written"] is True and target.read_bytes() == b"weights v1"
    assert status(project, "churn@latest", "deploy/model.pkl", code=0)["in_sync"]
    assert (
        rb(project, "model", "get", "churn@latest", "-o", "deploy/model.pkl", "--json")["written"]
        is False
    )

    # a directory's file rewritten the same way
    conf = project / "deploy" / "tree" / "sub" / "config.json"
    age(project / "deploy" / "tree")
    status(project, "tree@latest", "deploy/tree", code=0)
    conf.chmod(0o644)
    overwrite_in_place(conf, b'{"layers": 9}')
    tree = status(project, "tree@latest", "deploy/tree")
    assert [(d["path"], d["problem"], d["actual"]) for d in tree["differences"]] == [
        ("sub/config.json", "changed", b3(conf))
    ]
    text = rb(project, "model", "status", "tree@latest", "deploy/tree", code=1).stdout
    assert "changed: sub/config.json" in text
    rb(project, "model", "get", "tree@latest", "-o", "deploy/tree", "--force")
    assert conf.read_bytes() == b'{"layers": 3}'
    status(project, "tree@latest", "deploy/tree", code=0)


ADDED = {
    "__pycache__/x.pyc": ("__pycache__", "directory"),
    ".env": (".env", "file"),
    "id_rsa": ("id_rsa", "file"),
    "server.pem": ("server.pem", "file"),
    ".git/config": (".git", "directory"),
}


@pytest.mark.parametrize("added", sorted(ADDED))
def test_a_file_added_to_a_deployed_tree_is_drift(deployed: Path, added: str) -> None:
    """What capture leaves out of a run's outputs is still part of a deployed tree."""
    project = deployed
    write(project, f"deploy/tree/{added}", "SECRET=1\n")
    report = status(project, "tree@latest", "deploy/tree")
    assert report["state"] == "no_version"
    assert report["differences"] == [
        {"path": ADDED[added][0], "problem": "extra", "expected": None, "actual": ADDED[added][1]}
    ]
    text = rb(project, "model", "status", "tree@latest", "deploy/tree", code=1).stdout
    assert f"extra: {ADDED[added][0]} ({ADDED[added][1]})" in text
    # model get: not "already there"; --force rebuilds the tree without it
    rb(project, "model", "get", "tree@latest", "-o", "deploy/tree", code=1)
    rb(project, "model", "get", "tree@latest", "-o", "deploy/tree", "--force")
    assert not (project / "deploy" / "tree" / added).exists()
    rebuilt = status(project, "tree@latest", "deploy/tree", code=0)
    # the tree's id is the one capture gave the run's output: the same manifest bytes
    assert rebuilt["actual_oid"] == rebuilt["expected"]["oid"]


def test_symlinks_and_special_files_in_a_tree_are_drift(deployed: Path) -> None:
    project = deployed
    tree = project / "deploy" / "tree"
    (tree / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(tree / "sub" / "pipe")
    (tree / "empty").mkdir()
    report = status(project, "tree@latest", "deploy/tree")
    assert [(d["path"], d["problem"], d["actual"]) for d in report["differences"]] == [
        ("empty", "extra", "directory"),
        ("passwd", "extra", "symlink"),
        ("sub/pipe", "extra", "fifo"),
    ]
    for p in ("passwd", "sub/pipe", "empty"):
        os.unlink(tree / p) if p != "empty" else (tree / p).rmdir()
    status(project, "tree@latest", "deploy/tree", code=0)

    # a symlink where a file is expected, even to the very same bytes
    (tree / "w.bin").chmod(0o644)
    os.replace(tree / "w.bin", project / "w.bin")
    (tree / "w.bin").symlink_to(project / "w.bin")
    report = status(project, "tree@latest", "deploy/tree")
    assert report["differences"] == [
        {"path": "w.bin", "problem": "type", "expected": "file", "actual": "symlink"}
    ]
    assert (
        "symlink where a file is expected: w.bin"
        in rb(project, "model", "status", "tree@latest", "deploy/tree", code=1).stdout
    )
    # a missing file; a file where a directory is expected (what is below not listed)
    (tree / "w.bin").unlink()
    (tree / "sub" / "config.json").chmod(0o644)
    (tree / "sub" / "config.json").unlink()
    (tree / "sub").rmdir()
    (tree / "sub").write_text("not a directory")
    report = status(project, "tree@latest", "deploy/tree")
    assert [
        (d["path"], d["problem"], d["expected"], d["actual"]) for d in report["differences"]
    ] == [
        ("sub", "type", "directory", "file"),
        ("w.bin", "missing", "file", None),
    ]
    rb(project, "model", "get", "tree@latest", "-o", "deploy/tree", "--force")
    status(project, "tree@latest", "deploy/tree", code=0)

    # the path itself a symlink to the right bytes: not followed, out of sync
    (project / "deploy" / "link.pkl").symlink_to(project / "deploy" / "model.pkl")
    link = status(project, "churn@latest", "deploy/link.pkl")
    assert link["actual_oid"] is None and link["differences"] == [
        {"path": ".", "problem": "type", "expected": "file", "actual": "symlink"}
    ]
    rb(project, "model", "get", "churn@latest", "-o", "deploy/link.pkl", code=1)
    rb(project, "model", "get", "churn@latest", "-o", "deploy/link.pkl", "--force")
    assert not (project / "deploy" / "link.pkl").is_symlink()
    status(project, "churn@latest", "deploy/link.pkl", code=0)


def test_a_fifo_path_is_refused_and_never_opened(deployed: Path) -> None:
    """Opening a FIFO blocks until a writer comes: status and get refuse it (exit 2)
    from its lstat; the 60 s timeout of ``rb`` fails the test if one hangs."""
    project = deployed
    os.mkfifo(project / "deploy" / "fifo")
    for args in (
        ("model", "status", "churn@latest", "deploy/fifo"),
        ("model", "status", "churn@latest", "deploy/fifo", "--json"),
        ("model", "get", "churn@latest", "-o", "deploy/fifo", "--force"),
    ):
        proc = runbase_cmd(*args, cwd=project, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "is a fifo, not a file or a directory" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(project / "deploy" / "fifo").st_mode)  # left as it was


def test_model_path_rewrites_a_tampered_copy(deployed: Path) -> None:
    import runbase

    project = deployed
    path = Path(runbase.model_path("churn@latest"))
    assert path.read_bytes() == b"weights v1" and path.name == "model.pkl"
    age(path)
    assert runbase.model_path("churn@latest") == str(path)  # checked (and cached, if any)
    path.chmod(0o644)
    overwrite_in_place(path, b"weights v2")
    path.chmod(0o444)
    again = Path(runbase.model_path("churn@latest"))
    assert again == path and again.read_bytes() == b"weights v1"

    tree = Path(runbase.model_path("tree@latest"))
    assert (tree / "w.bin").read_bytes() == b"tree weights"
    age(tree)
    assert runbase.model_path("tree@latest") == str(tree)
    (tree / ".env").write_text("TOKEN=x\n")
    (tree / "sub" / "config.json").chmod(0o644)
    overwrite_in_place(tree / "sub" / "config.json", b'{"layers": 4}')
    again = Path(runbase.model_path("tree@latest"))
    assert again == tree and not (tree / ".env").exists()
    assert (tree / "sub" / "config.json").read_bytes() == b'{"layers": 3}'
    assert project.is_dir()


def test_the_default_file_name_is_checked(deployed: Path) -> None:
    """A version's recorded path (a server's answer too) never names where to write
    beyond a plain file name: one helper for `model get` and `model_path`."""
    from runbase.records.modelfiles import default_name
    from runbase.remote.models import version_from_json

    def name_of(path: str | None, kind: str = "file") -> str:
        item = {"name": "churn", "version": "v0.0.1", "oid": "blake3:" + "0" * 64}
        return default_name(version_from_json({**item, "kind": kind, "path": path}))

    assert name_of("out/model.pkl") == "model.pkl"
    assert name_of("out/model.pkl", kind="dir") == "churn"
    for bad in (None, "", "out/..", "..", "out/.", "a/nul\x00x"):
        assert name_of(bad) == "churn", bad
    # the CLI's default is that name: `model get` without -o in another directory
    (deployed / "elsewhere").mkdir()
    proc = runbase_cmd("model", "get", "churn@latest", cwd=deployed / "elsewhere", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (deployed / "elsewhere" / "model.pkl").read_bytes() == b"weights v1"


def test_a_tree_with_symlinks_and_executables(project: Path) -> None:
    """A version whose manifest holds an executable and symlinks (a code tree's format):
    delivered, then in sync; a symlink to elsewhere and a missing one are differences."""
    from runbase.capture.manifest import put_manifest
    from runbase.records import registry
    from runbase.records.modelfiles import drift, materialize
    from runbase.store import Store

    store = Store.open(project / ".runbase", create=True)
    run_sh, conf = store.objects.put_bytes(b"#!/bin/sh\n"), store.objects.put_bytes(b"3\n")
    oid = put_manifest(
        store,
        [
            {"path": "bin/run.sh", "type": "x", "oid": run_sh, "size": 10},
            {"path": "conf/layers.txt", "type": "f", "oid": conf, "size": 2},
            {"path": "current", "type": "link", "target": "conf/layers.txt"},
        ],
    )
    source = registry.Source(oid, "dir", 12, None, None)
    registry.register(store, "tool", source, actor=registry.local_actor())
    version = registry.resolve_ref(store, "tool@latest")
    dest = project / "deploy" / "tool"
    assert materialize(store, version, str(dest))["written"] is True
    assert os.access(dest / "bin" / "run.sh", os.X_OK)
    assert os.readlink(dest / "current") == "conf/layers.txt"
    assert drift(store, "tool@latest", str(dest))["in_sync"] is True
    assert materialize(store, version, str(dest))["written"] is False

    (dest / "current").unlink()
    (dest / "current").symlink_to("/etc/passwd")
    report = drift(store, "tool@latest", str(dest))
    assert report["state"] == "no_version" and report["differences"] == [
        {
            "path": "current",
            "problem": "target",
            "expected": "conf/layers.txt",
            "actual": "/etc/passwd",
        }  # fmt: skip
    ]
    (dest / "current").unlink()
    assert drift(store, "tool@latest", str(dest))["differences"] == [
        {"path": "current", "problem": "missing", "expected": "symlink", "actual": None}
    ]
    materialize(store, version, str(dest), force=True)
    assert drift(store, "tool@latest", str(dest))["in_sync"] is True

    # many differences: the first 100 listed, the rest counted; the text shows 20
    from runbase.render.models import status_text

    for i in range(130):
        (dest / f"added{i:03}").write_text("x")
    report = drift(store, "tool@latest", str(dest))
    assert len(report["differences"]) == 100 and report["more_differences"] == 30
    assert report["differences"][0]["path"] == "added000"
    lines = status_text(report).splitlines()
    assert len(lines) == 22 and lines[-1] == "  and 110 more"
    store.close()
