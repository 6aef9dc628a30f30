"""The local store: ``.runbase/`` = FORMAT file + SQLite metadata + object directory.

Layout (docs/store-format.md is the specification)::

    .runbase/
      FORMAT          {"format": "runbase-store", "version": 1}
      runbase.db      SQLite (WAL): runs, params, tags, metrics, metric chunks, stat cache
      objects/ab/cd…  content-addressed objects, BLAKE3 of the raw bytes
      spool/<run>/    per-run spool files while a run is live (ingested, then removed)
      tmp/            temp files, renamed into objects/ atomically
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from runbase.errors import FormatVersionError, StoreError
from runbase.store.db import Database
from runbase.store.objects import LocalObjects
from runbase.store.protocol import Objects

STORE_DIRNAME = ".runbase"
FORMAT_NAME = "runbase-store"
FORMAT_VERSION = 1


def find_git_root(start: Path) -> Path | None:
    """The git work tree containing ``start`` (a ``.git`` dir or file), without running git."""
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


def locate(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """Where the store for ``cwd`` is: ``explicit``, else ``$RUNBASE_DIR``, else the nearest
    ``.runbase`` up to the git top level, else ``<git top level or cwd>/.runbase``."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get("RUNBASE_DIR")
    if env:
        return Path(env).expanduser().absolute()
    cwd = (cwd or Path.cwd()).absolute()
    git_root = find_git_root(cwd)
    for d in (cwd, *cwd.parents):
        if (d / STORE_DIRNAME / "FORMAT").is_file():
            return d / STORE_DIRNAME
        if d == git_root:
            break
    return (git_root or cwd) / STORE_DIRNAME


class Store:
    """An opened store: ``db`` (metadata) and ``objects`` (bytes: a local directory for
    ``Store.open``, any backend for a team server's project store)."""

    def __init__(self, root: Path, db: Database, objects: Objects, read_only: bool = False) -> None:
        self.root = root
        self.db = db
        self.objects = objects
        # a store this process cannot write (a read-only mount, a colleague's store):
        # read as it is; nothing is recovered or written (docs/security.md)
        self.read_only = read_only

    @property
    def local_objects(self) -> LocalObjects:
        """The objects as files on this machine, for what reads them in place (fsck, gc,
        du, push); StoreError for a store whose objects are elsewhere (S3)."""
        if not isinstance(self.objects, LocalObjects):
            raise StoreError(f"the objects of the store at {self.root} are not local files")
        return self.objects

    @property
    def spool_root(self) -> Path:
        return self.root / "spool"

    def spool_dir(self, run_id: str) -> Path:
        return self.spool_root / run_id

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, create: bool = False) -> Store:
        """Open the store at ``root`` (see :func:`locate`); ``create=True`` initialises it."""
        path = locate(root)
        fmt = path / "FORMAT"
        if not fmt.is_file():
            if not create:
                raise StoreError(
                    f"no runbase store at {path}; run `runbase init` or start a run first"
                )
            _initialise(path)
        _check_format(fmt)
        if not _writable(path):
            if create:
                raise StoreError(
                    f"the store at {path} is read-only: this command writes to it; "
                    "use a writable store (--store or $RUNBASE_DIR)"
                )
            db = Database.open_sqlite(path / "runbase.db", read_only=True)
            _say_read_only(path)
            return cls(path, db, LocalObjects(path / "objects", path / "tmp"), read_only=True)
        db = Database.open_sqlite(path / "runbase.db", create=create)
        return cls(path, db, LocalObjects(path / "objects", path / "tmp"))

    def close(self) -> None:
        self.db.close()


def _writable(path: Path) -> bool:
    """Whether this process can write the store (``access`` reports a read-only mount
    even to root; for whom permissions are no obstacle, they are none)."""
    db = path / "runbase.db"
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


_told: set[Path] = set()


def _say_read_only(path: Path) -> None:
    if path in _told:
        return
    _told.add(path)
    sys.stderr.write(
        f"runbase: the store at {path} is read-only: reading it as it is "
        "(runs that crashed are not recovered, nothing is written)\n"
    )


def _initialise(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("objects", "spool", "tmp"):
            (path / sub).mkdir(exist_ok=True)
        gi = path / ".gitignore"
        if not gi.exists():
            gi.write_text("# runbase store: never commit it\n*\n")
        tmp = path / "FORMAT.tmp"
        tmp.write_text(json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n")
        os.replace(tmp, path / "FORMAT")
        Database.open_sqlite(path / "runbase.db", create=True).close()
    except OSError as e:
        raise StoreError(f"cannot create a store at {path}: {e}") from e


def _check_format(fmt: Path) -> None:
    try:
        info = json.loads(fmt.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"unreadable store FORMAT file {fmt}: {e}") from e
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise StoreError(f"{fmt.parent} is not a runbase store (FORMAT says {info!r})")
    version = info.get("version")
    if not isinstance(version, int):
        raise StoreError(f"store FORMAT file {fmt} has no integer version")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"store {fmt.parent} has format version {version}, newer than this runbase "
            f"understands ({FORMAT_VERSION}); upgrade runbase: pip install -U runbase"
        )
    if version < FORMAT_VERSION:
        raise FormatVersionError(
            f"store {fmt.parent} has format version {version}, older than this runbase "
            f"({FORMAT_VERSION}); no migration exists for it"
        )
