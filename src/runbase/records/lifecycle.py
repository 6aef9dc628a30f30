"""A run's life in the store: create, record code/env/params, finalize, recover orphans.

Used by the supervisor (``runbase run``), the in-process API (``runbase.init``) and
its watcher, and every CLI command (orphan recovery). Statuses: ``running``,
``finished`` (exit 0), ``failed`` (non-zero exit or an exception), ``killed`` (ended by
a signal), ``crashed`` (the owning process vanished without finalizing).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from runbase.capture import env as envcap
from runbase.capture import params as pcap
from runbase.capture.configfiles import config_files
from runbase.capture.manifest import load_manifest
from runbase.capture.proc import is_alive, live_processes, start_id
from runbase.capture.secrets import known_secret_values, scrub
from runbase.core import executorinfo, fsname, ids, progress, shapes
from runbase.core._safe import warn_once
from runbase.core.ids import split_id
from runbase.core.runfiles import LOG_FILES
from runbase.core.statuses import TERMINAL
from runbase.errors import UsageError
from runbase.records import experiments
from runbase.records.files import FileNote, finalize_files, note_file, note_files, withhold_input
from runbase.records.ingest import IngestResult, compact, ingest, remove_spool, spool_mtime
from runbase.records.jobruns import job_ids
from runbase.records.notebook import notebook_with_cells, record_notebook_file
from runbase.records.read import project_root_of
from runbase.store import Store, find_git_root


def create_run(
    store: Store,
    *,
    command: list[str],
    mode: str,
    name: str | None = None,
    cwd: str | None = None,
    owner_pid: int | None = None,
    project_root: str | None = None,
    tags: dict[str, str] | None = None,
    parent_id: str | None = None,
    sweep_id: str | None = None,
    reproduces: str | None = None,
    run_id: str | None = None,
    executor: dict[str, Any] | None = None,
) -> str:
    """Insert a new ``running`` run and return its id. ``run_id``: the id a sweep gave
    its trial before it started (UsageError when it is not a run id or is taken);
    ``executor``: what runs it (core.executorinfo; the run record's ``executor``)."""
    if run_id is not None and not ids.is_valid_id(run_id):
        raise UsageError(
            f"{run_id!r} is not a run id ({ids.ID_LENGTH} characters of 0-9 and a-z "
            "without i, l, o, u)"
        )
    if executor is not None and (why := executorinfo.problem(executor)):
        raise UsageError(f"the run's executor {why} (docs/run-record.md, executor)")
    run_id = run_id or ids.new_run_id()
    user, host = envcap.user_and_host()
    pid = owner_pid if owner_pid is not None else os.getpid()
    now = time.time()
    with store.db.transaction() as cur:
        cur.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,))
        if cur.fetchone() is not None:
            raise UsageError(f"a run {run_id} exists already: a run id names one run")
        cur.execute(
            "INSERT INTO runs (id, name, status, started_at, heartbeat_at, command, cwd, user_name, host, "
            "project_root, mode, owner_pid, owner_start, parent_id, sweep_id, reproduces, executor_json) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                name or ids.new_run_name(),
                now,
                now,
                # POSIX argv and paths are bytes: stored losslessly (runbase.core.fsname)
                json.dumps([fsname.encode(a) for a in command]),
                fsname.encode(cwd or os.getcwd()),
                user,
                host,
                fsname.encode(project_root) if project_root else None,
                mode,
                pid,
                start_id(pid),
                parent_id,
                sweep_id,
                reproduces,
                json.dumps(executorinfo.clean(executor)) if executor else None,
            ),
        )
        for k, v in (tags or {}).items():
            cur.execute("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)", (run_id, k, v))
        if (
            tags and experiments.EXPERIMENT_TAG in tags
        ):  # its MLflow experiment has an id from now on
            experiments.adopt(cur, [tags[experiments.EXPERIMENT_TAG]])
    store.spool_dir(run_id).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a full disk already: recovery says "crashed"
        reserve_outcome(store, run_id)
    return run_id


def record_code(store: Store, run_id: str, code: dict[str, Any]) -> None:
    store.db.execute(
        "UPDATE runs SET code_commit = ?, code_json = ? WHERE id = ?",
        (code.get("commit"), json.dumps(fsname.clean(code)), run_id),
    )


def snapshot_code(store: Store, run_id: str, root: Path, keep: list[str] | None = None) -> None:
    """Snapshot the code under ``root`` and record it on the run. ``keep``: files (a
    run's notebook) kept in the snapshot whatever their size or ignore rules."""
    real = os.path.realpath(root)
    rel = [os.path.relpath(os.path.realpath(p), real) for p in keep or ()]
    rel = [p for p in rel if not p.startswith("..")]
    # config files runbase redacted secrets from (record_config_params): not stored
    rows = store.db.query(
        "SELECT path FROM run_files WHERE run_id = ? AND source = 'config'", (run_id,)
    )
    held = [str(row[0]) for row in rows]
    # lazy: git and subprocess are for starting a run: `ls`/`show` load this module too
    from runbase.capture.code import snapshot

    record_code(store, run_id, snapshot(store, root, rel, held).as_dict())


def record_argv_params(
    store: Store, run_id: str, argv: list[str], cwd: str | None = None
) -> set[str]:
    """Fallback params parsed from the (already redacted) command line, source ``argv``,
    and those of the config files it names (relative to ``cwd``), source ``config``.
    Returns the secret values redacted from the config files: the logs scrub them."""
    rows = []
    for key, text in pcap.parse_argv(argv).items():
        value = pcap.encode_value(key, pcap.typed(text))
        rows.append((run_id, key, value, pcap.numeric(value), "argv"))
    if rows:
        store.db.executemany(
            "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, key) DO NOTHING",
            rows,
        )
    return record_config_params(store, run_id, argv, cwd)


def record_config_params(
    store: Store, run_id: str, argv: list[str], cwd: str | None = None
) -> set[str]:
    """Params from the YAML/TOML/JSON config files named on ``argv`` (capture.configfiles):
    below argv guesses in precedence (``--config c.yaml --lr 0.2``: the 0.2 holds); a
    later file wins over an earlier one. Returns the secret values redacted from them
    (``db.password``, an ``sk-...`` under any name), for the log scrubbers."""
    found: set[str] = set()
    files = config_files(argv, cwd)
    if not files:
        return found
    secrets = known_secret_values()
    rows = []
    for path, values in files:
        in_file: set[str] = set()
        for key, v in values.items():
            value = scrub(pcap.encode_value(key, v, in_file), secrets)
            if len(value) > pcap.MAX_INLINE_VALUE:
                oid = store.objects.put_bytes(value.encode())
                value = json.dumps({"$object": oid, "size": len(value), "preview": value[:200]})
            rows.append((run_id, key, value, pcap.numeric(value), "config"))
        if in_file:  # the file holds what was redacted: its bytes must not be stored
            withhold_input(store, run_id, project_root_of(store, run_id), cwd, path)
        found |= in_file
    store.db.executemany(
        "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, num = excluded.num "
        "WHERE params.source = 'config'",
        rows,
    )
    return found


def record_env(store: Store, run_id: str, python: dict[str, Any] | None) -> None:
    """Capture and store the environment (packages as a deduplicated object)."""
    env = envcap.capture(python)
    path = python.get("path") if python else None
    packages_id, count = _packages_object(store, path) if path else (None, 0)
    env["packages_count"] = count
    env_json = json.dumps(fsname.clean(env))
    store.db.execute(
        "UPDATE runs SET env_json = ?, packages_id = ? WHERE id = ?",
        (env_json, packages_id, run_id),
    )
    if packages_id is not None:
        # its job runs (runbase.tracking.jobs) that ended before it was known: the same process,
        # which does not scan its packages while it trains
        store.db.execute(
            "UPDATE runs SET env_json = ?, packages_id = ? "
            "WHERE parent_id = ? AND mode = 'job' AND packages_id IS NULL",
            (env_json, packages_id, run_id),
        )


def _packages_object(store: Store, path: list[str]) -> tuple[str, int]:
    """The package list of ``path`` as an object, re-scanned only when ``path`` changed."""
    key = "packages:" + envcap.path_fingerprint(path)
    row = store.db.query_one("SELECT value FROM meta WHERE key = ?", (key,))
    if row:
        oid, _, count = row[0].partition(" ")
        if store.objects.exists(oid):
            return oid, int(count)
    pkgs = envcap.packages(path)
    oid = store.objects.put_bytes(json.dumps(pkgs, separators=(",", ":")).encode())
    store.db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, f"{oid} {len(pkgs)}"),
    )
    return oid, len(pkgs)


def has_python_env(store: Store, run_id: str) -> bool:
    row = store.db.query_one("SELECT packages_id FROM runs WHERE id = ?", (run_id,))
    return bool(row and row[0])


def declare_files(
    store: Store, run_id: str, inputs: list[str], outputs: list[str], hash_only: bool = False
) -> None:
    """``--input``/``--output`` of ``runbase run`` (inputs are hashed and stored now)."""
    if hash_only:
        store.db.execute("UPDATE runs SET data_policy = 'hash-only' WHERE id = ?", (run_id,))
    root = project_root_of(store, run_id)
    with progress.shown("runbase: hashing inputs"):  # before the command starts
        for p in inputs:
            note_file(store, run_id, root, p, "input", "declared")
    for p in outputs:
        note_file(store, run_id, root, p, "output", "declared")


def record_watched(store: Store, run_id: str, events: list[tuple[str, str]]) -> None:
    """Files the tree watcher saw read (``r``) or written (``w``) during the run."""
    root = project_root_of(store, run_id)
    notes = dict.fromkeys(events)
    note_files(
        store,
        run_id,
        root,
        [(path, "output" if op == "w" else "input", "watch", None, None) for path, op in notes],
    )


def has_env(store: Store, run_id: str) -> bool:
    row = store.db.query_one("SELECT env_json FROM runs WHERE id = ?", (run_id,))
    return bool(row and row[0])


def handle_events(store: Store, run_id: str, result: IngestResult) -> None:
    """Act on spooled events that need more than an insert (a Python process's info).
    File events are noted in batches (records.files.note_files): a program that reads
    thousands of files reports each, and one by one they cost a few transactions each."""
    root: str | None = None
    files: list[FileNote] = []
    for e in result.events:
        kind = e.get("\x00k")
        if kind == "file" and isinstance(e.get("path"), str):
            role = "output" if e.get("op") == "w" else "input"
            mtime = e.get("mtime_ns")
            files.append(
                (
                    e["path"],
                    role,
                    "declared" if e.get("declared") else "auto",
                    mtime if isinstance(mtime, int) and not isinstance(mtime, bool) else None,
                    _preimage_of(e),
                )
            )
            continue
        if files:  # in order: what came before is noted first
            root = root or project_root_of(store, run_id)
            note_files(store, run_id, root, files)
            files = []
        if kind == "python" and not has_python_env(store, run_id):
            info = e.get("info")
            if isinstance(info, dict):
                record_env(store, run_id, info)
        elif kind == "notebook" and isinstance(e.get("path"), str):
            record_notebook_file(store, run_id, e["path"], str(e.get("source") or ""))
    if files:
        note_files(store, run_id, root or project_root_of(store, run_id), files)


def _preimage_of(event: dict[str, Any]) -> tuple[str, int, bool] | None:
    """``(oid, size, stored)`` of a read's bytes hashed before they were overwritten
    (records.files.preimage), when the event carries a well-formed one."""
    oid, size, stored = event.get("oid"), event.get("size"), event.get("stored")
    if not isinstance(oid, str) or type(size) is not int or size < 0:
        return None
    try:
        split_id(oid)
    except ValueError:
        return None
    return oid, size, stored is True


def ingest_and_handle(store: Store, run_id: str) -> IngestResult:
    result = ingest(store, run_id)
    handle_events(store, run_id, result)
    return result


# how often the process ingesting a live run refreshes its heartbeat (runs.heartbeat_at)
# when no new data came: a run that logs once a minute, without system metrics
# (RUNBASE_SYSTEM_INTERVAL=0), is alive all the same (render.views.run.STALL_AFTER_S)
HEARTBEAT_EVERY_S = 10.0


def ingest_live(store: Store, run_id: str, beat_at: float) -> float:
    """What the supervisor (or watcher) of a live run does each second: ingest the run
    and its live job runs, and, when ``HEARTBEAT_EVERY_S`` have passed since ``beat_at``
    (``time.monotonic()``), refresh their heartbeat whether new data came or not (one
    UPDATE per 10 s). Returns the ``beat_at`` of the next call."""
    ingest_and_handle(store, run_id)
    ingest_live_jobs(store, run_id)
    now = time.monotonic()
    if now - beat_at < HEARTBEAT_EVERY_S:
        return beat_at
    heartbeat(store, [run_id, *job_ids(store, run_id, running_only=True)])
    return now


def heartbeat(store: Store, run_ids: list[str], now: float | None = None) -> None:
    """The runs' ingesting process is alive: their heartbeat is ``now`` (while running)."""
    now = time.time() if now is None else now
    with store.db.transaction() as cur:
        cur.executemany(
            "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'",
            [(now, r) for r in run_ids],
        )


def ingest_live_jobs(store: Store, run_id: str) -> None:
    """Ingest the job runs (runbase.tracking.jobs) of ``run_id`` still running, so that they are
    live too: their process ingests and finalizes each as it ends."""
    for job_id in job_ids(store, run_id, running_only=True):
        ingest_and_handle(store, job_id)


def finalize(
    store: Store,
    run_id: str,
    status: str,
    exit_code: int | None = None,
    exit_signal: int | None = None,
    ended_at: float | None = None,
    error: str | None = None,
    scan: bool = True,
) -> bool:
    """Ingest what is left, store the logs, set the final status. Idempotent: returns
    False if another process finalized the run first. ``scan=False``: the project's
    files written while the run went on are not its outputs (a run among several of one
    process at once, such as a Ray Tune trial: the writes are not told apart).

    A step that fails (a full disk, a store gone read-only) does not stop the others:
    the status and exit code are recorded whatever else could not be, and ``error``
    says what was not saved. The spool is kept when what it holds was not all saved.
    When even the status cannot be written, it is left in the run's outcome file
    (:func:`save_outcome`), which orphan recovery reads."""
    assert status in TERMINAL, status
    unsaved: list[str] = []

    def step(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the status must still be recorded
            unsaved.append(f"{what} ({type(e).__name__}: {e})")
            return None

    step("metrics and events", ingest_and_handle, store, run_id)
    spool_saved = not unsaved
    step("jobs", _end_left_jobs, store, run_id, status, exit_code, exit_signal, ended_at)
    step("environment", _env_if_missing, store, run_id)
    step("data files", _finalize_files, store, run_id, scan)
    step("data files", _release_job_files, store, run_id)
    n = len(unsaved)
    logs = step("logs", _store_logs, store, run_id) or {}
    spool_saved = spool_saved and len(unsaved) == n
    notebook = step("notebook", notebook_with_cells, store, run_id)
    note = None
    if unsaved:
        note = "runbase could not save: " + "; ".join(unsaved)
        if not spool_saved:
            note += f" (the rest is kept in {store.spool_dir(run_id)})"
        error = f"{error}; {note}" if error else note
    # a sweep may have marked the run pruned or lost while it ran (records.sweeps): that
    # status and the sweep's note stay, what the supervisor knows (exit status, logs) is
    # added to them, and what could not be saved is added to the note
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE runs SET status = CASE WHEN status = 'running' THEN ? ELSE status END, "
            "exit_code = ?, exit_signal = ?, ended_at = ?, logs_json = ?, "
            "error = CASE WHEN status = 'running' THEN ? "
            "ELSE coalesce(error || '; ' || ?, error, ?) END, "
            "notebook_json = coalesce(?, notebook_json) "
            "WHERE id = ? AND (status = 'running' "
            "OR (status IN ('pruned', 'lost') AND logs_json IS NULL))",
            (
                status,
                exit_code,
                exit_signal,
                ended_at or time.time(),
                json.dumps(logs),
                error,
                note,
                error,
                json.dumps(notebook) if notebook is not None else None,
                run_id,
            ),
        )
        won = cur.rowcount == 1
    if won and spool_saved:
        remove_spool(store, run_id)
        with contextlib.suppress(Exception):  # an optimization: done again by gc
            compact(store, run_id)
    return won


def _env_if_missing(store: Store, run_id: str) -> None:
    row = store.db.query_one("SELECT env_json FROM runs WHERE id = ?", (run_id,))
    if row is not None and row[0] is None:
        record_env(store, run_id, None)


# The run's outcome file: reserved (filled with spaces) when the run starts, so that
# writing the outcome over it needs no new disk block; read by orphan recovery when
# the status could not be written to the database (docs/store-format.md, "spool").
OUTCOME_FILE = "outcome"
_OUTCOME_SIZE = 2048


def reserve_outcome(store: Store, run_id: str) -> None:
    with open(store.spool_dir(run_id) / OUTCOME_FILE, "wb") as f:
        f.write(b" " * _OUTCOME_SIZE)


def save_outcome(store: Store, run_id: str, outcome: dict[str, Any]) -> bool:
    """Write ``outcome`` (status, exit_code, exit_signal, ended_at, error) over the
    reserved outcome file, in place; False when that cannot be done either."""
    data = json.dumps(outcome).encode()[: _OUTCOME_SIZE - 1]
    try:
        fd = os.open(store.spool_dir(run_id) / OUTCOME_FILE, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.pwrite(fd, data.ljust(_OUTCOME_SIZE, b" "), 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _saved_outcome(store: Store, run_id: str) -> dict[str, Any] | None:
    """The outcome a supervisor left in the spool, checked (it is not trusted)."""
    try:
        raw = (store.spool_dir(run_id) / OUTCOME_FILE).read_bytes()[:_OUTCOME_SIZE]
        data = json.loads(raw.strip() or b"null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("status") not in TERMINAL:
        return None
    ints = {k: data.get(k) for k in ("exit_code", "exit_signal")}
    if any(v is not None and (type(v) is not int or abs(v) > 1 << 31) for v in ints.values()):
        return None
    ended: Any = data.get("ended_at")
    fine = isinstance(ended, (int, float)) and not isinstance(ended, bool) and 0 < ended < 1e11
    return {
        "status": data["status"],
        **ints,
        "ended_at": float(ended) if fine else None,
        "error": str(data["error"])[:1000] if data.get("error") else None,
    }


def _end_left_jobs(
    store: Store,
    run_id: str,
    status: str,
    exit_code: int | None,
    exit_signal: int | None,
    ended_at: float | None,
) -> None:
    """End the job runs (runbase.tracking.jobs) its process left running, killed or exiting
    during a job, with the process's status."""
    for job_id in job_ids(store, run_id, running_only=True):
        finalize(
            store,
            job_id,
            status,
            exit_code=exit_code,
            exit_signal=exit_signal,
            ended_at=ended_at,
            error="the process ended during the job",
        )


def _release_job_files(store: Store, run_id: str) -> None:
    """Leave to a run's job runs the files they recorded: the run keeps what its process
    did outside its jobs. The tree watcher and the end-of-run scan cannot tell which
    job touched a file, and a launcher writes a job's files (Hydra's ``.hydra/``) just
    before the job starts: a file with the same path and bytes as a job's is the job's."""
    store.db.execute(
        "DELETE FROM run_files WHERE run_id = ? AND oid IS NOT NULL AND ("
        "(role = 'output' AND source <> 'declared') OR (role = 'input' AND source = 'watch')"
        ") AND EXISTS (SELECT 1 FROM run_files j JOIN runs r ON r.id = j.run_id "
        "WHERE r.parent_id = ? AND r.mode = 'job' AND j.role = run_files.role "
        "AND j.path = run_files.path AND j.oid = run_files.oid)",
        (run_id, run_id),
    )


def _finalize_files(store: Store, run_id: str, scan: bool = True) -> None:
    row = store.db.query_one("SELECT started_at, code_json FROM runs WHERE id = ?", (run_id,))
    if row is None:
        return
    code_paths: set[str] = set()
    code = shapes.load_column(row[1], shapes.CODE)  # a malformed record names no tree
    tree = code.get("tree") if isinstance(code, dict) else None
    if isinstance(tree, str) and tree:
        try:
            code_paths = {fsname.decode(e["path"]) for e in load_manifest(store, tree)}
        except (OSError, ValueError):
            pass
    with progress.shown("runbase: storing outputs"):  # the command has ended
        root = project_root_of(store, run_id)
        finalize_files(store, run_id, root, row[0], code_paths, scan)


def _store_logs(store: Store, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fname in LOG_FILES.items():
        path = store.spool_dir(run_id) / fname
        if path.is_file():
            oid, size = store.objects.put_file(path)
            out[name] = {"oid": oid, "size": size}
    return out


# A running run whose supervisor (``runbase run``) was killed while its command goes on:
# status stays ``running``, ``error`` holds this note (docs/run-record.md), the spool is
# ingested by every command and removed only when the last of the run's processes ends.
SUPERVISOR_LOST = "supervisor lost: runbase run was killed; the command went on without it"


def recover_orphans(store: Store) -> list[str]:
    """Finalize as ``crashed`` every running run on this host whose processes are all
    gone: its owner (the supervisor, or the process of ``runbase.init``) and the
    processes recorded in its spool (capture.proc.register). While any of those still
    runs, the run stays ``running`` (supervisor lost) and its spool is ingested, never
    deleted. A run without an owner was imported from another store (runbase.records.bundle):
    its process, if any, is on another machine, perhaps of the same name, so it is no
    orphan. One run's damaged record must not stop the command: it is warned about and
    skipped. A read-only store is read as it is (nothing can be recovered)."""
    if getattr(store, "read_only", False):
        return []
    _, host = envcap.user_and_host()
    rows = store.db.query(
        "SELECT id, owner_pid, owner_start, heartbeat_at, error FROM runs "
        # a trial its sweep marked pruned or lost before its supervisor finalized it
        # (records.sweeps) is finalized the same way: its spool is saved, its status stays
        "WHERE (status = 'running' OR (status IN ('pruned', 'lost') AND logs_json IS NULL)) "
        "AND host = ? AND owner_pid IS NOT NULL",
        (host,),
    )
    recovered = []
    for run_id, pid, start, heartbeat, error in rows:
        try:
            if _recover_one(store, run_id, int(pid), start, heartbeat, error):
                recovered.append(run_id)
        except Exception as e:  # noqa: BLE001 - one bad row must not break every command
            warn_once(f"recover-{run_id}", f"could not recover run {run_id}: {e}")
    return recovered


def _recover_one(
    store: Store, run_id: str, pid: int, start: str | None, heartbeat: Any, error: str | None
) -> bool:
    if is_alive(pid, start):
        return False
    if live_processes(str(store.spool_dir(run_id))):
        if error is None:
            store.db.execute(
                "UPDATE runs SET error = ? WHERE id = ? AND status = 'running' AND error IS NULL",
                (SUPERVISOR_LOST, run_id),
            )
        ingest_and_handle(store, run_id)
        return False
    saved = _saved_outcome(store, run_id)
    if saved is not None:  # its supervisor ended but could not write the status
        return finalize(store, run_id, **saved)
    ended = spool_mtime(store, run_id) or heartbeat
    why = "the owning process disappeared"
    if error == SUPERVISOR_LOST:
        why = (
            "runbase run was killed; the command went on without it and has ended "
            "(its exit status is unknown; its metrics were kept)"
        )
    return finalize(store, run_id, "crashed", ended_at=ended, error=why)


def project_root(cwd: Path | None = None) -> Path:
    """Git top level of ``cwd``, else ``cwd``: what the code snapshot covers."""
    cwd = (cwd or Path.cwd()).absolute()
    return find_git_root(cwd) or cwd
