"""The hash chain of an append-only log (the model registry's events, docs/models.md).

Each event's hash covers its own fields and the hash of the event before it, so
changing, removing, inserting or reordering any event changes every hash after it:
``verify`` recomputes the chain and says where it first breaks. The chain proves the
log is intact relative to its last hash (the head): whoever can rewrite the whole
database can also rewrite the whole chain, which is why the head is stored apart
(the store's meta row) and can be compared with a copy kept elsewhere (the team
server's log, a CI job's record of ``runbase model verify --json``).

SHA-256 from the standard library: the chain is a few hundred bytes per event and
must be checkable with any tool (``sha256sum``), not only with runbase.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "sha256:" + "0" * 64


def canonical(fields: Mapping[str, Any]) -> str:
    """The one text of ``fields`` that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of ``prev_hash``, a newline and the canonical text of ``fields``."""
    text = f"{prev_hash}\n{canonical(fields)}"
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def broken_links(
    events: Iterable[tuple[int, str, str, Mapping[str, Any]]],
) -> Iterable[tuple[int, str]]:
    """``(seq, problem)`` for each event of ``(seq, prev_hash, hash, fields)``, in order,
    that does not follow from the one before: a gap in the numbering, a ``prev_hash``
    that is not the previous hash, or a hash its fields do not give."""
    prev, expected_seq = GENESIS, 1
    for seq, prev_hash, hash_, fields in events:
        if seq != expected_seq:
            yield (
                seq,
                f"event {seq} follows event {expected_seq - 1}: events are missing or reordered",
            )
        if prev_hash != prev:
            yield seq, f"event {seq} does not link to the event before it (history was changed)"
        if event_hash(prev_hash, fields) != hash_:
            yield seq, f"event {seq} does not match its hash (its fields were edited)"
        prev, expected_seq = hash_, seq + 1
