"""What a run's record says about the files it read and wrote: its ``run_files`` rows.

runbase.capture.files detects the files (the audit hook, the end-of-run scan) and
hashes them; this module decides what each is and writes it down:

- Declared: ``runbase run --input/--output`` and ``runbase.input()/output()``.
- Inputs are hashed (and stored) as soon as the supervisor or watcher hears of them,
  then re-checked at the end: an input whose bytes changed during the run is flagged.
- Outputs are hashed (and stored) at the end. Imported modules are code, not data, and
  the end-of-run scan ignores files of the code snapshot (edited while the run ran).
- A file that may hold credentials is recorded by name and hash only (withheld).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runbase.capture.files import is_url, put_cached, rel, scan_outputs, snapshot_path
from runbase.capture.secretfiles import is_secret_file
from runbase.capture.withhold import REASON as WITHHELD_REASON
from runbase.capture.withhold import holds_secret
from runbase.core import fsname
from runbase.store import Store
from runbase.store.db import Database
from runbase.store.hashing import hash_file
from runbase.store.objects import LocalObjects
from runbase.store.statcache import StatCache

# -- in the training process: the bytes about to be overwritten ----------------------


def preimage(
    store_root: str, run_id: str, root: str, path: str, read_mtime_ns: int
) -> tuple[str, int, bool] | None:
    """``(object id, size, stored)`` of the bytes of ``path`` this process read (at
    modification time ``read_mtime_ns``) and is about to overwrite, hashed now: once
    written over they are gone, and the supervisor may not have hashed the input yet
    (it hears of reads through the spool, a second or so later). Stored too when the
    run stores its inputs (not ``--hash-only``, not a secret file). None when there is
    nothing to do: the file changed since the read (those bytes are gone already), or
    the run's record has the input hashed. Called from the audit hook, before the
    write: it must not raise (the hook catches) and costs a stat and one read-only
    query when the input is hashed already, a hash (or a stat-cache hit) otherwise."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_mtime_ns != read_mtime_ns or not stat.S_ISREG(st.st_mode):
        return None
    try:
        db = Database.open_sqlite(Path(store_root) / "runbase.db", read_only=True)
    except Exception:  # noqa: BLE001 - no record to consult: hash, keep no copy
        db = None
    try:
        policy, hit = "hash-only", None
        if db is not None:
            row = db.query_one(
                "SELECT oid FROM run_files WHERE run_id = ? AND role = 'input' AND path = ?",
                (run_id, rel(root, path)),
            )
            if row and row[0]:
                return None  # hashed (and stored) by the supervisor in time
            row = db.query_one("SELECT data_policy FROM runs WHERE id = ?", (run_id,))
            policy = (row[0] or "store") if row else "hash-only"
            hit = StatCache(_ReadOnly(db, store_root)).lookup(path, os.lstat(path))
    finally:
        if db is not None:
            db.close()
    store_bytes = policy == "store" and not is_secret_file(path, root)
    store_bytes = store_bytes and not holds_secret(path, st.st_size)
    if hit is not None and (hit[1] or not store_bytes):
        return hit[0], st.st_size, store_bytes  # bytes known (a previous run's output)
    if store_bytes:
        objects = LocalObjects(Path(store_root) / "objects", Path(store_root) / "tmp")
        oid, size = objects.put_file(path, hit[0] if hit else None, st.st_size)
        return oid, size, True
    return hash_file(path), st.st_size, False


class _ReadOnly:
    """What StatCache.lookup needs of a store: its database, read only (never saved)."""

    def __init__(self, db: Any, root: str) -> None:
        self.db, self.root = db, Path(root)


# -- in the supervisor / watcher ----------------------------------------------------


def note_file(
    store: Store,
    run_id: str,
    root: str,
    path: str,
    role: str,
    source: str,
    read_mtime_ns: int | None = None,
    before: tuple[str, int, bool] | None = None,
) -> None:
    """Record that the run read (``input``) or wrote (``output``) ``path``; an input is
    hashed and stored right away, before the run can change it.

    An input is bytes the run read that it did not write itself (see ``_note_read``);
    ``read_mtime_ns``: the file's modification time when it was opened for reading, if
    the reporter knows it (the audit hook does). ``before``: ``(oid, size, stored)`` of
    those bytes, hashed by the reading process just before it overwrote them
    (``preimage``)."""
    if is_url(path):
        store.db.execute(
            "INSERT INTO run_files (run_id, role, path, source, url) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, role, path) DO NOTHING",
            (run_id, role, path, source, path),
        )
        return
    key = rel(root, os.path.abspath(os.path.join(root, path)))
    if role == "input" and source != "declared":
        if before is not None:
            _note_preimage(store, run_id, key, source, read_mtime_ns, before)
        else:
            _note_read(store, run_id, root, key, source, read_mtime_ns)
        return
    _upsert(store, run_id, role, key, source)
    if role == "input" and _oid(store, run_id, "input", key) is None:
        _hash_into(store, run_id, root, role, key, _policy(store, run_id))


# ``(path, role, source, read_mtime_ns, before)``: the arguments of one ``note_file``
FileNote = tuple[str, str, str, int | None, tuple[str, int, bool] | None]


_UPSERT_FILE = (
    "INSERT INTO run_files (run_id, role, path, source) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, role, path) DO UPDATE SET source = CASE WHEN excluded.source = 'declared' "
    "THEN 'declared' ELSE run_files.source END"
)


_IN_CHUNK = 500  # paths per lookup query (well under SQLite's and PostgreSQL's limits)


def note_files(store: Store, run_id: str, root: str, notes: Iterable[FileNote]) -> None:
    """``note_file`` for each of ``notes``, in order, with the same outcome, batched: a
    run of detected reads (or of writes) costs a few queries and one write transaction
    in all, not a few of each per file, so re-reading unchanged data costs about a stat
    a file (the audit hook reports every file a program opens, one by one). Declared
    files, URLs and preimages go one by one; a batch is written before any of them, so
    each event sees the ones before it as ``note_file`` would."""
    reads: list[tuple[str, str, int | None]] = []
    writes: list[tuple[str, str]] = []
    for path, role, source, read_mtime_ns, before in notes:
        batched = not is_url(path) and source != "declared" and before is None
        key = rel(root, os.path.abspath(os.path.join(root, path))) if batched else ""
        if reads and not (batched and role == "input"):
            _note_reads(store, run_id, root, reads)
            reads = []
        if writes and not (batched and role == "output"):
            store.db.executemany(_UPSERT_FILE, [(run_id, "output", k, s) for k, s in writes])
            writes = []
        if not batched:
            note_file(store, run_id, root, path, role, source, read_mtime_ns, before)
        elif role == "input":
            reads.append((key, source, read_mtime_ns))
        else:
            writes.append((key, source))
    if reads:
        _note_reads(store, run_id, root, reads)
    if writes:
        store.db.executemany(_UPSERT_FILE, [(run_id, "output", k, s) for k, s in writes])


def _note_reads(
    store: Store, run_id: str, root: str, reads: list[tuple[str, str, int | None]]
) -> None:
    """``_note_read`` of each of ``reads`` (``(key, source, read_mtime_ns)``), in order:
    the run's rows of those paths looked up at once, files hashed through one stat cache
    (a directory's row read once), every change written in one transaction."""
    started_ns, policy = _run_info(store, run_id)
    inputs, outputs = _rows_of(store, run_id, [k for k, _, _ in reads])
    inserts: list[tuple[str, str, str, str]] = []
    changed: list[tuple[str, str]] = []
    hashed: list[tuple[str, int, int, str, str, str]] = []
    special: list[str] = []  # hashed by _hash_into once the batch is written
    cache = StatCache(store)
    try:
        for key, source, read_mtime_ns in reads:
            full = os.path.abspath(os.path.join(root, key))
            try:
                st: os.stat_result | None = os.stat(full)
            except OSError:
                st = None  # read, then deleted (or renamed) before we got here
            now_ns = st.st_mtime_ns if st is not None else None
            mtime = read_mtime_ns if read_mtime_ns is not None else now_ns
            # unknown (no reporter's time, the file gone): decided at the end, like fresh bytes
            fresh = mtime is None or mtime >= started_ns - _CLOCK_SLACK_NS
            if fresh and inputs.get(key) is None and key in outputs:
                continue  # written by this run, then read back
            if key not in inputs:
                inputs[key] = None
                inserts.append((run_id, "input", key, source))
            if fresh or inputs[key] is not None:
                continue
            if st is not None and (read_mtime_ns is None or now_ns == read_mtime_ns):
                if not _plain(key, root, full, st, policy):
                    inputs[key] = ""  # not None: a second read in the batch leaves it
                    special.append(key)
                    continue
                snap = _snapshot_read(store, full, st, policy, cache)
                if snap is not None:
                    inputs[key] = snap[0]
                    hashed.append((*snap, run_id, key))
            else:
                changed.append((run_id, key))
    finally:
        cache.save()
    if inserts or changed or hashed:
        _write_reads(store, inserts, changed, hashed)
    for key in special:
        _hash_into(store, run_id, root, "input", key, policy)


def _write_reads(
    store: Store,
    inserts: list[tuple[str, str, str, str]],
    changed: list[tuple[str, str]],
    hashed: list[tuple[str, int, int, str, str, str]],
) -> None:
    """One transaction: the new input rows, the changed flags, the hashes."""
    with store.db.transaction() as cur:
        if inserts:
            cur.executemany(_UPSERT_FILE, inserts)
        if changed:
            cur.executemany(
                "UPDATE run_files SET changed = 1 WHERE run_id = ? AND role = 'input' AND path = ?",
                changed,
            )
        if hashed:
            cur.executemany(
                "UPDATE run_files SET oid = ?, size = ?, stored = ?, kind = ? "
                "WHERE run_id = ? AND role = 'input' AND path = ?",
                hashed,
            )


def _run_info(store: Store, run_id: str) -> tuple[int, str]:
    """``(start in ns, data policy)`` of a run, as ``_started_ns`` and ``_policy``."""
    row = store.db.query_one("SELECT started_at, data_policy FROM runs WHERE id = ?", (run_id,))
    if row is None:
        return 0, "store"
    return (int(float(row[0]) * 1e9) if row[0] is not None else 0), (row[1] or "store")


def _rows_of(store: Store, run_id: str, keys: list[str]) -> tuple[dict[str, str | None], set[str]]:
    """The run's input rows of ``keys`` (path -> oid or None) and its output paths among
    them, in one query per ``_IN_CHUNK`` paths (looked up in their stored form,
    runbase.core.fsname, as ``Database`` stores a path that is not UTF-8)."""
    stored = {fsname.encode(k): k for k in dict.fromkeys(keys)}
    forms = list(stored)
    inputs: dict[str, str | None] = {}
    outputs: set[str] = set()
    for i in range(0, len(forms), _IN_CHUNK):
        chunk = forms[i : i + _IN_CHUNK]
        rows = store.db.query(
            "SELECT role, path, oid FROM run_files WHERE run_id = ? "
            f"AND role IN ('input', 'output') AND path IN ({', '.join('?' * len(chunk))})",
            (run_id, *chunk),
        )
        for role, path, oid in rows:
            key = stored.get(path)
            if key is None:
                continue
            if role == "input":
                inputs[key] = oid or None
            else:
                outputs.add(key)
    return inputs, outputs


def _plain(key: str, root: str, full: str, st: os.stat_result, policy: str) -> bool:
    """Whether a read is hashed as it is: a file that is neither a secret file nor holds
    a redacted value (the files ``_hash_into`` withholds, left to it, as directories)."""
    if stat.S_ISDIR(st.st_mode) or is_secret_file(key, root):
        return False
    return not (policy == "store" and holds_secret(full, st.st_size))


def _snapshot_read(
    store: Store, full: str, st: os.stat_result, policy: str, cache: StatCache
) -> tuple[str, int, int, str] | None:
    """``(oid, size, stored, kind)`` of one plain read file (``_plain``), as
    ``_hash_into`` records it; None if it cannot be read now."""
    try:
        oid, size, _ = put_cached(store, full, st, cache, policy == "store")
    except OSError:
        return None  # deleted or made unreadable since the stat: unhashed, as if gone
    return oid, size, 1 if policy == "store" else 0, "file"


def withhold_input(store: Store, run_id: str, root: str, cwd: str | None, path: str) -> None:
    """Record ``path`` (relative to ``cwd``) as an input by name and hash only, source
    ``config``: a config file runbase redacted secrets from (capture.secrets). Reads
    of it reported later find it hashed and leave it so: it is never stored."""
    full = os.path.abspath(os.path.join(cwd or os.getcwd(), path))
    try:
        oid, size = hash_file(full), os.path.getsize(full)
    except OSError:
        return
    store.db.execute(
        "INSERT INTO run_files (run_id, role, path, oid, size, stored, source, kind) "
        "VALUES (?, 'input', ?, ?, ?, 0, 'config', 'file') "
        "ON CONFLICT (run_id, role, path) DO UPDATE SET oid = excluded.oid, "
        "size = excluded.size, stored = 0, source = 'config'",
        (run_id, rel(root, full), oid, size),
    )


def _upsert(store: Store, run_id: str, role: str, key: str, source: str) -> None:
    store.db.execute(_UPSERT_FILE, (run_id, role, key, source))


def _oid(store: Store, run_id: str, role: str, key: str) -> str | None:
    row = store.db.query_one(
        "SELECT oid FROM run_files WHERE run_id = ? AND role = ? AND path = ?", (run_id, role, key)
    )
    return row[0] if row else None


def _wrote(store: Store, run_id: str, key: str) -> bool:
    """Whether the run has written ``key`` (an output row exists)."""
    return bool(
        store.db.query_one(
            "SELECT 1 FROM run_files WHERE run_id = ? AND role = 'output' AND path = ?",
            (run_id, key),
        )
    )


_CLOCK_SLACK_NS = 50_000_000  # filesystem timestamps can lag the clock slightly


def _note_read(
    store: Store, run_id: str, root: str, key: str, source: str, read_mtime_ns: int | None
) -> None:
    """A file the run read (detected, not declared). The rule is on bytes:

    - bytes written after the run began (modification time at the read) that this run
      wrote are its own output read back (a checkpoint saved, then reloaded): not an
      input. Whether the run wrote them is known for sure only at the end (the tree
      scan), so such a read is kept unhashed until ``finalize_files`` decides;
    - bytes that predate the run are an input, hashed now (these are the bytes used);
      if the file already changed since the read (the run read it, then overwrote
      it), those bytes are gone: the input is kept unhashed and flagged changed.
    """
    full = key if os.path.isabs(key) else os.path.join(root, key)
    try:
        now_ns: int | None = os.stat(full).st_mtime_ns
    except OSError:
        now_ns = None  # read, then deleted (or renamed) before we got here
    mtime = read_mtime_ns if read_mtime_ns is not None else now_ns
    # unknown (no reporter's time, the file gone): decided at the end, like fresh bytes
    fresh = mtime is None or mtime >= _started_ns(store, run_id) - _CLOCK_SLACK_NS
    if fresh and _oid(store, run_id, "input", key) is None and _wrote(store, run_id, key):
        return  # written by this run, then read back
    _upsert(store, run_id, "input", key, source)
    if fresh or _oid(store, run_id, "input", key) is not None:
        return
    if now_ns is not None and (read_mtime_ns is None or now_ns == read_mtime_ns):
        _hash_into(store, run_id, root, "input", key, _policy(store, run_id))
    else:
        store.db.execute(
            "UPDATE run_files SET changed = 1 WHERE run_id = ? AND role = 'input' AND path = ?",
            (run_id, key),
        )


def _note_preimage(
    store: Store,
    run_id: str,
    key: str,
    source: str,
    read_mtime_ns: int | None,
    before: tuple[str, int, bool],
) -> None:
    """The bytes a process read, hashed by it as it was about to overwrite them: the
    input's hash when the supervisor had none (it heard of the read too late, and
    flagged it changed). Bytes the run wrote itself are left to ``finalize_files``, as
    any read of them (an output read back is no input)."""
    if read_mtime_ns is None or read_mtime_ns >= _started_ns(store, run_id) - _CLOCK_SLACK_NS:
        return
    _upsert(store, run_id, "input", key, source)
    if _oid(store, run_id, "input", key) is not None:
        return  # hashed in time: the same bytes (the read's modification time is unchanged)
    oid, size, stored = before
    stored = stored and _policy(store, run_id) == "store" and store.objects.exists(oid)
    store.db.execute(
        "UPDATE run_files SET oid = ?, size = ?, stored = ?, kind = 'file', changed = 0 "
        "WHERE run_id = ? AND role = 'input' AND path = ?",
        (oid, size, 1 if stored else 0, run_id, key),
    )


def _started_ns(store: Store, run_id: str) -> int:
    row = store.db.query_one("SELECT started_at FROM runs WHERE id = ?", (run_id,))
    return int(float(row[0]) * 1e9) if row and row[0] is not None else 0


def _policy(store: Store, run_id: str) -> str:
    row = store.db.query_one("SELECT data_policy FROM runs WHERE id = ?", (run_id,))
    return row[0] if row and row[0] else "store"


def _hash_into(
    store: Store, run_id: str, root: str, role: str, key: str, policy: str
) -> str | None:
    """Hash (and store, unless hash-only) one recorded file or directory. A file that
    may hold credentials (capture.secretfiles: ``.env``, ``id_rsa``, ...) is hashed,
    never stored: withheld, so it is never pushed either."""
    full = key if os.path.isabs(key) else os.path.join(root, key)
    redacted = policy == "store" and holds_secret(full)  # a directory's: in _put_dir
    if redacted or is_secret_file(key, root):
        policy = "hash"
    snap = snapshot_path(store, full, policy)
    if snap is None:
        return None  # deleted (a temp file) or never created
    oid, size = snap
    kind = "dir" if os.path.isdir(full) else "file"
    store.db.execute(
        "UPDATE run_files SET oid = ?, size = ?, stored = ?, kind = ? WHERE run_id = ? AND role = ? AND path = ?",
        (oid, size, 1 if policy == "store" else 0, kind, run_id, role, key),
    )
    if redacted:
        _mark_redacted(store, run_id, role, key)
    return oid


def _mark_redacted(store: Store, run_id: str, role: str, key: str) -> None:
    """Source ``redacted``: the file held a value runbase redacted (capture.withhold) and
    is recorded by hash only. The source says why it is withheld, as ``config`` does; a
    declared file keeps ``declared`` (what the user asked for)."""
    store.db.execute(
        "UPDATE run_files SET stored = 0, source = CASE WHEN source IN ('declared', 'config') "
        "THEN source ELSE 'redacted' END WHERE run_id = ? AND role = ? AND path = ?",
        (run_id, role, key),
    )


def finalize_files(
    store: Store,
    run_id: str,
    root: str,
    started_at: float,
    code_paths: set[str],
    scan: bool = True,
) -> None:
    """At the end of a run: find outputs the hooks missed (``scan``: the project's files
    written since the run started), hash/store outputs, re-check inputs."""
    policy = _policy(store, run_id)
    for path in scan_outputs(root, started_at) if scan else ():
        key = rel(root, path)
        if key in code_paths:
            continue  # code edited during the run is not an output
        store.db.execute(
            "INSERT INTO run_files (run_id, role, path, source) VALUES (?, 'output', ?, 'scan') "
            "ON CONFLICT (run_id, role, path) DO NOTHING",
            (run_id, key),
        )
    rows = store.db.query(
        "SELECT role, path, oid, url, source, changed FROM run_files WHERE run_id = ? "
        "ORDER BY role DESC",  # outputs first: an input is judged against the run's outputs
        (run_id,),
    )
    outputs: dict[str, tuple[str | None, str]] = {}
    for role, stored_path, oid, url, source, changed in rows:
        if url:
            continue
        # back to the file-system name (runbase.core.fsname); the DB layer stores it again
        path = fsname.decode(stored_path)
        if role == "output":
            new = _hash_into(store, run_id, root, role, path, policy)
            if new is None:  # written, then deleted: a temp file
                _drop(store, run_id, role, path)
            else:
                outputs[path] = (new, source)
        else:
            _finalize_input(store, run_id, root, policy, path, oid, source, changed, outputs)
    _withhold_stored_inputs(store, run_id, root, policy)


def _withhold_stored_inputs(store: Store, run_id: str, root: str, policy: str) -> None:
    """Inputs are stored as they are read, and the command may report a value it redacts
    (a Hydra override, ``runbase.param``) after it read a file holding it: now that all
    are known, such an input is withheld from the record and never pushed. Its object
    stays in this store until ``runbase gc`` (another run may share it). An input
    found holding one as it was read (not stored) is marked so here too."""
    path_of = getattr(store.objects, "path", None)  # a local store's object file
    if policy != "store" or path_of is None:
        return
    rows = store.db.query(
        "SELECT path, oid, stored FROM run_files WHERE run_id = ? AND role = 'input' "
        "AND kind = 'file' AND oid IS NOT NULL AND source NOT IN ('config', 'redacted') "
        "AND (stored = 1 OR source <> 'declared')",
        (run_id,),
    )
    for path, oid, stored in rows:
        if not stored and is_secret_file(path, root):
            continue  # withheld by its name
        full = path if os.path.isabs(path) else os.path.join(root, path)
        if holds_secret(str(path_of(oid)) if stored else full):
            _mark_redacted(store, run_id, "input", path)


def _finalize_input(
    store: Store,
    run_id: str,
    root: str,
    policy: str,
    path: str,
    oid: str | None,
    source: str,
    changed: int,
    outputs: dict[str, tuple[str | None, str]],
) -> None:
    """One input at the end of the run: a run is never the producer and the consumer of
    the same bytes at one path (``lineage.trace`` would loop)."""
    out = outputs.get(path)
    if oid is None:
        if changed:
            return  # bytes from before the run, read then overwritten before hashing
        declared = source == "declared"
        if out is not None and not declared:
            _drop(store, run_id, "input", path)  # the run's own bytes, read back
        elif _hash_into(store, run_id, root, "input", path, policy) is None and not declared:
            _drop(store, run_id, "input", path)  # read, then deleted: a temp file
        return
    if out is not None and out[0] == oid:
        if out[1] != "declared":  # bytes from before the run, rewritten unchanged
            _drop(store, run_id, "output", path)
        return
    _flag_if_changed(store, run_id, root, path, oid)


def _drop(store: Store, run_id: str, role: str, path: str) -> None:
    store.db.execute(
        "DELETE FROM run_files WHERE run_id = ? AND role = ? AND path = ?", (run_id, role, path)
    )


def _flag_if_changed(store: Store, run_id: str, root: str, path: str, oid: str) -> None:
    full = path if os.path.isabs(path) else os.path.join(root, path)
    try:
        st = os.stat(full)
        if os.path.isdir(full):
            return
        # unchanged since it was hashed: one stat, no re-hash
        hit = StatCache(store).lookup(full, st)
        now = hit[0] if hit else hash_file(full)
    except OSError:
        return
    if now != oid:
        store.db.execute(
            "UPDATE run_files SET changed = 1 WHERE run_id = ? AND role = 'input' AND path = ?",
            (run_id, path),
        )


def _withheld(path: str, source: str, root: str | None) -> str | None:
    """Why a file was never stored because it may hold credentials (None: it was not
    withheld): a config file runbase redacted secrets from (source ``config``, see
    withhold_input), a file that held a redacted value (source ``redacted``, see
    _mark_redacted), a secret file by name."""
    if source == "config":
        return "config file with redacted values"
    if source == "redacted":
        return WITHHELD_REASON
    return "secret file" if is_secret_file(path, root) else None


def list_files(store: Store, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` as in the run record."""
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    row = store.db.query_one("SELECT project_root FROM runs WHERE id = ?", (run_id,))
    root = row[0] if row and isinstance(row[0], str) else None  # its secret-files setting
    rows = store.db.query(
        "SELECT role, path, oid, size, stored, source, url, changed, kind FROM run_files WHERE run_id = ? ORDER BY path",
        (run_id,),
    )
    for role, path, oid, size, stored, source, url, changed, kind in rows:
        item = {"path": path, "hash": oid, "size": size, "stored": bool(stored), "source": source}
        if kind == "dir":
            item["directory"] = True
        if url:
            item["url"] = url
        if changed:
            item["changed_during_run"] = True
        withheld = not stored and oid and kind != "dir"
        reason = _withheld(path, source, root) if withheld else None
        if reason:
            item["withheld"] = True  # may hold credentials: name and hash only
            item["withheld_reason"] = reason
        out["inputs" if role == "input" else "outputs"].append(item)
    return out
