"""A sweep's record sent to a team server on its own (``PUT /p/{project}/api/sweeps/{id}``).

Each trial's bundle carries the sweep's row as it was when the trial was sent; the
driver's later changes (a new best run, the sweep's end) reach the server only this
way: ``runbase sweep --publish`` after each trial and at the end, ``runbase push`` once
per sweep after its runs."""

from __future__ import annotations

import urllib.parse

from runbase.errors import RemoteError, RunbaseError
from runbase.records.bundle import sweep_row
from runbase.remote.client import Client, Remote, get_remote
from runbase.store import Store


def push_sweep(store: Store, sweep_id: str, remote: str | None) -> None:
    """Send sweep ``sweep_id``'s row to ``remote`` (a remote's name; None: the default
    one). The server keeps the newer ``updated_at``. RemoteError when it cannot be sent
    (no such remote, server down, refused): the caller warns, the sweep goes on."""
    try:
        target = get_remote(remote)
    except RunbaseError as e:
        raise RemoteError(f"cannot push sweep {sweep_id}: {e}") from None
    send_sweep(
        store, Client(target.url, target.token, retry_for=0.0, timeout=10.0), target, sweep_id
    )


def send_sweep(store: Store, client: Client, remote: Remote, sweep_id: str) -> bool:
    """Send sweep ``sweep_id``'s row with ``client``; False when the store has no such
    sweep (nothing sent). RemoteError when the server refuses it or cannot be reached."""
    row = sweep_row(store, sweep_id)
    if row is None:
        return False
    path = f"{remote.api}/sweeps/{urllib.parse.quote(sweep_id, safe='')}"
    client.send_json("PUT", path, row)
    return True
