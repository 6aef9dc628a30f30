"""Bytes that are not UTF-8 (issue 14, item 2; docs/security.md, "Bytes that are not
UTF-8"): an argument like ``--data $'caf\\xe9.csv'`` and file names with undecodable
bytes (read, written, tracked, untracked) are recorded losslessly, shown with U+FFFD,
restored as the same bytes, and never break this run or any later command. Real
``runbase run`` subprocesses in real git repos, a real SQLite store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from conftest import commit, runbase_cmd, write
from runbase.core import fsname

NAME = b"caf\xe9.csv"  # Latin-1 "café.csv": not UTF-8
FS_NAME = os.fsdecode(NAME)  # what Python hands over: "caf\udce9.csv"

TRAIN = """
import sys
import runbase

path = sys.argv[-1]  # bytes on the command line: str with a lone surrogate here
data = open(path).read()  # an input whose name is not UTF-8
with open(path + ".out", "w") as f:  # an output too
    f.write(data.upper())
for i in range(20):
    runbase.log(step=i, loss=1.0 / (i + 1))
print("trained on", ascii(path))
"""


def _show(project: Path, ref: str = "latest") -> dict:
    return json.loads(runbase_cmd("show", "--json", ref, cwd=project, check=True).stdout)


def test_non_utf8_argument_and_files_are_recorded_and_break_nothing(project: Path) -> None:
    write(project, "train.py", TRAIN)
    commit(project, "train")
    with open(os.path.join(os.fsencode(project), NAME), "wb") as f:
        f.write(b"a,b\n1,2\n")

    proc = runbase_cmd("run", "--", sys.executable, "train.py", "--data", FS_NAME, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "warning" not in proc.stderr, proc.stderr
    rec = _show(project)
    assert rec["status"] == "finished" and rec["exit_code"] == 0
    assert rec["metrics"]["loss"]["count"] == 20

    # the argument, its param and the files: stored text, the same bytes when decoded
    assert os.fsencode(fsname.decode(rec["command"][-1])) == NAME
    assert fsname.to_bytes(rec["params"]["data"].strip('"')) == NAME
    inputs = {fsname.to_bytes(f["path"]) for f in rec["inputs"]}
    outputs = {fsname.to_bytes(f["path"]) for f in rec["outputs"]}
    assert NAME in inputs and NAME + b".out" in outputs
    for f in rec["inputs"] + rec["outputs"]:
        f["path"].encode("utf-8")  # strict: valid Unicode, whatever the file name

    # shown with a replacement character, by every reader
    shown = runbase_cmd("show", cwd=project, check=True).stdout
    assert "caf\ufffd.csv" in shown
    assert runbase_cmd("ls", cwd=project, check=True).returncode == 0

    # a later run in the same store is unaffected (it used to fail in orphan recovery)
    later = runbase_cmd("run", "--", sys.executable, "-c", "print('later')", cwd=project)
    assert later.returncode == 0 and "later" in later.stdout, later.stderr
    assert "Traceback" not in later.stderr and "warning" not in later.stderr, later.stderr

    # the data checks out as the same bytes name
    out = project.parent / "co"
    runbase_cmd("checkout", rec["id"], "--data", "--into", str(out), cwd=project, check=True)
    assert NAME in os.listdir(os.fsencode(out))


def test_non_utf8_file_names_stay_in_the_code_snapshot(project: Path) -> None:
    """A tracked and an untracked file named with undecodable bytes: the snapshot
    keeps both (it used to drop the whole snapshot) and checkout restores the names."""
    tracked, untracked = b"tr\xe8s.py", b"brouillon-\xff.txt"
    root = os.fsencode(project)
    with open(os.path.join(root, tracked), "wb") as f:
        f.write(b"print('tracked')\n")
    commit(project, "tracked bytes")
    with open(os.path.join(root, untracked), "wb") as f:
        f.write(b"not yet committed\n")

    proc = runbase_cmd("run", "--", sys.executable, "-c", "print(1)", cwd=project)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    rec = _show(project)
    assert rec["code"]["tree"], rec["code"]
    assert rec["code"]["dirty"] and rec["code"]["patch"]  # the untracked file, as a patch

    out = project.parent / "restored"
    runbase_cmd("checkout", rec["id"], "--into", str(out), cwd=project, check=True)
    names = set(os.listdir(os.fsencode(out)))
    assert {tracked, untracked} <= names
    with open(os.path.join(os.fsencode(out), untracked), "rb") as f:
        assert f.read() == b"not yet committed\n"


def test_a_bad_row_of_an_older_version_breaks_no_command(project: Path) -> None:
    """A store an older runbase left behind: a run stuck ``running`` (owner gone) whose
    spool reports a non-UTF-8 file, and text that is not UTF-8 in a column (another
    tool, a damaged row). Every command still works; the stuck run is recovered."""
    ok = runbase_cmd("run", "--", sys.executable, "-c", "print(1)", cwd=project)
    assert ok.returncode == 0, ok.stderr
    db = project / ".runbase" / "runbase.db"
    conn = sqlite3.connect(db)
    (good,) = conn.execute("SELECT id FROM runs").fetchone()
    stuck = "0stuck0000000000"
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (good,)).fetchone()
    cols = [d[0] for d in conn.execute("SELECT * FROM runs").description]
    values = dict(zip(cols, row, strict=True))
    values.update(
        id=stuck,
        name="stuck",
        status="running",
        ended_at=None,
        owner_pid=2**22 - 7,
        owner_start="1",
        started_at=time.time() - 60,
        exit_code=None,
        logs_json=None,
    )
    marks = ", ".join("?" for _ in cols)
    conn.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({marks})", list(values.values()))
    # undecodable bytes stored as TEXT in a column every listing reads
    conn.execute("UPDATE runs SET name = CAST(x'636166e9' AS TEXT) WHERE id = ?", (good,))
    conn.commit()
    conn.close()
    # the stuck run's spool: a file event with a lone surrogate (as marshal keeps it)
    from runbase.core.spool import open_spool_file
    from runbase.tracking.tracker import _encode

    spool = project / ".runbase" / "spool" / stuck
    spool.mkdir(parents=True)
    fd = open_spool_file(str(spool))
    frame = _encode(
        [{"\x00k": "file", "\x00t": time.time(), "path": str(project / FS_NAME), "op": "w"}]
    )
    assert frame is not None
    os.write(fd, frame)
    os.close(fd)

    listed = runbase_cmd("ls", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    runs = {r["id"]: r for r in json.loads(listed.stdout)}
    assert runs[stuck]["status"] == "crashed"  # recovered, not stuck forever
    assert runs[good]["name"] == "caf\ufffd"  # read with a replacement character
    for args in (["ls"], ["show", good], ["show", stuck], ["logs", good]):
        proc = runbase_cmd(*args, cwd=project)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    later = runbase_cmd("run", "--", sys.executable, "-c", "print('later')", cwd=project)
    assert later.returncode == 0 and "Traceback" not in later.stderr, later.stderr


def test_stored_form_round_trips_every_byte_string() -> None:
    """The documented encoding (docs/run-record.md): lossless and unambiguous, plain
    UTF-8 unchanged, the private-use range a real name may hold included."""
    samples = [
        b"plain.csv",
        "caf\u00e9.csv".encode(),
        NAME,
        b"\xff\xfe\x80",
        "\uef80 real private use".encode(),
        b"\xee\xbe" + b"\xe9" + "\uefff".encode(),
        bytes(range(1, 256)),
    ]
    for raw in samples:
        stored = fsname.encode(os.fsdecode(raw))
        stored.encode("utf-8")  # strict
        assert fsname.to_bytes(stored) == raw
        assert os.fsencode(fsname.decode(stored)) == raw
        text = raw.decode("utf-8", "replace")
        if "\ufffd" not in text and not any("\uef80" <= c <= "\uefff" for c in text):
            assert stored == text  # valid UTF-8 is stored as it is
    assert fsname.display(fsname.encode(FS_NAME)) == "caf\ufffd.csv"


def test_surrogate_escapes_an_older_version_stored_reach_no_output_as_an_error(
    project: Path,
) -> None:
    """An older runbase wrote argv with ``json.dumps`` (``"caf\\udce9.csv"``): JSON
    that loads as a lone surrogate. `show --json`, `show` and the web API answer it in
    the stored form (not a traceback, not a 500)."""
    import asyncio

    import httpx

    from runbase.web.app import create_app

    runbase_cmd("run", "--", sys.executable, "-c", "print(1)", cwd=project, check=True)
    conn = sqlite3.connect(project / ".runbase" / "runbase.db")
    conn.execute("UPDATE runs SET command = ?", (json.dumps(["python", FS_NAME]),))
    conn.commit()
    conn.close()
    (run_id,) = [r["id"] for r in json.loads(runbase_cmd("ls", "--json", cwd=project).stdout)]

    proc = runbase_cmd("show", "--json", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert fsname.to_bytes(json.loads(proc.stdout)["command"][-1]) == NAME
    text = runbase_cmd("show", cwd=project, check=True).stdout
    assert "caf\ufffd.csv" in text

    async def get() -> httpx.Response:
        app = create_app(str(project / ".runbase"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get(f"/api/runs/{run_id}")

    r = asyncio.run(get())
    assert r.status_code == 200, r.text[:300]
    assert fsname.to_bytes(r.json()["command"][-1]) == NAME


def test_reproduce_reruns_the_same_bytes(project: Path) -> None:
    """`runbase reproduce` materializes the input under its bytes name and passes the
    argument as the original bytes: the re-run reads the same file."""
    write(project, "t.py", TRAIN.replace('with open(path + ".out", "w") as f:', "if 0:"))
    commit(project, "t")
    with open(os.path.join(os.fsencode(project), NAME), "wb") as f:
        f.write(b"a,b\n1,2\n")
    runbase_cmd("run", "--", sys.executable, "t.py", FS_NAME, cwd=project, check=True)
    proc = runbase_cmd("reproduce", "latest", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "trained on 'caf\\udce9.csv'" in proc.stdout  # the argument, as bytes
    runs = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert runs[0]["metrics"]["loss"]["count"] == 20


def test_text_a_store_cannot_hold_is_judged_by_one_check() -> None:
    """NUL (PostgreSQL) and lone surrogates (not UTF-8) are refused at every door by
    ``fsname.text_problem``: the bundle, the server's forms, the view spec; a program's
    media key is refused and its caption made storable with the same rule."""
    from pydantic import TypeAdapter, ValidationError

    from runbase.core import viewspec
    from runbase.errors import BundleError, UsageError
    from runbase.records import bundle
    from runbase.server.models import DbText
    from runbase.tracking import media

    assert fsname.text_problem("café") is None and fsname.storable("café")
    assert fsname.text_problem("a\x00b") == "contains a NUL character"
    assert fsname.text_problem("caf\udce9") == "is not valid Unicode (lone surrogate)"
    assert fsname.make_storable("a\x00b\ud800") == "ab?"
    for bad in ("a\x00b", "caf\udce9"):
        problem = fsname.text_problem(bad)
        assert problem is not None
        try:
            bundle._text(bad, "tags[0].value")
        except BundleError as e:
            assert problem in str(e)
        else:
            raise AssertionError("the bundle took it")
        try:
            TypeAdapter(DbText).validate_python(bad)
        except ValidationError as e:
            assert problem in str(e)
        else:
            raise AssertionError("the server's form took it")
        try:
            viewspec.check_spec({"version": 1, "where": bad})
        except UsageError as e:
            assert "spec.where" in str(e)
        else:
            raise AssertionError("the view spec took it")
        assert not media._good_key(bad, "image")
        assert fsname.storable(media._captions(bad, 1)[0] or "")
