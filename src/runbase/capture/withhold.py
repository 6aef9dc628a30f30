"""Files that hold a value runbase redacted: never stored, like secret files.

A value redacted from a param, argv, the environment or a config file must not reach
the store through a file the run writes or reads either: Hydra's ``.hydra/config.yaml``
and ``overrides.yaml`` hold ``+api_token=...`` verbatim, a script dumps ``vars(args)``
to ``args.json``, transformers pickles its arguments into ``training_args.bin``. Before
a file's bytes are stored (an input or an output, a file inside a stored directory, an
untracked file of the code snapshot) its bytes are searched for every secret value this
process knows; a file that holds one is recorded by name and hash only (withheld).

The values are registered by reference (:func:`guard`): a set that grows while the run
goes on (values the command reports over ``RUNBASE_SECRETS_FD``, ``runbase.param``)
is searched with what it holds when a file is finalized, which for outputs is after
the command ended, when all are known. Nothing is searched while no value is known.

Limits (docs/security.md): files over :data:`MAX_SCAN_BYTES` are not searched (their
bytes are stored), values shorter than :data:`MIN_VALUE_LEN` bytes are not searched for
(they match by chance), and only the exact UTF-8 bytes of a value are found (not an
escaped, re-encoded or compressed form of it).
"""

from __future__ import annotations

import os
import re
import threading

# a config dump, a pickled args object, a log: small. Checkpoints and datasets are
# larger and hold no argv value; searching them would cost a read of every byte.
MAX_SCAN_BYTES = 4 << 20
# "1", "true", "admin" would withhold every file that happens to contain them
MIN_VALUE_LEN = 8

_lock = threading.Lock()
_sources: list[set[str]] = []
_compiled: tuple[frozenset[bytes], re.Pattern[bytes] | None] = (frozenset(), None)


def guard(values: set[str]) -> None:
    """Search files stored from now on in this process for the values of ``values``,
    including those added to that set later. Idempotent per set."""
    with _lock:
        if not any(s is values for s in _sources):
            _sources.append(values)


def known_values() -> frozenset[bytes]:
    """The values searched for now (UTF-8 bytes, long enough to search for)."""
    with _lock:
        sources = [set(s) for s in _sources]  # a copy: another thread may add values
    encoded = (
        v.encode("utf-8", "surrogateescape") for s in sources for v in s if isinstance(v, str)
    )
    return frozenset(b for b in encoded if len(b) >= MIN_VALUE_LEN)


# measured on 4 MiB of JSON-like text, two runs (docs/security.md): ``bytes.find`` costs
# 0.55-0.8 ms a value; one compiled alternation 4-7 ms for 1 value, 4.5-9 ms for 10,
# 18-22 ms for 100
_FIND_UP_TO = 8


def _searcher() -> tuple[frozenset[bytes], re.Pattern[bytes] | None]:
    """The values, and one compiled alternation of them when there are many (rebuilt
    when the set changes): one pass over a file's bytes whatever their number."""
    global _compiled
    values = known_values()
    if values != _compiled[0]:
        alts = sorted(values, key=len, reverse=True)
        many = len(alts) > _FIND_UP_TO
        _compiled = (values, re.compile(b"|".join(map(re.escape, alts))) if many else None)
    return _compiled


def holds_secret(path: str, size: int | None = None) -> bool:
    """Whether the file at ``path`` holds a known secret value (False when none is known,
    the file is larger than :data:`MAX_SCAN_BYTES`, or cannot be read)."""
    values, pattern = _searcher()
    if not values:
        return False
    try:
        if size is None:
            size = os.path.getsize(path)
        if size > MAX_SCAN_BYTES:
            return False
        with open(path, "rb") as f:
            data = f.read(MAX_SCAN_BYTES + 1)
    except OSError:
        return False
    if len(data) > MAX_SCAN_BYTES:
        return False  # grew since the stat
    if pattern is None:
        return any(v in data for v in values)
    return pattern.search(data) is not None


REASON = "holds a redacted value"
