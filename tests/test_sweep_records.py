"""Sweeps at scale, the records (issue 21): schema 9 (runs.executor_json, the sweeps
table), records.sweeps, the statuses pruned and lost, the run record's ``executor``, a
pre-assigned run id, and run bundles carrying both to another store and a team server.
Real SQLite stores, the real ``runbase`` CLI in subprocesses, a real team server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import runbase_cmd, write
from runbase.core import executorinfo, ids
from runbase.errors import BundleError, StoreError, UsageError
from runbase.records import lifecycle, sweeps
from runbase.records.bundle import export_run, import_run
from runbase.records.external import STATUS_TO_MLFLOW
from runbase.records.record import build_record
from runbase.render.show import render_record
from runbase.store import Store
from runbase.store.schema import SCHEMA_VERSION, STORE_SCHEMA
from test_bundle import dst  # noqa: F401 - a fixture: SQLite, and PostgreSQL as a server has it
from test_publish import TeamServer, _login, team  # noqa: F401 - team is a fixture

PY = sys.executable
SPEC = {"command": ["python", "train.py"], "search": "tpe", "trials": 8, "on": "local"}
TRAIN = "import runbase\nrunbase.log(step=0, loss=0.5)\nprint('trained')\n"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(str(tmp_path / "store"), create=True)
    yield s
    s.close()


def _run(store: Store, sweep_id: str | None = None, index: int | None = None, **kw: Any) -> str:
    tags = {"sweep_index": str(index)} if index is not None else None
    return lifecycle.create_run(
        store, command=["python", "t.py"], mode="run", sweep_id=sweep_id, tags=tags, **kw
    )


def _status(store: Store, run_id: str) -> tuple[Any, ...]:
    row = store.db.query_one("SELECT status, ended_at, error FROM runs WHERE id = ?", (run_id,))
    assert row is not None
    return tuple(row)


# -- schema 9 ---------------------------------------------------------------------------------


def test_a_schema_8_store_migrates_and_its_runs_have_no_executor(tmp_path: Path) -> None:
    root = tmp_path / "old"
    Store.open(str(root), create=True).close()  # the store's directories
    (root / "runbase.db").unlink()
    conn = sqlite3.connect(root / "runbase.db", isolation_level=None)
    for stmt in STORE_SCHEMA.create("sqlite", version=8):
        conn.execute(stmt)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '8')")
    conn.execute(
        "INSERT INTO runs (id, name, status, started_at, command, mode) "
        "VALUES ('0000000000000000', 'old', 'finished', 1.0, '[\"x\"]', 'run')"
    )
    conn.close()
    s = Store.open(str(root))
    try:
        assert s.db.schema_version() == SCHEMA_VERSION == 9
        rec = build_record(s, "0000000000000000")
        assert rec["executor"] is None and rec["status"] == "finished"
        sweeps.create_sweep(s, "sw", SPEC)
        assert sweeps.get_sweep(s, "sw") is not None
    finally:
        s.close()
    conn = sqlite3.connect(root / "runbase.db")
    columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    sweep_columns = [r[1] for r in conn.execute("PRAGMA table_info(sweeps)")]
    conn.close()
    assert "executor_json" in columns
    assert sweep_columns == list(STORE_SCHEMA.tables_at()[-1].columns)


# -- records.sweeps ---------------------------------------------------------------------------


def test_create_get_update_list_sweeps(dst: Store) -> None:  # noqa: F811 - the fixture
    store = dst
    study = {"name": "s1", "storage": "local"}
    sweeps.create_sweep(store, "sw1", SPEC, study)
    sweeps.create_sweep(store, "sw2", {"command": ["b"]})
    one = sweeps.get_sweep(store, "sw1")
    assert one is not None
    assert one["status"] == "running" and one["spec"] == SPEC and one["study"] == study
    assert one["best_run"] is None and one["host"] and one["created_at"] == one["updated_at"]
    assert sweeps.get_sweep(store, "nope") is None
    with pytest.raises(UsageError, match="exists already"):
        sweeps.create_sweep(store, "sw1", SPEC)
    with pytest.raises(UsageError, match="JSON object"):
        sweeps.create_sweep(store, "sw3", ["not", "a", "spec"])  # type: ignore[arg-type]

    best = _run(store, "sw1", 1)
    sweeps.update_sweep(store, "sw1", status="finished", best_run=best)
    sweeps.update_sweep(store, "sw1", study={"name": "s1", "storage": "postgresql://u@h/db"})
    one = sweeps.get_sweep(store, "sw1")
    assert one is not None and one["status"] == "finished" and one["best_run"] == best
    assert one["study"]["storage"] == "postgresql://u@h/db"
    assert one["updated_at"] >= one["created_at"]
    with pytest.raises(UsageError, match="status is one of"):
        sweeps.update_sweep(store, "sw1", status="done")
    with pytest.raises(UsageError, match="no sweep"):
        sweeps.update_sweep(store, "nope", status="failed")

    assert [s["id"] for s in sweeps.list_sweeps(store)] == ["sw2", "sw1"]  # newest first
    assert [s["id"] for s in sweeps.list_sweeps(store, limit=1)] == ["sw2"]


def test_a_joining_drivers_copy_keeps_the_sweeps_author_and_start(store: Store) -> None:
    # a driver joining from another machine (runbase sweep --join) makes its store's row
    # with the first driver's user, host and start; it drives that copy itself
    sweeps.create_sweep(store, "sw", SPEC, created_at=1000.0, origin=("alice", "gpu-1"))
    rec = sweeps.get_sweep(store, "sw")
    assert rec is not None and rec["user"] == "alice" and rec["host"] == "gpu-1"
    assert rec["created_at"] == 1000.0 and rec["updated_at"] > 1000.0
    assert rec["status"] == "running" and rec["owner"]["pid"] == os.getpid()
    from runbase.capture.env import user_and_host

    assert rec["owner"]["host"] == user_and_host()[1]  # its driver is here, alive
    sweeps.create_sweep(store, "sw2", SPEC, origin=(None, None))  # unknown: this one's
    assert sweeps.get_sweep(store, "sw2")["host"] == user_and_host()[1]  # type: ignore[index]


def test_a_driver_that_lets_go_leaves_its_sweep_running(store: Store) -> None:
    # a driver that ends while other drivers of its study run (runbase sweep --join)
    sweeps.create_sweep(store, "sw", SPEC)
    other = {"pid": 1, "host": "elsewhere", "heartbeat_at": time.time()}
    sweeps.create_sweep(store, "theirs", SPEC)
    store.db.execute(
        "UPDATE sweeps SET owner_pid = ?, owner_host = ?, heartbeat_at = ? WHERE id = ?",
        (other["pid"], other["host"], other["heartbeat_at"], "theirs"),
    )
    sweeps.release(store, "sw")
    sweeps.release(store, "theirs")  # not this process's claim: kept
    rec = sweeps.get_sweep(store, "sw")
    assert rec is not None and rec["owner"] is None and rec["status"] == "running"
    assert sweeps.get_sweep(store, "theirs")["owner"] == other  # type: ignore[index]


def test_trial_runs_in_trial_order(store: Store) -> None:
    sweeps.create_sweep(store, "sw", SPEC)
    third, first, second = _run(store, "sw", 3), _run(store, "sw", 1), _run(store, "sw", 2)
    _run(store, "other", 1)
    assert [r["id"] for r in sweeps.trial_runs(store, "sw")] == [first, second, third]
    assert sweeps.trial_runs(store, "nope") == []


@pytest.mark.parametrize(
    ("column", "value"),
    [("spec_json", "[1, 2]"), ("spec_json", "{not json"), ("study_json", '"text"')],
)
def test_a_damaged_sweep_row_is_a_store_error(store: Store, column: str, value: str) -> None:
    sweeps.create_sweep(store, "sw", SPEC, {"name": "n", "storage": "local"})
    store.db.execute(f"UPDATE sweeps SET {column} = ? WHERE id = 'sw'", (value,))
    with pytest.raises(StoreError, match=f"sweep sw is damaged: its {column}"):
        sweeps.get_sweep(store, "sw")
    with pytest.raises(StoreError):
        sweeps.list_sweeps(store)


# -- statuses pruned and lost -----------------------------------------------------------------


def test_pruned_and_lost_are_terminal_and_mapped_to_mlflow() -> None:
    from runbase.core.statuses import STATUSES, is_terminal

    assert {"pruned", "lost"} <= set(STATUSES)
    assert is_terminal("pruned") and is_terminal("lost")
    assert STATUS_TO_MLFLOW["pruned"] == "KILLED" and STATUS_TO_MLFLOW["lost"] == "FAILED"
    assert set(STATUS_TO_MLFLOW) == set(STATUSES)


def test_set_run_status_rules(store: Store) -> None:
    ended = {s: _run(store) for s in ("finished", "failed", "killed", "crashed")}
    for status, run_id in ended.items():
        assert lifecycle.finalize(store, run_id, status, exit_code=0, ended_at=100.0)
    assert not sweeps.set_run_status(store, ended["finished"], "pruned")
    assert not sweeps.set_run_status(store, ended["failed"], "lost")
    assert _status(store, ended["finished"])[0] == "finished"
    assert _status(store, ended["failed"])[0] == "failed"
    assert sweeps.set_run_status(store, ended["killed"], "pruned")
    assert _status(store, ended["killed"])[:2] == ("pruned", 100.0)  # its end time stays
    assert sweeps.set_run_status(store, ended["crashed"], "lost", note="node 1a2b died")
    assert _status(store, ended["crashed"]) == ("lost", 100.0, "node 1a2b died")
    assert not sweeps.set_run_status(store, ended["crashed"], "pruned")  # already marked
    assert not sweeps.set_run_status(store, "0000000000000000", "pruned")  # no such run
    with pytest.raises(UsageError, match="pruned or lost"):
        sweeps.set_run_status(store, ended["killed"], "finished")


def test_the_pruners_mark_after_the_command_ended_is_given_back(store: Store) -> None:
    """The mark/SIGTERM race, in the order it happens: the command ends by itself, the
    pruner marks the run while its supervisor still records it (the run row still says
    running), the supervisor finalizes it: pruned stays, with the supervisor's end time
    before the mark; the sweep gives back finished. A run that ended after the mark (the
    signal stopped it), or by a signal, or whose supervisor died before storing its logs,
    stays pruned."""
    note = "stopped by the sweep's median pruner"
    raced, stopped, signalled, unfinished = (_run(store) for _ in range(4))
    for run_id in (raced, stopped, signalled, unfinished):
        assert sweeps.set_run_status(store, run_id, "pruned", note)  # marked at t=200
    assert lifecycle.finalize(store, raced, "finished", exit_code=0, ended_at=199.0)
    assert lifecycle.finalize(store, stopped, "finished", exit_code=0, ended_at=201.0)
    assert lifecycle.finalize(store, signalled, "killed", exit_signal=15, ended_at=199.0)
    for run_id in (raced, stopped, signalled, unfinished):
        assert _status(store, run_id)[0] == "pruned"
    assert sweeps.unprune_if_ended_before(store, raced, 200.0, note)
    assert _status(store, raced) == ("finished", 199.0, None)
    for run_id in (stopped, signalled, unfinished):
        assert not sweeps.unprune_if_ended_before(store, run_id, 200.0, note)
        assert _status(store, run_id)[0] == "pruned"
    assert not sweeps.unprune_if_ended_before(store, raced, 200.0, note)  # once


def test_a_run_pruned_while_running_keeps_the_status_and_gets_its_logs(store: Store) -> None:
    run_id = _run(store)
    assert sweeps.set_run_status(store, run_id, "pruned")
    status, ended, _ = _status(store, run_id)
    assert status == "pruned" and ended is not None
    # its supervisor, SIGTERMed by the executor, finalizes it: the exit status and the
    # logs are recorded, the status stays
    assert lifecycle.finalize(store, run_id, "killed", exit_signal=15)
    row = store.db.query_one(
        "SELECT status, exit_signal, logs_json FROM runs WHERE id = ?", (run_id,)
    )
    assert row is not None and row[0] == "pruned" and row[1] == 15 and row[2] is not None
    assert not lifecycle.finalize(store, run_id, "killed")  # only once
    assert build_record(store, run_id)["status"] == "pruned"


def test_a_lost_run_whose_supervisor_died_is_recovered_keeping_its_status(store: Store) -> None:
    gone = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True)
    run_id = _run(store, owner_pid=int(gone.stdout))  # its supervisor died with the node
    assert sweeps.set_run_status(store, run_id, "lost", note="node 1a2b died")
    assert lifecycle.recover_orphans(store) == [run_id]
    row = store.db.query_one("SELECT status, logs_json, error FROM runs WHERE id = ?", (run_id,))
    assert row is not None and row[0] == "lost" and row[1] is not None
    assert row[2] == "node 1a2b died"  # the sweep's note says why
    assert not store.spool_dir(run_id).exists()
    assert lifecycle.recover_orphans(store) == []


def test_sweep_index_is_strict() -> None:
    for good, n in (("0", 0), ("12", 12), ("-5", -5), (7, 7), ("9" * 18, int("9" * 18))):
        assert sweeps.sweep_index(good) == n, good
    for bad in ("²", "--5", "+3", " 1", "1 ", "", "1.0", "0x1", "9" * 19, True, 1.0, None, [1]):
        assert sweeps.sweep_index(bad) is None, bad


def test_trial_runs_put_runs_with_a_bad_index_last(store: Store) -> None:
    sweeps.create_sweep(store, "sw", SPEC)
    odd = [
        lifecycle.create_run(
            store, command=["t"], mode="run", sweep_id="sw", tags={"sweep_index": t}
        )
        for t in ("²", "--5", "9" * 30)
    ]
    first, second = _run(store, "sw", 2), _run(store, "sw", 1)
    assert [r["id"] for r in sweeps.trial_runs(store, "sw")] == [second, first, *odd]


_DRIVER = """
import sys
from runbase.records import sweeps
from runbase.store import Store
store = Store.open(sys.argv[1])
sweeps.create_sweep(store, "sw", {"command": ["python", "train.py"]})
store.close()
print("driving", flush=True)
sys.stdin.read()  # until the test closes it
"""


def test_a_sweep_driven_by_a_live_process_cannot_be_claimed(store: Store) -> None:
    driver = subprocess.Popen(
        [PY, "-c", _DRIVER, str(store.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert driver.stdout is not None and driver.stdout.readline() == "driving\n"
        got = sweeps.get_sweep(store, "sw")
        assert got is not None and got["status"] == "running"
        assert got["owner"]["pid"] == driver.pid and got["owner"]["heartbeat_at"] is not None
        with pytest.raises(UsageError, match=f"sweep sw is being driven by pid {driver.pid} on"):
            sweeps.claim(store, "sw")
    finally:
        assert driver.stdin is not None
        driver.stdin.close()
        driver.wait()
    # its driver is gone without a word (as after a SIGKILL): the row still says running
    listed = sweeps.list_sweeps(store)
    assert listed[0]["status"] == "interrupted"
    assert sweeps.get_sweep(store, "sw")["status"] == "interrupted"  # type: ignore[index]
    sweeps.claim(store, "sw")  # a resume takes it over
    got = sweeps.get_sweep(store, "sw")
    assert got is not None and got["status"] == "running" and got["owner"]["pid"] == os.getpid()
    sweeps.claim(store, "sw")  # claiming one's own sweep again is fine
    with pytest.raises(UsageError, match="no sweep nope"):
        sweeps.claim(store, "nope")


def test_a_sweep_driven_on_another_host_lives_by_its_heartbeat(store: Store) -> None:
    sweeps.create_sweep(store, "sw", SPEC)
    store.db.execute("UPDATE sweeps SET owner_host = 'gpu-7', owner_pid = 1, heartbeat_at = ?",
                     (time.time() - 30,))  # fmt: skip
    with pytest.raises(UsageError, match=r"pid 1 on gpu-7 \(heartbeat 3\ds ago\)"):
        sweeps.claim(store, "sw")
    assert sweeps.get_sweep(store, "sw")["status"] == "running"  # type: ignore[index]
    sweeps.beat(store, "sw")  # (beat is what the driver does; here it stands for gpu-7's)
    beat = sweeps.get_sweep(store, "sw")["owner"]["heartbeat_at"]  # type: ignore[index]
    assert beat >= time.time() - 5
    store.db.execute("UPDATE sweeps SET heartbeat_at = ?", (time.time() - 200,))
    assert sweeps.get_sweep(store, "sw")["status"] == "interrupted"  # type: ignore[index]
    sweeps.claim(store, "sw")
    assert sweeps.get_sweep(store, "sw")["owner"]["host"] != "gpu-7"  # type: ignore[index]
    # an ended sweep stays as it ended, whatever became of its driver
    sweeps.update_sweep(store, "sw", status="finished")
    store.db.execute("UPDATE sweeps SET heartbeat_at = 0")
    assert sweeps.get_sweep(store, "sw")["status"] == "finished"  # type: ignore[index]


def test_a_sweep_row_without_a_driver_is_as_recorded(store: Store) -> None:
    sweeps.create_sweep(store, "sw", SPEC)
    store.db.execute("UPDATE sweeps SET owner_pid = NULL, owner_host = NULL, heartbeat_at = NULL")
    got = sweeps.get_sweep(store, "sw")  # a pushed or pulled copy: its driver is elsewhere
    assert got is not None and got["status"] == "running" and got["owner"] is None
    sweeps.claim(store, "sw")


def test_a_save_failure_is_added_to_a_sweeps_note(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(store)
    assert sweeps.set_run_status(store, run_id, "pruned", note="pruned at step 3")

    def full(*_: Any) -> None:  # the disk fills up as the logs are stored
        raise OSError("No space left on device")

    monkeypatch.setattr(lifecycle, "_store_logs", full)
    assert lifecycle.finalize(store, run_id, "killed", exit_signal=15)
    status, _, error = _status(store, run_id)
    assert status == "pruned"
    assert error.startswith("pruned at step 3; runbase could not save: logs (OSError: No space")


# -- the run record's executor ----------------------------------------------------------------


def test_executorinfo_parse() -> None:
    ray = {"kind": "ray", "host": "h", "node_id": "ab" * 28, "attempt": 1}
    assert executorinfo.parse(json.dumps(ray)) == ray
    assert executorinfo.parse('{"kind": "local", "host": "h", "attempt": null}') == {
        "kind": "local",
        "host": "h",
    }
    for bad in ("", "{", "[]", '{"kind": "k8s"}', '{"kind": "ray", "attempt": -1}',
                '{"kind": "ray", "attempt": true}', '{"kind": "ray", "retry_of": "x"}',
                '{"kind": "local", "extra": 1}', '{"kind": "ray", "host": ""}'):  # fmt: skip
        assert executorinfo.parse(bad) is None, bad
    line = executorinfo.describe({**ray, "retry_of": "0" * 16})
    assert line == f"ray node abababab on h (attempt 2), retry of {'0' * 10}"
    assert executorinfo.describe({"kind": "local", "host": "h"}) is None


def test_runbase_run_records_its_executor(project: Path, tmp_path: Path) -> None:
    store_dir = str(tmp_path / "store")
    write(project, "train.py", TRAIN)
    ray = {"kind": "ray", "host": "node-7", "node_id": "1a2b3c4d" + "0" * 48, "attempt": 1}
    env = {executorinfo.ENV_VAR: json.dumps(ray)}
    runbase_cmd("--store", store_dir, "run", "--", PY, "train.py", env=env, check=True)
    rec = json.loads(runbase_cmd("--store", store_dir, "show", "--json", check=True).stdout)
    assert rec["executor"] == ray and rec["status"] == "finished"
    shown = runbase_cmd("--store", store_dir, "show", check=True).stdout
    assert "executor   ray node 1a2b3c4d on node-7 (attempt 2)" in shown

    # a bad value: warned about, the run goes on and records this machine
    env = {executorinfo.ENV_VAR: '{"kind": "slurm"}'}
    p = runbase_cmd("--store", store_dir, "run", "--", PY, "train.py", env=env, check=True)
    assert "ignoring $RUNBASE_EXECUTOR" in p.stderr and "trained" in p.stdout
    rec = json.loads(runbase_cmd("--store", store_dir, "show", "--json", check=True).stdout)
    assert rec["executor"]["kind"] == "local" and rec["executor"]["host"] == rec["host"]
    assert "executor" not in runbase_cmd("--store", store_dir, "show", check=True).stdout


NESTED = """
import subprocess, sys
subprocess.run([sys.executable, "-m", "runbase", "--store", sys.argv[1], "run", "--name", "inner",
                "--", sys.executable, "train.py"], check=True)
"""


def test_a_nested_run_does_not_inherit_the_executor(project: Path, tmp_path: Path) -> None:
    store_dir = str(tmp_path / "store")
    write(project, "train.py", TRAIN)
    write(project, "nested.py", NESTED)
    ray = {"kind": "ray", "host": "node-7", "node_id": "1a2b3c4d" + "0" * 48, "attempt": 1}
    env = {executorinfo.ENV_VAR: json.dumps(ray)}
    runbase_cmd("--store", store_dir, "run", "--name", "outer", "--", PY, "nested.py", store_dir,
                env=env, check=True)  # fmt: skip
    outer = json.loads(runbase_cmd("--store", store_dir, "show", "outer", "--json").stdout)
    inner = json.loads(runbase_cmd("--store", store_dir, "show", "inner", "--json").stdout)
    assert outer["executor"] == ray and outer["status"] == "finished"
    # the inner run ran here, inside the outer one: neither on a Ray node nor a retry
    assert inner["executor"] == {"kind": "local", "host": inner["host"]}


def test_in_process_runs_have_no_executor(store: Store) -> None:
    assert build_record(store, _run(store))["executor"] is None
    with pytest.raises(UsageError, match="executor kind must be one of"):
        _run(store, executor={"kind": "k8s"})


def test_render_tolerates_a_bad_executor_in_a_record(store: Store) -> None:
    rec = build_record(store, _run(store))
    for bad in ("ray", {"kind": "ray", "attempt": "x"}, ["ray"]):
        rec["executor"] = bad  # a record from elsewhere (a remote's): shown without it
        assert "executor" not in render_record(rec)


# -- a pre-assigned run id --------------------------------------------------------------------


def test_spec_run_id_is_the_run_id(project: Path, tmp_path: Path) -> None:
    store_dir = str(tmp_path / "store")
    write(project, "train.py", TRAIN)
    run_id = ids.new_run_id()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"run_id": run_id, "name": "trial-1"}))
    base = ("--store", store_dir, "run", "--spec", str(spec), "--", PY, "train.py")
    runbase_cmd(*base, check=True)
    rec = json.loads(runbase_cmd("--store", store_dir, "show", run_id, "--json").stdout)
    assert rec["id"] == run_id and rec["name"] == "trial-1" and rec["status"] == "finished"

    again = runbase_cmd(*base)  # taken: refused before the command starts
    assert again.returncode != 0 and "exists already" in again.stderr
    assert "Traceback" not in again.stderr and "trained" not in again.stdout
    spec.write_text(json.dumps({"run_id": "NOT-AN-ID"}))
    bad = runbase_cmd(*base)
    assert bad.returncode != 0 and "is not a run id" in bad.stderr
    assert "Traceback" not in bad.stderr and "trained" not in bad.stdout


# -- bundles ----------------------------------------------------------------------------------


def _trial(store: Store) -> str:
    sweeps.create_sweep(store, "sw", SPEC, {"name": "study", "storage": "local"})
    executor = {"kind": "ray", "host": "n1", "node_id": "ff" * 28, "attempt": 0}
    run_id = _run(store, "sw", 1, executor=executor)
    lifecycle.finalize(store, run_id, "killed", exit_signal=15)
    sweeps.set_run_status(store, run_id, "pruned")
    sweeps.update_sweep(store, "sw", status="finished", best_run=run_id)
    return run_id


def test_bundle_carries_the_executor_and_the_sweep(
    store: Store,
    dst: Store,  # noqa: F811 - the fixture
) -> None:
    run_id = _trial(store)
    bundle = json.loads(json.dumps(export_run(store, run_id)))
    assert json.loads(bundle["run"]["executor_json"])["node_id"] == "ff" * 28
    assert bundle["sweep"]["id"] == "sw" and bundle["sweep"]["status"] == "finished"
    import_run(dst, bundle)
    rec = build_record(dst, run_id)
    assert rec["status"] == "pruned" and rec["executor"]["host"] == "n1"
    got = sweeps.get_sweep(dst, "sw")
    assert got is not None and got["best_run"] == run_id and got["spec"] == SPEC

    # an older copy of the row (another trial sent earlier) does not win
    older = json.loads(json.dumps(bundle))
    older["sweep"].update(status="running", updated_at=older["sweep"]["created_at"] - 1)
    import_run(dst, older)
    assert sweeps.get_sweep(dst, "sw")["status"] == "finished"  # type: ignore[index]
    newer = json.loads(json.dumps(bundle))
    newer["sweep"].update(status="interrupted", updated_at=bundle["sweep"]["updated_at"] + 1)
    import_run(dst, newer)
    assert sweeps.get_sweep(dst, "sw")["status"] == "interrupted"  # type: ignore[index]
    # another user's sweep of that id is never replaced
    other = json.loads(json.dumps(newer))
    other["sweep"].update(user_name="mallory", status="failed", updated_at=1e10)
    import_run(dst, other)
    assert sweeps.get_sweep(dst, "sw")["status"] == "interrupted"  # type: ignore[index]


def _scored_run(store: Store, acc: float) -> str:
    """A real `runbase run` whose summary acc is ``acc``; its id."""
    code = f"import runbase; runbase.summary(acc={acc})"
    runbase_cmd("--store", str(store.root), "run", "--", PY, "-c", code, check=True)
    return str(store.db.query_one("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0])


def test_a_sent_sweep_row_keeps_the_better_best_run(store: Store) -> None:
    """Several drivers send one sweep's row (runbase sweep --join): the newer row's
    columns win, but never a worse best run, whatever the clocks say."""
    spec = {**SPEC, "objective": "acc", "direction": "max"}
    good, bad = _scored_run(store, 0.9), _scored_run(store, 0.4)
    sweeps.create_sweep(store, "sw", spec)
    sweeps.update_sweep(store, "sw", best_run=good)

    def send(**change: Any) -> dict[str, Any] | None:
        from runbase.records.bundle import sweep_row

        row = {**sweep_row(store, "sw"), **change}  # type: ignore[dict-item]
        with store.db.transaction() as cur:
            return sweeps.merged_sweep(cur, row)

    stored = sweep_row_of(store)
    later = stored["updated_at"] + 5
    # newer, with a worse best run (a driver's partial view): its status, not its best
    merged = send(updated_at=later, status="finished", best_run=bad)
    assert merged is not None and merged["status"] == "finished" and merged["best_run"] == good
    # older, with a better one: the stored row, its best run replaced
    sweeps.update_sweep(store, "sw", best_run=bad)
    merged = send(updated_at=1.0, status="running", best_run=good)
    assert merged is not None and merged["best_run"] == good
    assert merged["updated_at"] == sweep_row_of(store)["updated_at"]
    assert merged["status"] == sweep_row_of(store)["status"]
    # older and no better: nothing to write; nothing stored yet: the row sent
    sweeps.update_sweep(store, "sw", best_run=good)
    assert send(updated_at=1.0, best_run=bad) is None
    assert send(updated_at=1.0, best_run=None) is None
    with store.db.transaction() as cur:
        fresh = {**sweep_row_of(store), "id": "sw9"}
        assert sweeps.merged_sweep(cur, fresh) == fresh
    # without an objective (a grid sweep), the newer row's best run
    sweeps.create_sweep(store, "plain", SPEC)
    from runbase.records.bundle import sweep_row

    row = {**sweep_row(store, "plain"), "updated_at": later, "best_run": bad}  # type: ignore[dict-item]
    with store.db.transaction() as cur:
        assert sweeps.merged_sweep(cur, row)["best_run"] == bad  # type: ignore[index]


def sweep_row_of(store: Store) -> dict[str, Any]:
    from runbase.records.bundle import sweep_row

    row = sweep_row(store, "sw")
    assert row is not None
    return row


def test_a_bundle_never_carries_the_sweeps_driver(store: Store, tmp_path: Path) -> None:
    bundle = export_run(store, _trial(store))
    assert not set(sweeps.OWNER_COLUMNS) & set(bundle["sweep"])
    # imported where that sweep is being driven, the driver stays
    target = Store.open(str(tmp_path / "dst"), create=True)
    try:
        sweeps.create_sweep(target, "sw", SPEC)
        newer = json.loads(json.dumps(bundle))
        newer["sweep"]["updated_at"] = time.time() + 10
        import_run(target, newer)
        got = sweeps.get_sweep(target, "sw")
        assert got is not None and got["status"] == "finished"
        assert got["owner"]["pid"] == os.getpid()
    finally:
        target.close()


@pytest.mark.parametrize("sweep_id", ["../x", "a/b", ".", "..", "x" * 201, "sw\n", "é"])
def test_a_bundles_sweep_id_must_be_a_safe_name(
    store: Store, tmp_path: Path, sweep_id: str
) -> None:
    bundle = json.loads(json.dumps(export_run(store, _trial(store))))
    bundle["run"]["sweep_id"] = bundle["sweep"]["id"] = sweep_id
    target = Store.open(str(tmp_path / "dst"), create=True)
    try:
        with pytest.raises(BundleError, match="sweep.id: .* is not a sweep id"):
            import_run(target, bundle)
    finally:
        target.close()


def test_a_run_without_a_sweep_or_executor_has_neither_in_its_bundle(store: Store) -> None:
    bundle = export_run(store, _run(store))
    assert "sweep" not in bundle and "executor_json" not in bundle["run"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "other"}, "not the run's sweep_id"),
        ({"spec_json": "[1]"}, "sweep.spec_json: must be JSON dict"),
        ({"spec_json": "{"}, "sweep.spec_json: is not valid JSON"),
        ({"study_json": "3"}, "sweep.study_json: must be JSON dict"),
        ({"status": "done"}, "sweep.status"),
        ({"best_run": "x"}, "sweep.best_run"),
        ({"created_at": None}, "sweep.created_at: must not be null"),
        ({"updated_at": -5.0}, "sweep.updated_at"),
        ({"color": "red"}, "unknown column 'color'"),
        ({"owner_pid": 1}, "sweep.owner_pid: is a local fact"),
        ({"heartbeat_at": 1.0}, "sweep.heartbeat_at: is a local fact"),
    ],
)
def test_a_bad_sweep_in_a_bundle_is_refused(
    store: Store, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    bundle = json.loads(json.dumps(export_run(store, _trial(store))))
    bundle["sweep"].update(change)
    target = Store.open(str(tmp_path / "dst"), create=True)
    try:
        with pytest.raises(BundleError, match=message):
            import_run(target, bundle)
        assert target.db.query("SELECT id FROM runs") == []  # nothing written
    finally:
        target.close()


@pytest.mark.parametrize(
    ("executor", "message"),
    [('{"kind": "k8s"}', "kind must be one of"), ("[1]", "must be JSON dict"), ("{", "valid JSON")],
)
def test_a_bad_executor_in_a_bundle_is_refused(
    store: Store, tmp_path: Path, executor: str, message: str
) -> None:
    bundle = json.loads(json.dumps(export_run(store, _trial(store))))
    bundle["run"]["executor_json"] = executor
    target = Store.open(str(tmp_path / "dst"), create=True)
    try:
        with pytest.raises(BundleError, match=f"run.executor_json.*{message}"):
            import_run(target, bundle)
    finally:
        target.close()


# -- the team server --------------------------------------------------------------------------


def test_the_server_takes_pushed_pruned_and_lost_trials_with_their_sweep(
    project: Path,
    tmp_path: Path,
    team: tuple[TeamServer, str],  # noqa: F811 - the fixture
) -> None:
    srv, token = team
    write(project, "train.py", TRAIN)
    store_dir = str(tmp_path / "alice-store")
    for _ in range(2):
        runbase_cmd("--store", store_dir, "run", "--", PY, "train.py", check=True)
    local = Store.open(store_dir)
    try:
        pruned, lost = (r[0] for r in local.db.query("SELECT id FROM runs ORDER BY id"))
        sweeps.create_sweep(local, "sw", SPEC)
        local.db.execute("UPDATE runs SET sweep_id = 'sw', status = 'killed'")
        assert sweeps.set_run_status(local, pruned, "pruned")
        assert sweeps.set_run_status(local, lost, "lost")
        sweeps.update_sweep(local, "sw", status="finished", best_run=pruned)
    finally:
        local.close()
    _login(srv, token, project)
    runbase_cmd("--store", store_dir, "push", "--all", cwd=project, check=True)
    for run_id, status in ((pruned, "pruned"), (lost, "lost")):
        assert srv.get(f"/p/default/api/runs/{run_id}", token)["status"] == status

    # pulled into another store, a trial brings the sweep's record along
    other = str(tmp_path / "other-store")
    runbase_cmd("--store", other, "pull", lost, cwd=project, check=True)
    pulled = Store.open(other)
    try:
        sweep = sweeps.get_sweep(pulled, "sw")
        assert sweep is not None and sweep["status"] == "finished" and sweep["best_run"] == pruned
        assert sweep["spec"] == SPEC
        assert build_record(pulled, lost)["status"] == "lost"
    finally:
        pulled.close()
