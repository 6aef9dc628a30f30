"""Live publishing: a running run streamed to a team server while it goes on
(``runbase run --publish REMOTE``, or ``"publish": REMOTE`` in the user config).

The local store is the spool. A publisher thread in the supervisor (never in the
training process) reads what was ingested locally and sends it as a delta bundle
every couple of seconds; a failed send is simply retried by the next tick, so an
unreachable server costs the training nothing and loses nothing. When the run ends,
the whole run is pushed with its objects; if the server is still unreachable, the
run is marked pending and the next ``runbase push`` (or published run) sends it.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from runbase.core._safe import warn_once
from runbase.core.runfiles import LOG_FILES
from runbase.errors import RemoteError
from runbase.records.bundle import export_delta, run_objects
from runbase.records.outbox import clear_pending, mark_pending
from runbase.remote.client import Client, Remote, get_remote
from runbase.remote.sync import push, send_objects
from runbase.store import Store

PUBLISH_EVERY = 2.0
LOG_CHUNK = 4 << 20


class Publisher:
    """Streams run ``run_id`` of the store at ``store_root`` to ``remote``."""

    def __init__(self, store_root: Any, remote: Remote, run_id: str, every: float = PUBLISH_EVERY):
        self.store_root = store_root
        self.remote = remote
        self.run_id = run_id
        self.every = every
        # a tick never waits on a dead server: no retries inside it (the next tick is one)
        self.client = Client(remote.url, remote.token, retry_for=0.0, timeout=10.0)
        self.sent: dict[str, int] = {}
        self.uploaded: set[str] = set()
        self.log_sent: dict[str, int] = {}  # stream -> bytes of its spool file sent
        self.deltas = 0
        self.failures = 0
        self.down = False  # the last tick failed: the server is unreachable right now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Any = None

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._loop, name="runbase-publish", daemon=True)
        self._thread.start()
        return self

    def _open(self) -> Any:
        # its own connection: the ingest thread's transactions must not be read half-done
        if self._store is None:
            self._store = Store.open(self.store_root)
        return self._store

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def tick(self) -> bool:
        """Send what is new; False (and a warning, once) when the server did not take it."""
        try:
            store = self._open()
            self._send_objects(store)
            if self._stop.is_set():
                return False
            delta = export_delta(store, self.run_id, self.sent)
            logs = self._new_logs(store)
            delta["log_chunks"] = [
                {"stream": st, "offset": off, "data": base64.b64encode(data).decode("ascii")}
                for st, off, data in logs
            ]
            self.client.send_json("POST", f"{self.remote.api}/runs/{self.run_id}/live", delta)
        except Exception as e:  # noqa: BLE001 - publishing must never break a run
            self.failures += 1
            self.down = True
            warn_once(
                "publish",
                f"cannot publish run {self.run_id} to {self.remote.url} ({e}); it is kept "
                "locally and sent when the server answers",
            )
            return False
        for row in delta["metric_chunks"]:
            self.sent[row["key"]] = max(self.sent.get(row["key"], -1), row["seq"])
        for stream, offset, data in logs:
            self.log_sent[stream] = offset + len(data)
        self.deltas += 1
        self.down = False
        return True

    def _new_logs(self, store: Any) -> list[tuple[str, int, bytes]]:
        """``(stream, offset, bytes)`` of the output and stderr written since the last
        delta (already scrubbed of secrets by the supervisor), LOG_CHUNK at most each."""
        chunks = []
        for stream, name in LOG_FILES.items():
            start = self.log_sent.get(stream, 0)
            try:
                with open(store.spool_dir(self.run_id) / name, "rb") as f:
                    f.seek(start)
                    data = f.read(LOG_CHUNK)
            except FileNotFoundError:
                continue
            if data:
                chunks.append((stream, start, data))
        return chunks

    def _send_objects(self, store: Any) -> None:
        """Objects the run refers to so far (its code, environment, declared inputs):
        the server accepts a run only with every object it points to."""
        new = [o for o in run_objects(store, self.run_id) if o not in self.uploaded]
        if new:
            send_objects(store, self.client, self.remote, new, jobs=4)
            self.uploaded.update(new)

    def stop(self) -> None:
        """Stop streaming (before the run is finalized: compaction renumbers chunks).
        Waits for a tick in flight: none may land after the final push (the server
        refuses a live update of an ended run anyway). A tick is bounded: one attempt,
        10 s timeouts, its uploads cancelled at the first failure."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def finish(self, deadline: float = 30.0) -> bool:
        """Push the finished run with its objects; on failure mark it pending. Retried
        for up to ``deadline`` seconds, unless the server was already unreachable: then
        one try, so ``runbase run`` does not linger after the command ends."""
        store = self._open()
        try:
            push(store, self.remote, [self.run_id], retry_for=0.0 if self.down else deadline)
            clear_pending(store, self.run_id, self.remote.name)
            return True
        except Exception as e:  # noqa: BLE001 - publishing must never break a run
            mark_pending(store, self.remote.name, self.run_id)
            warn_once(
                "publish-final",
                f"run {self.run_id} was not published to {self.remote.url} ({e}); "
                "`runbase push` sends it later",
            )
            return False
        finally:
            store.close()
            self._store = None


def start_publisher(store: Any, remote_name: str, run_id: str) -> Publisher | None:
    """A started publisher, or None (with a warning) when the remote is not usable.
    Called after the run started: it never raises."""
    try:
        remote = get_remote(remote_name)
        if not remote.token:
            raise RemoteError(f"not logged in to {remote.url}: runbase login {remote.url}")
        return Publisher(store.root, remote, run_id).start()
    except Exception as e:  # noqa: BLE001
        mark_pending(store, remote_name, run_id)
        warn_once("publish", f"cannot publish to {remote_name!r}: {e}")
        return None
