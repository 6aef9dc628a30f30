"""Every error runbase raises on purpose.

    RunbaseError                 base class; the CLI prints its message and exits 1
    ├── StoreError               the store is missing, unreadable or of another format version
    │   └── FormatVersionError   written by a newer/older runbase than this one understands
    ├── RunNotFound              a run reference matched no run
    ├── AmbiguousRunRef          a run prefix matched several runs
    ├── QueryError               a malformed ``--where`` / ``--sort`` expression
    ├── UsageError               bad input to an API call made before a run started
    └── BundleError              a run bundle (runbase.bundle) is malformed or cannot be imported

After a run has started, runbase never raises into user code: failures are turned
into a single warning (see ``runbase._safe``).
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
