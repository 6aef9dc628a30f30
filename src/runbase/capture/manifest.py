"""Tree manifests: a directory's files as one stored JSON object (code snapshots, data
directories).

``{"format": "runbase-tree", "version": 1, "entries": [...]}``, each entry a file
(``{"path", "type": "f"|"x", "oid", "size"}``) or a symlink (``{"path", "type":
"link", "target"}``); paths in their stored form (runbase.core.fsname). Its own module
because both the code snapshot (capture.code) and the data a run read or wrote
(capture.files) write manifests, and the records read them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring as _encode_str
from typing import Any

from runbase.core import fsname
from runbase.core.safepath import check_manifest
from runbase.store import Store

TREE_FORMAT = "runbase-tree"
TREE_VERSION = 1


def put_manifest(store: Store, entries: Iterable[dict[str, Any] | str]) -> str:
    """Store a tree manifest, streaming: the bytes are those of
    ``json.dumps({"format", "version", "entries": [...]}, separators=(",", ":"),
    ensure_ascii=False)``, written as ``entries`` are produced. An entry may be given
    already encoded (:func:`file_entry_json`), which saves the encoder on large trees."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    head = dumps({"format": TREE_FORMAT, "version": TREE_VERSION})[:-1]
    with store.objects.writer() as w:
        batch = [head, ',"entries":[']
        for i, entry in enumerate(entries):
            text = entry if isinstance(entry, str) else dumps(entry)
            batch.append("," + text if i else text)
            if len(batch) >= 1024:
                w.write("".join(batch).encode())
                batch = []
        batch.append("]}")
        w.write("".join(batch).encode())
    return w.oid


def file_entry_json(path: str, oid: str, size: int) -> str:
    """``json.dumps({"path": path, "type": "f", "oid": oid, "size": size})`` (compact,
    non-ASCII kept), ~5x faster: 10,000 entries cost 30 ms through the encoder."""
    return (
        f'{{"path":{_encode_str(fsname.encode(path))},"type":"f","oid":"{oid}","size":{int(size)}}}'
    )


def load_manifest(store: Store, oid: str, max_size: int | None = None) -> list[dict[str, Any]]:
    """The entries of a stored tree manifest (ObjectTooLarge over ``max_size`` bytes;
    CorruptObject when its bytes are not ``oid``), every one validated: an unsafe path,
    a duplicate, an entry below a symlink raise UnsafePathError (runbase.core.safepath)."""
    body = json.loads(store.objects.get_bytes(oid, max_size=max_size))
    if (
        not isinstance(body, dict)
        or body.get("format") != TREE_FORMAT
        or body.get("version") != TREE_VERSION
    ):
        raise ValueError(f"{oid} is not a runbase tree manifest of version {TREE_VERSION}")
    return check_manifest(body.get("entries"), f"tree manifest {oid}")
