"""Every error runbase raises on purpose, and the HTTP status that answers each.

    RunbaseError                 base class (400); the CLI prints its message and exits 1
    ├── StoreError               the store is missing, unreadable or of another format version (503)
    │   ├── FormatVersionError   written by a newer/older runbase than this one understands
    │   ├── ObjectIdMismatch     bytes offered under an id that is not their hash (422)
    │   ├── ObjectTooLarge       an object over the reader's size limit
    │   └── CorruptObject        an object whose bytes do not hash to its id (500)
    ├── NotFound                 a metric, file, object, user, project or token that is not there (404)
    │   └── RunNotFound          a run reference matched no run
    ├── AmbiguousRunRef          a run prefix matched several runs
    ├── QueryError               a malformed ``--where`` / ``--sort`` expression
    ├── UsageError               bad input to an API call made before a run started
    ├── ShapeError               a value without its documented shape (also a ValueError) (422)
    ├── TooDeep                  JSON nested deeper than a reader takes (also a ValueError) (422)
    ├── BundleError              a run bundle (runbase.records.bundle) is malformed or cannot be imported (422)
    │   └── UnsafePathError      a recorded path that could write outside its target (safepath)
    ├── RemoteError              a request to a runbase server failed or was refused
    ├── AuthError                no valid credential (401)
    │   └── LoginRequired        a server page asked for without a session (redirect to /login)
    ├── Forbidden                a valid credential without the right (403)
    ├── Conflict                 the request clashes with what exists (409)
    │   └── MissingObjects       a pushed run references objects the server lacks (409, lists them)
    └── TooLarge                 a request body over its limit (413)

Each class carries ``http_status``; :func:`http_status` is the one mapping the local UI
(runbase.web) and the team server (runbase.server) answer with.

After a run has started, runbase never raises into user code: failures are turned
into a single warning (see ``runbase.core._safe``).

This module imports nothing from runbase: every layer may raise these.
"""

from __future__ import annotations


class RunbaseError(Exception):
    """Base class of all runbase errors. Unless a subclass says otherwise, the caller
    sent something runbase cannot use: HTTP 400."""

    http_status: int = 400


def http_status(exc: BaseException) -> int:
    """The HTTP status that answers ``exc``: its class's ``http_status`` for a runbase
    error, 500 for anything else (a bug, not the caller's fault)."""
    return exc.http_status if isinstance(exc, RunbaseError) else 500


# -- the store -----------------------------------------------------------------------------


class StoreError(RunbaseError):
    """The store cannot be opened or used (HTTP 503: the service cannot answer now)."""

    http_status = 503


class FormatVersionError(StoreError):
    """The store was written in a format version this runbase does not understand."""


class ObjectIdMismatch(StoreError):
    """Bytes offered under an id that is not their BLAKE3: refused, nothing is stored."""

    http_status = 422  # the sender's bytes are wrong, not the store


class ObjectTooLarge(StoreError):
    """An object larger than the reader's ``max_size``: refused before it is read."""

    def __init__(self, oid: str, size: int, max_size: int) -> None:
        super().__init__(f"{oid} is {size} bytes, over {max_size}")
        self.size = size


class CorruptObject(StoreError):
    """An object whose bytes, as read, do not hash to its id: nothing read is handed on.
    ``run`` (set by a caller that knows it) is named in the message too."""

    http_status = 500  # the store's own copy is damaged: said plainly, and not retried

    def __init__(self, oid: str, actual: str, run: str | None = None, where: str = "") -> None:
        self.oid, self.actual, self.run, self.where = oid, actual, run, where
        of = f" (of run {run})" if run else ""
        at = f" at {where}" if where else ""
        ref = run or "RUN"
        super().__init__(
            f"object {oid}{of} is corrupted{at}: its bytes hash to {actual}. Nothing was "
            f"written from it. `runbase fsck` lists damaged objects; `runbase pull --data "
            f"{ref}` fetches a good copy from a remote that has one"
        )

    def for_run(self, run: str) -> CorruptObject:
        return CorruptObject(self.oid, self.actual, run, self.where)


# -- runs and what they hold --------------------------------------------------------------


class NotFound(RunbaseError):
    """Something asked for is not there (a metric, file or object of a run; a user,
    project or token of the server, as far as the caller may know)."""

    http_status = 404


class RunNotFound(NotFound):
    """No run matches the given reference."""


class AmbiguousRunRef(RunbaseError):
    """A run prefix matches several runs."""


class QueryError(RunbaseError):
    """A filter or sort expression could not be parsed."""


class UsageError(RunbaseError):
    """An API was called with arguments it cannot accept."""


# ShapeError and TooDeep are ValueErrors too: readers that catch ``ValueError`` around
# ``json.loads``-like parsing keep catching them.
class ShapeError(RunbaseError, ValueError):
    """A value that does not have its documented shape; ``where`` names the field."""

    http_status = 422

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class TooDeep(RunbaseError, ValueError):
    """JSON nested deeper than a reader can take."""

    http_status = 422


class BundleError(RunbaseError):
    """A run bundle is malformed (wrong version, types, ids, columns) or cannot be imported."""

    http_status = 422


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


# -- remotes and the team server ----------------------------------------------------------


class RemoteError(RunbaseError):
    """A request to the server failed (after retries) or was refused. ``status`` is the
    server's HTTP status, when it answered; ``body`` its decoded answer."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthError(RunbaseError):
    """No valid credential (HTTP 401)."""

    http_status = 401


class LoginRequired(AuthError):
    """A server page asked for without a session: the server redirects to its login page
    (an API client, which has no page to go to, would get the 401)."""


class Forbidden(RunbaseError):
    """A valid credential without the right (HTTP 403)."""

    http_status = 403


class Conflict(RunbaseError):
    """The request clashes with what exists (HTTP 409)."""

    http_status = 409


class MissingObjects(Conflict):
    """A pushed run references objects the server does not hold; ``oids`` lists them, so
    the client uploads those and pushes again."""

    def __init__(self, oids: list[str]) -> None:
        super().__init__(f"{len(oids)} referenced objects are not on the server; push them first")
        self.oids = oids


class BytesMissing(Conflict):
    """The bytes a change needs are not in the store (yet): a model version whose object
    was never stored or was removed (HTTP 409)."""


class TooLarge(RunbaseError):
    """A request body over its limit (HTTP 413)."""

    http_status = 413
