"""A full disk and a read-only store (issue 14, item 10; docs/security.md, "Disk full
and read-only stores"). Real file systems: a small tmpfs that fills up, and a
read-only bind mount (tests run as root, for whom ``chmod a-w`` stops nothing). Both
need mount rights; without them these tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GIT, WAIT_FOR_RECORD, runbase_cmd, write


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here (needs root with CAP_SYS_ADMIN): {proc.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs holding a git project (and so its store)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt))
    try:
        subprocess.run([*GIT, "init", "-q", str(mnt)], check=True)
        subprocess.run(
            [*GIT, "-C", str(mnt), "commit", "-q", "--allow-empty", "-m", "i"], check=True
        )
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


FILL = (
    WAIT_FOR_RECORD
    + """
import sys
import runbase

for i in range(50):
    runbase.log(step=i, x=float(i))
wait_for_record(  # in the store before the disk fills
    lambda rec: rec["metrics"].get("x", {}).get("count") == 50, "the 50 points"
)
try:
    with open("big.bin", "wb") as f:
        while True:
            f.write(b"\\0" * 65536)
except OSError as e:
    print("full:", e.strerror, flush=True)
sys.exit(3)
"""
)


def test_a_full_disk_keeps_the_exit_code_and_says_what_was_not_saved(small_disk: Path) -> None:
    write(small_disk, "fill.py", FILL)
    proc = runbase_cmd("run", "--", sys.executable, "fill.py", cwd=small_disk)
    assert proc.returncode == 3, proc.stderr  # passed through
    assert "No space left" in proc.stdout
    assert "Traceback" not in proc.stderr
    # said once (the run's one store warning), not hidden
    assert proc.stderr.count("runbase: warning") == 1 and "cannot be written" in proc.stderr

    # while the disk is full, reading the store still works
    listed = runbase_cmd("ls", "--json", cwd=small_disk)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr

    (small_disk / "big.bin").unlink()  # space again: the next command records the end
    [run] = json.loads(runbase_cmd("ls", "--json", cwd=small_disk, check=True).stdout)
    assert run["status"] == "failed" and run["exit_code"] == 3  # not "crashed", not null
    assert run["metrics"]["x"]["count"] == 50  # what reached the spool before the disk filled
    rec = json.loads(runbase_cmd("show", "--json", cwd=small_disk, check=True).stdout)
    assert rec["error"] and "could not" in rec["error"]  # what was not saved, recorded


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_only_store_can_be_read_and_says_so(project: Path, tmp_path: Path) -> None:
    write(project, "t.py", "import runbase\nfor i in range(5):\n    runbase.log(step=i, y=i / 2)\n")
    for _ in range(2):
        runbase_cmd("run", "--", sys.executable, "t.py", cwd=project, check=True)
    # a run whose process is gone: a writable store would recover it as crashed
    db = project / ".runbase" / "runbase.db"
    conn = sqlite3.connect(db)
    (a, b) = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY started_at")]
    conn.execute(
        "UPDATE runs SET status = 'running', owner_pid = ?, owner_start = '1', "
        "ended_at = NULL WHERE id = ?",
        (2**22 - 7, a),
    )
    conn.commit()
    conn.close()
    before = _digest(db)

    ro = tmp_path / "ro"
    ro.mkdir()
    _mount("--bind", str(project), str(ro))
    try:
        _mount("-o", "remount,bind,ro", str(ro))
        with pytest.raises(OSError):
            (ro / "probe").write_text("")  # really read-only, even for root
        for args in (
            ["ls"],
            ["show", b],
            ["show", "--json", a],
            ["logs", b],
            ["diff", a, b],
            ["metrics", b, "y"],
        ):
            proc = runbase_cmd(*args, cwd=ro)
            assert proc.returncode == 0, (args, proc.stderr)
            assert "Traceback" not in proc.stderr
            assert proc.stderr.count("read-only") == 1, (args, proc.stderr)  # said once
        runs = json.loads(runbase_cmd("ls", "--json", cwd=ro, check=True).stdout)
        assert {r["id"]: r["status"] for r in runs} == {a: "running", b: "finished"}
        assert runs[0]["metrics"]["y"]["count"] == 5

        # a command that writes says why it cannot, without a traceback
        run = runbase_cmd("run", "--", sys.executable, "-c", "print('ran')", cwd=ro)
        assert run.returncode != 0 and "read-only" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
        assert "ran" not in run.stdout  # refused before the command started
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert _digest(db) == before  # nothing was written to it
    assert os.path.exists(db)


def test_recovery_records_the_outcome_a_supervisor_left_and_trusts_nothing(
    project: Path,
) -> None:
    """The outcome file a supervisor leaves when the database cannot take the run's end
    is recorded by the next command; a malformed one is no outcome (the run crashed)."""
    runbase_cmd("run", "--", sys.executable, "-c", "print(1)", cwd=project, check=True)
    db = project / ".runbase" / "runbase.db"
    conn = sqlite3.connect(db)
    cols = [d[0] for d in conn.execute("SELECT * FROM runs").description]
    row = dict(zip(cols, conn.execute("SELECT * FROM runs").fetchone(), strict=True))
    outcomes = {
        "0good00000000000": {"status": "failed", "exit_code": 7, "ended_at": row["started_at"] + 1},
        "0bad000000000000": {"status": "finished", "exit_code": "rm -rf /", "ended_at": 1e300},
        "0junk00000000000": "not json at all",
    }
    for run_id, outcome in outcomes.items():
        values = {
            **row,
            "id": run_id,
            "status": "running",
            "exit_code": None,
            "ended_at": None,
            "owner_pid": 2**22 - 7,
            "owner_start": "1",
            "error": None,
        }
        marks = ", ".join("?" for _ in cols)
        conn.execute(
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({marks})", list(values.values())
        )
        spool = project / ".runbase" / "spool" / run_id
        spool.mkdir(parents=True)
        text = json.dumps(outcome) if isinstance(outcome, dict) else outcome
        (spool / "outcome").write_text(text.ljust(2048))
    conn.commit()
    conn.close()

    runs = {
        r["id"]: r for r in json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    }
    assert runs["0good00000000000"]["status"] == "failed"
    assert runs["0good00000000000"]["exit_code"] == 7
    for bad in ("0bad000000000000", "0junk00000000000"):
        assert runs[bad]["status"] == "crashed" and runs[bad]["exit_code"] is None
