"""Issue 14.1: nothing pulled can write outside its target.

Crafted code manifests (``../../x``, absolute, a symlink then a file "inside" it, NUL,
duplicates, ``.runbase/``, ``.git/``, backslash climbs) and run-file rows
(``data/../../../x``) are:

- pushed to a real `runbase server` subprocess, which refuses them with 422 naming the
  path (and accepts the untouched bundle);
- planted directly in a local store (objects and SQL rows written by hand), where
  `runbase checkout` and `runbase reproduce` refuse them, writing nothing at all;
- imported as a bundle (what `runbase pull` does) and refused before any row is written.

The writer itself never follows a symlink on disk: a target whose directory is a
symlink to elsewhere gets nothing written through it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sec_runkit import Made, clone, make_run, manifest_bytes, plant_input, plant_tree

from conftest import http_request, require, runbase_cmd, start_server
from runbase.core import ids
from runbase.core.safepath import SafeRoot, check_manifest, check_relpath, link_escapes
from runbase.errors import UnsafePathError
from runbase.records.bundle import export_run, import_run
from runbase.store import Store
from runbase.store.hashing import hash_bytes


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_run(tmp_path_factory.mktemp("made"))


def tree_cases(made: Made, outside: Path) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(name, manifest entries, the offending path the refusal must name)."""
    blob = made.code_oid()

    def f(path: str, kind: str = "x") -> dict[str, Any]:
        return {"path": path, "type": kind, "oid": blob, "size": 1}

    ok = f("train.py", "f")
    return [
        ("dotdot", [ok, f("../../evil.sh")], "../../evil.sh"),
        ("inner-dotdot", [ok, f("src/../../evil.sh")], "src/../../evil.sh"),
        ("absolute", [ok, f(str(outside / "abs.sh"))], str(outside / "abs.sh")),
        (
            "below-symlink",
            [ok, {"path": "lnk", "type": "link", "target": str(outside)}, f("lnk/evil.sh")],
            "lnk/evil.sh",
        ),
        ("nul", [ok, f("a\x00b.sh")], "a\x00b.sh"),
        ("duplicate", [ok, f("train.py")], "train.py"),
        ("store", [ok, f(".runbase/FORMAT", "f")], ".runbase/FORMAT"),
        ("git-hooks", [ok, f(".git/hooks/post-checkout")], ".git/hooks/post-checkout"),
        ("git-case", [ok, f(".GIT/hooks/post-checkout")], ".GIT/hooks/post-checkout"),
        ("backslash", [ok, f("..\\..\\evil.sh")], "..\\..\\evil.sh"),
        ("empty-part", [ok, f("a//b.sh")], "a//b.sh"),
    ]


FILE_CASES = [
    ("file-dotdot", "data/../../../evil.csv"),
    ("file-store", ".runbase/runbase.db"),
    ("file-git", ".git/config"),
    ("file-dot", "./data/in.csv"),
]


def _shown(path: str) -> str:
    return repr(path)[1:-1]


def _files_outside(base: Path, target: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``base`` except in ``target`` and the store's own database and
    temp files (which a read may touch): (size, mtime) by path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == target:
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            if "runbase.db" in name or "/tmp/" in p or "/spool/" in p:
                continue
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


# -- the checks themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../x", "a/../../x", "/etc/passwd", "", "a//b", "a/./b", "a/", ".", "x\x00y",
     ".runbase/objects/ab", ".git/hooks/pre-commit", "sub/.git/config", ".Git./x",
     "..\\x", "a\\..\\..\\x", "C:\\x", "C:x"],
)  # fmt: skip
def test_relpath_refused(path: str) -> None:
    with pytest.raises(UnsafePathError) as e:
        check_relpath(path)
    assert e.value.path == path and _shown(path) in str(e.value)


@pytest.mark.parametrize(
    "path", ["a", "src/train.py", "a b/c.d", "x..y", "..x/y", "a\\b.txt", "é/ü"]
)
def test_relpath_kept(path: str) -> None:
    assert check_relpath(path) == path


def test_manifest_structure_checked() -> None:
    oid = hash_bytes(b"x")
    good = [
        {"path": "a/b.py", "type": "f", "oid": oid},
        {"path": "l", "type": "link", "target": "a"},
    ]
    assert check_manifest(good) == good
    for bad in (
        [{"path": "a", "type": "f", "oid": oid}, {"path": "a/b", "type": "f", "oid": oid}],
        [{"path": "a", "type": "link", "target": "x"}, {"path": "a/b", "type": "f", "oid": oid}],
        [{"path": "a/b/c", "type": "f", "oid": oid}, {"path": "a", "type": "link", "target": "x"}],
        [{"path": "d/x", "type": "f", "oid": oid}, {"path": "d/..", "type": "f", "oid": oid}],
        [{"path": "d/x", "type": "f", "oid": oid}, {"path": "d/a\x00", "type": "f", "oid": oid}],
        [{"path": "d/x", "type": "f", "oid": oid}, {"path": "d/.git", "type": "f", "oid": oid}],
        [{"path": "a", "type": "f", "oid": "nope"}],
        [{"path": "a", "type": "dev", "oid": oid}],
        [{"path": "a", "type": "link", "target": ""}],
        {"a": 1},
    ):
        with pytest.raises(UnsafePathError):
            check_manifest(bad)
    assert link_escapes("a/l", "../../x") and link_escapes("l", "/etc")
    assert not link_escapes("a/l", "../b") and not link_escapes("l", "a/../b")


def test_writer_never_follows_a_symlink_on_disk(tmp_path: Path) -> None:
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (target / "data").symlink_to(outside)
    root = SafeRoot(target)
    with pytest.raises(UnsafePathError, match="symlink"), root.create("data/x.sh") as fd:
        os.write(fd, b"#!/bin/sh\n")
    with pytest.raises(UnsafePathError, match="outside"):
        root.symlink("l2", "../../etc")
    (target / "f").write_text("a file")
    with pytest.raises(UnsafePathError, match="not a directory"), root.create("f/x") as fd:
        pass
    assert list(outside.iterdir()) == []
    assert {p.name for p in target.iterdir()} == {"data", "f"}  # no temp file left
    # a final symlink is replaced, never written through
    (target / "out").symlink_to(outside / "victim")
    with root.create("out") as fd:
        os.write(fd, b"new")
    assert not (target / "out").is_symlink() and (target / "out").read_bytes() == b"new"
    assert not (outside / "victim").exists()


# -- planted in a local store: checkout and reproduce refuse, writing nothing -------------


@pytest.fixture
def victim(made: Made, tmp_path: Path) -> Iterator[tuple[Made, Path, Path]]:
    mine = clone(made, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    yield mine, tmp_path / "target", outside


def _refused(mine: Made, target: Path, outside: Path, path: str, base: Path) -> None:
    before = _files_outside(base, target)
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and _shown(path) in r.stderr, r.stderr
    assert not target.exists() or list(target.iterdir()) == []  # refused before writing
    r = runbase_cmd("reproduce", mine.run_id, cwd=mine.root)
    assert r.returncode != 0 and "reproduced" not in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and _shown(path) in r.stderr, r.stderr
    assert list(outside.iterdir()) == []
    assert _files_outside(base, target) == before
    assert not (mine.store / "reproduce").exists() or all(
        not any(d.iterdir()) for d in (mine.store / "reproduce").iterdir()
    )


@pytest.mark.parametrize("case", range(11))
def test_planted_manifest_refused(
    victim: tuple[Made, Path, Path], tmp_path: Path, case: int
) -> None:
    mine, target, outside = victim
    name, entries, path = tree_cases(mine, outside)[case]
    plant_tree(mine, entries)
    _refused(mine, target, outside, path, tmp_path)


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_planted_run_file_refused(
    victim: tuple[Made, Path, Path], tmp_path: Path, case: tuple[str, str]
) -> None:
    mine, target, outside = victim
    plant_input(mine, case[1], mine.put_object(b"#!/bin/sh\necho owned\n"))
    _refused(mine, target, outside, case[1], tmp_path)


def test_planted_dir_input_manifest_refused(
    victim: tuple[Made, Path, Path], tmp_path: Path
) -> None:
    mine, target, outside = victim
    blob = mine.put_object(b"payload")
    tree = mine.put_object(manifest_bytes([{"path": "../../../evil", "type": "f", "oid": blob}]))
    plant_input(mine, "data/dir", tree, kind="dir")
    _refused(mine, target, outside, "../../../evil", tmp_path)


def test_escaping_symlink_alone_is_not_created(victim: tuple[Made, Path, Path]) -> None:
    """A project may link to its data elsewhere: recorded, but a restore creates only
    links that stay in the tree, and says which it left out."""
    mine, target, outside = victim
    entries = mine.tree() + [
        {"path": "datalink", "type": "link", "target": str(outside)},
        {"path": "inner", "type": "link", "target": "data"},
    ]
    plant_tree(mine, entries)
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
    assert r.returncode == 0, r.stderr
    assert "datalink" in r.stdout + r.stderr
    assert not os.path.lexists(target / "datalink")
    assert os.readlink(target / "inner") == "data"
    assert (target / "train.py").is_file() and (target / "data" / "in.csv").is_file()


def test_target_with_a_symlinked_directory(victim: tuple[Made, Path, Path]) -> None:
    """A target whose data/ is a symlink (planted, or the user's): the run's data/in.csv
    is not written through it, and the checkout says so."""
    mine, target, outside = victim
    target.mkdir()
    (target / "data").symlink_to(outside)
    r = runbase_cmd("checkout", mine.run_id, "--into", str(target), cwd=mine.root)
    assert r.returncode == 0, r.stderr
    assert "data/in.csv" in r.stdout + r.stderr
    assert list(outside.iterdir()) == []
    assert (target / "train.py").is_file()


def test_imported_bundle_refused(victim: tuple[Made, Path, Path]) -> None:
    """What `runbase pull` does once the objects are here: the manifest is read and its
    paths checked before any row is written."""
    mine, _, outside = victim
    store = Store.open(mine.store)
    try:
        bundle = export_run(store, mine.run_id)
        for name, entries, path in tree_cases(mine, outside):
            b = _fresh(bundle)
            code = json.loads(b["run"]["code_json"])
            code["tree"] = mine.put_object(manifest_bytes(entries))
            b["run"]["code_json"] = json.dumps(code)
            with pytest.raises(UnsafePathError) as e:
                import_run(store, b)
            assert e.value.path == path, name
            assert store.db.query_one("SELECT 1 FROM runs WHERE id = ?", (b["run"]["id"],)) is None
        for _, path in FILE_CASES:
            b = _fresh(bundle)
            b["run_files"][0]["path"] = path
            with pytest.raises(UnsafePathError) as e:
                import_run(store, b)
            assert e.value.path == path
        import_run(store, _fresh(bundle))  # the untouched bundle imports
    finally:
        store.close()


def _fresh(bundle: dict[str, Any]) -> dict[str, Any]:
    b = copy.deepcopy(bundle)
    new = ids.new_run_id()
    b["run"]["id"] = new
    for table in ("params", "tags", "metrics", "metric_chunks", "run_files"):
        for row in b[table]:
            row["run_id"] = new
    return b


# -- pushed to a real server: 422 naming the path ----------------------------------------


def test_server_refuses_crafted_pushes(made: Made, tmp_path: Path) -> None:
    require("fastapi")
    from runbase.server import admin

    db, objects = str(tmp_path / "server.db"), str(tmp_path / "objects")
    admin.migrate(db, objects)
    token = admin.add_user(db, "mallory").secret
    server = start_server(db, objects, log_dir=tmp_path)
    api = "/p/default/api"
    try:

        def put_object(data: bytes) -> str:
            oid = hash_bytes(data)
            status, body = http_request(
                server.url, "PUT", f"{api}/objects/{oid}", token, data, "application/octet-stream"
            )
            assert status == 201, body
            return oid

        def push(bundle: dict[str, Any]) -> tuple[int, Any]:
            rid = bundle["run"]["id"]
            data = json.dumps(bundle).encode()
            return http_request(
                server.url, "PUT", f"{api}/runs/{rid}/bundle", token, data, "application/json"
            )

        store = Store.open(made.store)
        try:
            bundle = export_run(store, made.run_id)
            for oid in bundle["objects"]:
                put_object(store.objects.get_bytes(oid))
        finally:
            store.close()
        outside = tmp_path / "outside"
        for name, entries, path in tree_cases(made, outside):
            b = _fresh(bundle)
            code = json.loads(b["run"]["code_json"])
            code["tree"] = put_object(manifest_bytes(entries))
            b["run"]["code_json"] = json.dumps(code)
            b["objects"][code["tree"]] = "code"
            status, body = push(b)
            assert status == 422, (name, status, body)
            assert _shown(path) in body["detail"], (name, body)
        for name, path in FILE_CASES:
            b = _fresh(bundle)
            b["run_files"][0]["path"] = path
            status, body = push(b)
            assert status == 422, (name, status, body)
            assert _shown(path) in body["detail"], (name, body)
        # the untouched run is accepted: the refusals are about the paths
        status, body = push(_fresh(bundle))
        assert status == 200, body
    finally:
        server.stop()


def test_a_store_inside_the_target_is_never_written(tmp_path: Path) -> None:
    """A store kept in the target under another name than .runbase is off limits too."""
    target = tmp_path / "target"
    (target / "st" / "objects").mkdir(parents=True)
    root = SafeRoot(target, [str(target / "st" / p) for p in ("objects", "runbase.db")])
    for rel in ("st/objects/ab/cd", "st/runbase.db"):
        with pytest.raises(UnsafePathError, match="store"), root.create(rel) as fd:
            os.write(fd, b"x")
    with root.create("st/notes.txt") as fd:  # the rest of that directory is the user's
        os.write(fd, b"ok")
    assert sorted(p.name for p in (target / "st").iterdir()) == ["notes.txt", "objects"]
    assert list((target / "st" / "objects").iterdir()) == []
