"""Every error runbase raises on purpose.

    RunbaseError                 base class; the CLI prints its message and exits 1
    ├── StoreError               the store is missing, unreadable or of another format version
    │   └── FormatVersionError   written by a newer/older runbase than this one understands
    ├── RunNotFound              a run reference matched no run
    ├── AmbiguousRunRef          a run prefix matched several runs
    ├── QueryError               a malformed ``--where`` / ``--sort`` expression
    ├── UsageError               bad input to an API call made before a run started
    └── BundleError              a run bundle (runbase.records.bundle) is malformed or cannot be imported
        └── UnsafePathError      a recorded path that could write outside its target (safepath)

After a run has started, runbase never raises into user code: failures are turned
into a single warning (see ``runbase.core._safe``).
"""

from __future__ import annotations


class RunbaseError(Exception):
    """Base class of all runbase errors."""


class StoreError(RunbaseError):
    """The store cannot be opened or used."""


class FormatVersionError(StoreError):
    """The store was written in a format version this runbase does not understand."""


class RunNotFound(RunbaseError):
    """No run matches the given reference."""


class AmbiguousRunRef(RunbaseError):
    """A run prefix matches several runs."""


class QueryError(RunbaseError):
    """A filter or sort expression could not be parsed."""


class UsageError(RunbaseError):
    """An API was called with arguments it cannot accept."""


class BundleError(RunbaseError):
    """A run bundle is malformed (wrong version, types, ids, columns) or cannot be imported."""


class UnsafePathError(BundleError):
    """A recorded path (manifest entry, run-file row, symlink) that is not a plain
    relative path inside its target: refused where it enters and where bytes are written.
    ``path`` is the offending path as recorded."""

    def __init__(self, path: object, why: str) -> None:
        super().__init__(f"unsafe path {_shown(path)}: {why}")
        self.path = path
        self.why = why


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
