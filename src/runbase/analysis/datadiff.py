"""What changed *inside* a data file between two runs, computed from the stored bytes.

:func:`content_diff` compares two versions of one input or output (``{"oid", "kind",
"size"}``, None for an absent side) and returns the documented JSON object of
docs/diff-format.md ("Data content"), or None for a format it does not read (the hash
change is then all there is to say). :func:`describe_content` turns it into one line.

Nothing read from the store is trusted: the bytes are verified against their id, read
up to :data:`MAX_BYTES`, and anything malformed (bad CSV, invalid UTF-8, huge fields, a
"Parquet" file that is not one) gives a ``"skipped"`` note, never an exception.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import gzip
import io
import json
import json.scanner
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from operator import itemgetter
from typing import Any

from runbase.capture.manifest import load_manifest
from runbase.core.text import printable
from runbase.errors import CorruptObject, ObjectTooLarge, RunbaseError
from runbase.store import Store

# Each side is read whole (verified against its id) and parsed as a stream: memory is
# about the file's size plus one hash per distinct row. Beyond this: not compared.
MAX_BYTES = 256 << 20
# Parquet compresses: its size does not bound its rows (each costs a hash in memory)
MAX_PARQUET_ROWS = 50_000_000
# a file with no known extension is read, to see whether it is text, up to this size
MAX_SNIFFED = 16 << 20
# difflib's line matching is quadratic in the worst case: beyond this many lines a text
# diff counts lines by content instead (a line moved is then no change at all)
MAX_DIFFLIB_LINES = 50_000
# a directory's paths listed in full up to this many per change kind
MAX_PATHS = 50
BINARY_SNIFF = 8192

TABULAR = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PARQUET = (".parquet", ".pq")
TEXT = (
    ".txt",
    ".md",
    ".rst",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".xml",
    ".html",
    ".log",
    ".conf",
    ".py",
    ".sql",
    ".sh",
)
# the cells a CSV row holds beyond its header: one pseudo-column on both sides
EXTRA = "(cells beyond the header)"


class Unreadable(Exception):
    """A side that is not what its format says: becomes a "could not read" note."""


def content_diff(
    store: Store, path: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What changed inside ``path`` from ``old`` to ``new`` (each ``{"oid", "kind":
    "file"|"dir", "size"}`` or None when the file is absent on that side), or None when
    its format is not one runbase reads (docs/diff-format.md, "Data content")."""
    if old is None and new is None:
        return None
    kinds = {side.get("kind", "file") for side in (old, new) if side is not None}
    if kinds == {"dir"}:
        return _dir_diff(store, old, new)
    if len(kinds) > 1:
        return {"format": "dir", "skipped": "a file on one side and a directory on the other"}
    gzipped = path.lower().endswith(".gz")
    fmt = _format(path[:-3] if gzipped else path)
    if fmt == "sniff":  # no known extension: text when both sides are, else nothing
        return None if gzipped else _sniffed(store, old, new)
    extra = {"compression": "gzip"} if gzipped else {}
    try:
        blobs = [_read(store, side) for side in (old, new)]
        if gzipped:
            blobs = [_gunzip(b, side) for b, side in zip(blobs, ("old", "new"), strict=True)]
        return {**_COMPARE[fmt](fmt, blobs[0], blobs[1]), **extra}
    except _Skip as e:
        return {"format": fmt, **extra, "skipped": str(e)}


def _sniffed(
    store: Store, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any] | None:
    # a file of unknown format is read only to see whether it is text: a model
    # checkpoint of some GiB is not read (nor hashed) for that
    if any(s is not None and _size(s) > MAX_SNIFFED for s in (old, new)):
        return None
    try:
        blobs = [_read(store, side, MAX_SNIFFED) for side in (old, new)]
    except _Skip:
        return None  # unknown format: the hash change is all there is to say
    if not all(b is None or _looks_text(b) for b in blobs):
        return None
    try:
        return _text("text", blobs[0], blobs[1])
    except _Skip as e:
        return {"format": "text", "skipped": str(e)}


def _size(side: dict[str, Any]) -> int:
    size = side.get("size")
    return size if isinstance(size, int) else 0  # untrusted: the read checks it again


def describe_content(content: dict[str, Any]) -> str:
    """One line: ``3,000 of 10,000 rows differ, column 'label' added``."""
    if content.get("skipped"):
        return f"contents not compared: {content['skipped']}"
    if "rows" in content:
        return _describe_table(content)
    if "lines" in content:
        ln = content["lines"]
        if not (ln["added"] or ln["removed"]):
            return "same lines, reordered" if content.get("reordered") else "same lines"
        return f"+{ln['added']:,} −{ln['removed']:,} lines (of {ln['old']:,} → {ln['new']:,})"
    if "files" in content:
        f = content["files"]
        parts = [
            f"{f[k]:,} file{'s' if f[k] != 1 else ''} {k}"
            for k in ("added", "removed", "changed")
            if f[k]
        ]
        return (", ".join(parts) or "same files") + f" (of {f['old']:,} → {f['new']:,})"
    return "contents differ"


# -- reading -----------------------------------------------------------------------


class _Skip(Exception):
    """Not compared, with the reason as its message."""


def _format(path: str) -> str:
    name = path.lower()
    for ext, fmt in TABULAR.items():
        if name.endswith(ext):
            return fmt
    if name.endswith(PARQUET):
        return "parquet"
    if name.endswith(TEXT):
        return "text"
    return "sniff"


def _read(store: Store, side: dict[str, Any] | None, cap: int | None = None) -> bytes | None:
    if side is None:
        return None
    cap = MAX_BYTES if cap is None else cap
    oid = side.get("oid")
    if not isinstance(oid, str):
        raise _Skip("the file was not hashed")
    try:
        return store.objects.get_bytes(oid, max_size=cap)
    except ObjectTooLarge as e:
        raise _Skip(f"over {cap >> 20} MiB ({e.size:,} bytes)") from None
    except FileNotFoundError:
        raise _Skip(f"the bytes of {oid[:19]}… are not stored") from None
    except CorruptObject:
        raise _Skip(f"the stored bytes of {oid[:19]}… are corrupted (see `runbase fsck`)") from None
    except (OSError, ValueError, RunbaseError) as e:
        raise _Skip(f"could not read {oid[:19]}…: {e}") from None


def _gunzip(data: bytes | None, side: str) -> bytes | None:
    """A gzip file's contents, up to :data:`MAX_BYTES` (a small file can inflate to
    any size: it is read no further)."""
    if data is None:
        return None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise _Skip(f"could not read the {side} version as gzip: {_why(e)}") from None
    if len(out) > MAX_BYTES:
        raise _Skip(f"the {side} version inflates to over {MAX_BYTES >> 20} MiB")
    return out


def _looks_text(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF]:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data[:BINARY_SNIFF])
    except UnicodeDecodeError:
        return False
    return True


def _text_stream(data: bytes) -> io.TextIOWrapper:
    # decoded as it is read: no second copy of a large file; invalid UTF-8 raises
    # UnicodeDecodeError where it is met. utf-8-sig: a BOM is not part of the header.
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


# -- tables ------------------------------------------------------------------------


@dataclass
class _Table:
    columns: list[str]
    rows: Iterator[Sequence[Any]]  # each as long as ``columns``, read once
    types: dict[str, str] | None = None  # column -> type, where the format has them


def _empty() -> _Table:
    return _Table([], iter(()))


def _csv_table(data: bytes | None, delimiter: str) -> _Table:
    if data is None:
        return _empty()
    reader = csv.reader(_text_stream(data), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return _Table([EXTRA], iter(()))
    width = len(header)

    def fit(row: list[str]) -> list[str]:
        if len(row) == width:  # the usual row: one allocation less than slicing
            row.append("")
            return row
        return row[:width] + [""] * (width - len(row)) + ["\x1f".join(row[width:])]

    return _Table(_unique(header) + [EXTRA], map(fit, reader))


def _unique(names: list[str]) -> list[str]:
    """Column names made unique (``x``, ``x (2)``): a header may repeat one, and may
    hold ``x (2)`` itself."""
    used: set[str] = {EXTRA}  # the pseudo-column's name is taken
    out = []
    for n in names:
        name, i = n, 1
        while name in used:
            i += 1
            name = f"{n} ({i})"
        used.add(name)
        out.append(name)
    return out


# a JSON Lines key a record lacks (not the same as null); a 1-tuple, where a string is
# itself and every other value a 2-tuple (_json_cell): it can equal no value
_ABSENT = ("absent",)


class _NewKey(Exception):
    """A record with a key the first one lacked: the columns were guessed wrong."""


def _jsonl_table(data: bytes | None, guess: bool = True) -> _Table:
    """The columns are every key of every record, in first-seen order, and must be
    known before the first row is laid out. Memory stays flat by reading twice, unless
    ``guess``: then the first record's keys are taken as the columns (true of most
    files: one pass) and a record with another key raises _NewKey (read again)."""
    if data is None:
        return _empty()
    keys: dict[str, None] = {}
    for rec in _records(data):
        keys.update(dict.fromkeys(rec))
        if guess:
            break
    columns = list(keys)

    def rows() -> Iterator[tuple[Any, ...]]:
        for rec in _records(data):
            if guess and not rec.keys() <= keys.keys():
                raise _NewKey
            yield tuple([_json_cell(rec[k]) if k in rec else _ABSENT for k in columns])

    return _Table(columns, rows())


def _json_cell(v: Any) -> Any:
    """A JSON value as a key that equals another only for the same JSON: ``1``, ``1.0``,
    ``true`` and ``"1"`` all differ (in Python the first three are equal)."""
    t = type(v)
    if t is str:
        return v
    if t is dict or t is list:
        return ("json", json.dumps(v, sort_keys=True))
    if t is float and v != v:
        return _NAN
    return (t.__name__, v)


# json.loads's own scanner without its two regex matches per call: a third of the time
# on short records (the whitespace around a line is stripped instead). The ignore:
# typeshed types make_scanner's argument as itself; it takes a decoder.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _records(data: bytes) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(_text_stream(data), 1):
        text = line.strip()
        if not text:
            continue
        try:
            rec, end = _scan_json(text, 0)
        except StopIteration:  # the scanner's "no JSON value here"
            raise Unreadable(f"line {n} is not JSON") from None
        except (ValueError, RecursionError) as e:
            raise Unreadable(f"line {n} is not JSON: {_why(e)}") from None
        if end != len(text):
            raise Unreadable(f"line {n} is not JSON: extra data after the value")
        if not isinstance(rec, dict):
            raise Unreadable(f"line {n} is not a JSON object")
        yield rec


@dataclass
class _Counts:
    old: int = 0
    new: int = 0
    changed: int = 0  # by position
    by_column: Counter[str] = field(default_factory=Counter)
    balance: Counter[int] = field(default_factory=Counter)  # row hash: old − new


def _compare_tables(fmt: str, old: _Table, new: _Table) -> dict[str, Any]:
    """One pass over both tables: rows compared by position on the shared columns,
    and each row's hash counted, for the match by content."""
    shared = [c for c in old.columns if c in set(new.columns)]
    pick_o, pick_n = _picker(old.columns, shared), _picker(new.columns, shared)
    c = _Counts()
    old_h: list[int] = []
    new_h: list[int] = []
    # rows are never None: None is the shorter table's fill
    for po, pn in zip_longest(map(pick_o, old.rows), map(pick_n, new.rows)):
        if po is not None:
            old_h.append(hash(po))
        if pn is not None:
            new_h.append(hash(pn))
        if po is not None and pn is not None and po != pn:
            c.changed += 1
            c.by_column.update(k for k, x, y in zip(shared, po, pn, strict=True) if x != y)
    c.old, c.new = len(old_h), len(new_h)
    # 64-bit hashes counted in C; a collision (~n²/2⁶⁴) could hide one changed row
    c.balance = Counter(old_h)
    c.balance.subtract(new_h)
    out = _table_result(fmt, old.columns, new.columns, c)
    if old.types is not None and new.types is not None:  # a typed format (Parquet)
        out["columns"]["types_changed"] = {
            k: {"old": old.types[k], "new": new.types[k]}
            for k in shared
            if old.types[k] != new.types[k]
        }
    return out


def _picker(columns: list[str], shared: list[str]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A row's cells in the shared columns' order, as a tuple (compared, hashed)."""
    if columns == shared:
        return tuple
    idx = [columns.index(k) for k in shared]
    if len(idx) == 1:
        i = idx[0]
        return lambda row: (row[i],)
    return itemgetter(*idx) if idx else lambda row: ()


def _table_result(fmt: str, old_cols: list[str], new_cols: list[str], c: _Counts) -> dict[str, Any]:
    removed = sum(v for v in c.balance.values() if v > 0)
    added = sum(-v for v in c.balance.values() if v < 0)
    by_position = c.changed + abs(c.new - c.old)
    # the matching that accounts for the change with fewer differing rows: position
    # keeps which cells changed (an edit, an append); content sees through inserted,
    # deleted and reordered rows, where position would call every later row changed
    if by_position <= added + removed:
        rows = {
            "old": c.old,
            "new": c.new,
            "added": max(c.new - c.old, 0),
            "removed": max(c.old - c.new, 0),
            "changed": c.changed,
        }
        matched, per_column = "position", dict(sorted(c.by_column.items()))
    else:
        rows = {"old": c.old, "new": c.new, "added": added, "removed": removed, "changed": 0}
        matched, per_column = "content", {}
    out: dict[str, Any] = {
        "format": fmt,
        "rows": rows,
        "columns": {
            "old": len([x for x in old_cols if x != EXTRA]),
            "new": len([x for x in new_cols if x != EXTRA]),
            "added": [x for x in new_cols if x not in set(old_cols) and x != EXTRA],
            "removed": [x for x in old_cols if x not in set(new_cols) and x != EXTRA],
            "changed_values": per_column,
        },
        "matched_by": matched,
    }
    if not [x for x in old_cols if x in set(new_cols) and x != EXTRA] and old_cols and new_cols:
        # no column in common: every row "matches" on nothing, which says nothing
        out["rows"] = {"old": c.old, "new": c.new, "added": 0, "removed": 0, "changed": 0}
        out["columns"]["changed_values"], out["matched_by"] = {}, None
    elif matched == "content" and not (added or removed) and c.changed:
        out["reordered"] = True
    return out


# what a malformed side raises while it is parsed (ValueError covers bad JSON and
# pyarrow's ArrowInvalid; RecursionError: JSON nested thousands deep; TypeError: a
# value pyarrow hands back that does not compare)
_UNREADABLE = (
    Unreadable,
    csv.Error,
    UnicodeDecodeError,
    ValueError,
    OverflowError,
    RecursionError,
    TypeError,
)


def _tabular(fmt: str, old: bytes | None, new: bytes | None) -> dict[str, Any]:
    label = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "parquet": "Parquet"}[fmt]
    load: Callable[[bytes | None], _Table]
    if fmt == "jsonl":
        load = _jsonl_table
    elif fmt == "parquet":
        load = _parquet_table
    else:
        delim = "," if fmt == "csv" else "\t"
        load = lambda d: _csv_table(d, delim)  # noqa: E731
    try:
        return _compare_tables(fmt, _load(load, old, "old", label), _load(load, new, "new", label))
    except _NewKey:  # JSON Lines whose first record did not have every key
        load = functools.partial(_jsonl_table, guess=False)
        return _compare_tables(fmt, _load(load, old, "old", label), _load(load, new, "new", label))


def _load(
    load: Callable[[bytes | None], _Table], data: bytes | None, side: str, label: str
) -> _Table:
    """``load(data)``, its rows read as a stream: an error, met at once or at row
    1,000,000, is a note that says which version could not be read."""
    try:
        table = load(data)
    except _UNREADABLE as e:
        raise _Skip(f"could not read the {side} version as {label}: {_why(e)}") from None

    def rows() -> Iterator[Sequence[Any]]:
        try:
            yield from table.rows
        except _UNREADABLE as e:
            raise _Skip(f"could not read the {side} version as {label}: {_why(e)}") from None

    return _Table(table.columns, rows(), table.types)


def _why(e: BaseException) -> str:
    """The error, short and printable: a parser's message may quote the file's bytes,
    and a terminal must not run escape sequences taken from a data file."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 ({e.reason})"
    return printable(str(e), 200)


def _parquet_table(data: bytes | None) -> _Table:
    if data is None:
        return _empty()
    try:  # lazy: pyarrow is an optional extra (runbase[data]) and heavy to import
        import pyarrow.parquet as pq
    except ImportError:
        raise _Skip("install runbase[data] to diff Parquet contents") from None
    import pyarrow as pa  # lazy: see above

    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        columns = _unique([str(n) for n in pf.schema_arrow.names])
        types = [str(t) for t in pf.schema_arrow.types]
        rows_n = pf.metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as e:
        raise Unreadable(str(e)) from None
    if rows_n > MAX_PARQUET_ROWS:  # compressed, a small file can hold any number of rows
        raise _Skip(f"over {MAX_PARQUET_ROWS:,} rows ({rows_n:,})")

    def rows() -> Iterator[tuple[Any, ...]]:
        try:
            for batch in pf.iter_batches():
                yield from zip(*(_cells(pa, col) for col in batch.columns), strict=True)
        except (pa.ArrowException, OSError) as e:
            raise Unreadable(str(e)) from None

    return _Table(columns, rows(), dict(zip(columns, types, strict=True)))


_NAN = ("float", "NaN")  # one key for every NaN (not equal to itself, yet the same cell)


def _cells(pa: Any, col: Any) -> list[Any]:
    """A Parquet column's values as comparable keys: NaN equals NaN (it is the same
    cell); nested values (lists, structs, maps) as JSON. Other values as they are."""
    values = col.to_pylist()
    if pa.types.is_floating(col.type):
        return [_NAN if v != v else v for v in values]
    if pa.types.is_nested(col.type):
        return [json.dumps(v, sort_keys=True, default=repr) for v in values]
    return values


# -- text --------------------------------------------------------------------------


def _text(fmt: str, old: bytes | None, new: bytes | None) -> dict[str, Any]:
    sides = []
    for side, data in (("old", old), ("new", new)):
        try:
            # a hash per line, not the line: memory is 8 bytes a line however long
            sides.append([] if data is None else list(map(hash, _text_stream(data))))
        except UnicodeDecodeError as e:
            raise _Skip(f"could not read the {side} version as text: {_why(e)}") from None
    a, b = sides
    out: dict[str, Any] = {"format": "text"}
    if max(len(a), len(b)) <= MAX_DIFFLIB_LINES:
        added = removed = 0
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                removed += i2 - i1
                added += j2 - j1
        out["matched_by"] = "sequence"
    else:
        balance = Counter(a)
        balance.subtract(b)
        removed = sum(v for v in balance.values() if v > 0)
        added = sum(-v for v in balance.values() if v < 0)
        out["matched_by"] = "content"
        if not (added or removed) and a != b:
            out["reordered"] = True
    out["lines"] = {"old": len(a), "new": len(b), "added": added, "removed": removed}
    return out


# -- directories -------------------------------------------------------------------


def _dir_diff(
    store: Store, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any]:
    try:
        ea, eb = (_dir_entries(store, side) for side in (old, new))
    except _Skip as e:
        return {"format": "dir", "skipped": str(e)}
    paths = {
        "added": sorted(eb.keys() - ea.keys()),
        "removed": sorted(ea.keys() - eb.keys()),
        "changed": sorted(p for p in ea.keys() & eb.keys() if ea[p] != eb[p]),
    }
    return {
        "format": "dir",
        "files": {"old": len(ea), "new": len(eb), **{k: len(v) for k, v in paths.items()}},
        "paths": {k: v[:MAX_PATHS] for k, v in paths.items()},
        "paths_truncated": any(len(v) > MAX_PATHS for v in paths.values()),
    }


def _dir_entries(store: Store, side: dict[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    if side is None:
        return {}
    oid = side.get("oid")
    if not isinstance(oid, str):
        raise _Skip("the directory was not hashed")
    try:
        entries = load_manifest(store, oid, max_size=MAX_BYTES)
    except ObjectTooLarge:
        raise _Skip(f"its manifest is over {MAX_BYTES >> 20} MiB") from None
    except FileNotFoundError:
        raise _Skip(f"the manifest {oid[:19]}… is not stored") from None
    except (OSError, ValueError, RunbaseError) as e:
        raise _Skip(f"could not read the manifest {oid[:19]}…: {_why(e)}") from None
    return {e["path"]: (e.get("type"), e.get("oid"), e.get("target")) for e in entries}


# -- one line ----------------------------------------------------------------------


def _describe_table(c: dict[str, Any]) -> str:
    r, cols = c["rows"], c["columns"]
    parts = []
    if c.get("matched_by") is None:
        parts.append(f"no column in common, {r['old']:,} → {r['new']:,} rows")
    elif r["changed"]:
        parts.append(f"{r['changed']:,} of {r['old']:,} rows differ")
    for k in ("added", "removed"):
        if r[k]:
            parts.append(f"{r[k]:,} row{'s' if r[k] != 1 else ''} {k}")
    if not parts:  # nothing differs on the shared columns
        parts.append("same rows, reordered" if c.get("reordered") else f"same {r['new']:,} rows")
    elif c.get("matched_by") == "content":
        parts[-1] += " (matched by content)"
    for k in ("added", "removed"):
        names = cols[k]
        if names:
            quoted = ", ".join(_short_repr(n) for n in names[:5]) + (
                ", …" if len(names) > 5 else ""
            )
            parts.append(f"column{'s' if len(names) != 1 else ''} {quoted} {k}")
    for name, t in list((cols.get("types_changed") or {}).items())[:5]:
        parts.append(f"column {_short_repr(name)} {t['old']} → {t['new']}")
    return ", ".join(parts)


def _short_repr(name: str) -> str:
    # repr: quoted, control characters escaped (a column name is untrusted text)
    return repr(name if len(name) <= 40 else name[:39] + "…")


_COMPARE: dict[str, Callable[[str, bytes | None, bytes | None], dict[str, Any]]] = {
    "csv": _tabular,
    "tsv": _tabular,
    "jsonl": _tabular,
    "parquet": _tabular,
    "text": _text,
}
