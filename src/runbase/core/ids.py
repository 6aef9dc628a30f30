"""Run ids, human names, and the syntax of object ids.

A run id is 16 lowercase Crockford base32 characters: 8 for the centiseconds since
2020-01-01 UTC (good until the year 2368) and 8 random (40 bits). Ids therefore sort
by creation time, and any unique prefix names a run on the command line; the first
10 characters are unique unless two runs start within the same 10 ms.

An object id is ``blake3:<64 lowercase hex digits>``: the BLAKE3 of the object's raw
bytes (runbase.store.hashing computes it; the syntax lives here, below the store, for
the shapes and the path checks that validate ids read from a bundle or a server).
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
ID_LENGTH = 16


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_run_id(now: float | None = None) -> str:
    """Return a new sortable, unique run id, e.g. ``'0bq3k5x7ma2c9xzt'``."""
    cs = (int((time.time() if now is None else now) * 1000) - _EPOCH_MS) // 10
    return _b32(max(cs, 0), 8) + _b32(int.from_bytes(os.urandom(5), "big"), 8)


def is_valid_id(value: str) -> bool:
    return len(value) == ID_LENGTH and all(c in _ALPHABET for c in value)


def abbreviate_among(ids: list[str], min_len: int = 10) -> dict[str, str]:
    """Each of ``ids`` cut to its shortest prefix (at least ``min_len`` characters) that
    no other of them shares: the short ids of a listing that is not a store's (a
    remote's runs). Sorted, an id's nearest rivals are its neighbours."""
    ordered = sorted(set(ids))
    short: dict[str, str] = {}
    for i, run_id in enumerate(ordered):
        n = min_len
        for other in ordered[max(i - 1, 0) : i + 2]:
            if other != run_id:
                n = max(n, len(os.path.commonprefix([run_id, other])) + 1)
        short[run_id] = run_id[:n]
    return short


_ADJECTIVES = [
    "amber",
    "azure",
    "bold",
    "brave",
    "brisk",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "daring",
    "eager",
    "early",
    "fair",
    "fancy",
    "fearless",
    "fierce",
    "gentle",
    "glad",
    "golden",
    "grand",
    "happy",
    "hidden",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "merry",
    "mighty",
    "misty",
    "modest",
    "noble",
    "polar",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "rare",
    "royal",
    "rustic",
    "shy",
    "silent",
    "silver",
    "sleek",
    "smooth",
    "snowy",
    "solar",
    "steady",
    "stellar",
    "sunny",
    "swift",
    "tidy",
    "tranquil",
    "vivid",
    "warm",
    "wild",
    "wise",
    "witty",
    "young",
    "zesty",
]
_NOUNS = [
    "badger",
    "bear",
    "beaver",
    "bison",
    "cedar",
    "comet",
    "condor",
    "coral",
    "crane",
    "dolphin",
    "eagle",
    "falcon",
    "fern",
    "finch",
    "fox",
    "gecko",
    "glacier",
    "hawk",
    "heron",
    "ibis",
    "jaguar",
    "koala",
    "lark",
    "lemur",
    "lion",
    "lynx",
    "maple",
    "meadow",
    "moose",
    "nebula",
    "newt",
    "orca",
    "otter",
    "owl",
    "panda",
    "pebble",
    "pine",
    "puffin",
    "quail",
    "raven",
    "reef",
    "river",
    "robin",
    "salmon",
    "seal",
    "sparrow",
    "spruce",
    "squid",
    "stork",
    "swan",
    "tiger",
    "trout",
    "tulip",
    "walrus",
    "willow",
    "wolf",
    "wren",
    "yak",
    "zebra",
]


def new_run_name() -> str:
    """Return a human-friendly name such as ``'brisk-heron-17'`` (not unique)."""
    rnd = int.from_bytes(os.urandom(4), "little")
    adj = _ADJECTIVES[rnd % len(_ADJECTIVES)]
    noun = _NOUNS[(rnd // 97) % len(_NOUNS)]
    return f"{adj}-{noun}-{(rnd // 9973) % 100}"


# -- object ids ---------------------------------------------------------------------

ALGO = "blake3"
_OID_RE = re.compile(r"blake3:[0-9a-f]{64}")


def split_id(oid: str) -> tuple[str, str]:
    """``'blake3:abcd…'`` -> ``('blake3', 'abcd…')``; raises ValueError on a malformed id."""
    if _OID_RE.fullmatch(oid) is None:
        raise ValueError(f"not a runbase object id: {oid!r}")
    return ALGO, oid[len(ALGO) + 1 :]
