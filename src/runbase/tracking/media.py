"""Images and tables a run logs: ``runbase.log_image`` and ``runbase.log_table``.

The caller's thread only checks the input and takes a private copy of it (an array is
copied, a file read: the program may reuse its buffer or overwrite the file at the next
step). One writer thread per process then encodes it (arrays and PIL images to PNG,
with Pillow), hashes it, writes it into the store's objects (as the tracked process
writes a file's preimage) and, once the object is there, spools a ``media`` entry that
the supervisor or watcher ingests into the ``media`` table (runbase.records.media). The
tracker waits for that thread before it closes (Tracker.settle), so a program that
ends, or dies of an exception, loses nothing it logged.

Nothing here raises into the program: bad input is one warning and is skipped. Files
and bytes are kept as they are once their first bytes say PNG, JPEG, GIF or WebP (a
name says nothing). Over 16 MiB or 50 megapixels: skipped, with a warning.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.core import fsname
from runbase.core._safe import warn_once
from runbase.core.shapes import I64, MAX_CAPTION, MAX_NAME
from runbase.records.media import MAX_ITEMS, TABLE_MIME
from runbase.store.objects import LocalObjects
from runbase.tracking import tracker as _tracker

MAX_BYTES = 16 << 20  # an image's (or a table's) bytes as stored
MAX_PIXELS = 50_000_000
MAX_TABLE_ROWS = 100_000
MAX_PENDING_BYTES = 256 << 20  # copies waiting for the writer; beyond, the caller waits
INSTALL_HINT = "pip install 'runbase[media]'"


# -- what the program calls ------------------------------------------------------------------


def log_image(
    key: Any, image: Any, step: Any = None, caption: Any = None, when: float | None = None
) -> None:
    """Log ``image`` (or a list of images, ``idx`` 0..n-1) under ``key`` at ``step``
    (default: the key's previous step + 1). ``when``: the time it was made (default:
    now). Never raises."""
    when = time.time() if when is None else when
    try:
        t = _tracker.active()
        if t is None or not _good_key(key, "image"):
            return
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if not images or len(images) > MAX_ITEMS:
            warn_once(f"media-count-{key}", f"image {key!r}: give 1 to {MAX_ITEMS} images; skipped")
            return
        captions = _captions(caption, len(images))
        items = []
        for i, img in enumerate(images):
            item = _snapshot(key, img)
            if item is not None:
                items.append((item, captions[i]))
        if items:
            _submit(_Job(t, "image", key, _step(t, "image", key, step), when, items))
    except Exception as e:  # noqa: BLE001 - tracking never breaks training
        warn_once(f"media-{key}", f"could not log image {key!r}: {type(e).__name__}: {e}")


def log_table(key: Any, data: Any, step: Any = None, when: float | None = None) -> None:
    """Log ``data`` (a pandas DataFrame, a list of dicts, or a dict of columns) as table
    ``key`` at ``step``. Over 100,000 rows: the first ones, with a warning. Never raises."""
    when = time.time() if when is None else when
    try:
        t = _tracker.active()
        if t is None or not _good_key(key, "table"):
            return
        table = _table(key, data)
        if table is not None:
            _submit(_Job(t, "table", key, _step(t, "table", key, step), when, [(table, None)]))
    except Exception as e:  # noqa: BLE001 - tracking never breaks training
        warn_once(f"media-{key}", f"could not log table {key!r}: {type(e).__name__}: {e}")


def _good_key(key: Any, what: str) -> bool:
    if isinstance(key, str) and 0 < len(key) <= MAX_NAME and fsname.storable(key):
        return True
    warn_once(
        f"media-key-{what}",
        f"the key of a logged {what} must be a string of 1 to {MAX_NAME} characters, "
        f"not {str(key)[:80]!r}; skipped",
    )
    return False


def _captions(caption: Any, n: int) -> list[str | None]:
    if caption is None:
        return [None] * n
    if isinstance(caption, (list, tuple)):
        out = [
            None if c is None else fsname.make_storable(str(c))[:MAX_CAPTION] for c in caption[:n]
        ]
        return out + [None] * (n - len(out))
    return [fsname.make_storable(str(caption))[:MAX_CAPTION]] * n


_steps: dict[tuple[str, str, str], int] = {}
_steps_lock = threading.Lock()


def _step(t: _tracker.Tracker, kind: str, key: str, step: Any) -> int:
    """``step`` as an int, or the key's previous step + 1 (runbase.log's rule)."""
    s = None if step is None else _tracker._to_int(step)
    if step is not None and (s is None or not -I64 <= s < I64):
        warn_once("media-step", f"step must be an integer, got {step!r}; using the next step")
        s = None
    with _steps_lock:
        if s is None:
            s = _steps.get((t.run_id, kind, key), -1) + 1
        _steps[(t.run_id, kind, key)] = s
    return s


# -- the caller's thread: check and copy ----------------------------------------------------


@dataclass
class _Snap:
    """A private copy of one image: ``array`` (H x W [x C] numpy), ``pil`` (a PIL image)
    or ``bytes`` (a file's or the caller's encoded bytes)."""

    form: str
    value: Any
    nbytes: int


def _snapshot(key: str, img: Any) -> _Snap | None:
    if isinstance(img, (bytes, bytearray, memoryview)):
        data = bytes(img)
        return _bytes_snap(key, data, "the bytes given")
    if isinstance(img, (str, os.PathLike)):
        return _file_snap(key, img)
    pil: Any = _loaded_class("PIL.Image", "Image")  # Any: Pillow's types are optional
    if pil is not None and isinstance(img, pil):
        w, h = img.size
        if not _pixels_ok(key, w, h):
            return None
        return _Snap("pil", img.copy(), w * h * max(1, len(img.getbands())))
    arr = as_array(img)
    if arr is None:
        _bad(
            key,
            f"a value of type {type(img).__name__} is not an image (give a numpy array, "
            "a PIL image, a torch tensor, a PNG/JPEG/GIF/WebP file or its bytes)",
        )
        return None
    return _array_snap(key, arr, torch=_is_torch(img))


def _bytes_snap(key: str, data: bytes, what: str) -> _Snap | None:
    if len(data) > MAX_BYTES:
        _too_large(key, f"{what} ({len(data)} bytes) are over the limit of {MAX_BYTES} bytes")
        return None
    return _Snap("bytes", data, len(data))


def _file_snap(key: str, path: Any) -> _Snap | None:
    name = os.fsdecode(os.fspath(path))
    try:
        size = os.stat(name).st_size
        if size > MAX_BYTES:
            _too_large(key, f"{name} ({size} bytes) is over the limit of {MAX_BYTES} bytes")
            return None
        with open(name, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        _bad(key, f"cannot read {name}: {e.strerror or e}")
        return None
    if sniff(data) is None:  # said now, with the file's name
        _bad(key, f"{name} is not a PNG, JPEG, GIF or WebP image")
        return None
    return _bytes_snap(key, data, name)


def _loaded_class(module: str, name: str) -> type | None:
    """``module.name`` when that module is loaded, without importing it: a value of
    that class can exist only then. None while another thread is still importing it
    (the writer thread imports Pillow: its module is in sys.modules, half made)."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls if isinstance(cls, type) else None


def _is_torch(x: Any) -> bool:
    tensor = _loaded_class("torch", "Tensor")
    return tensor is not None and isinstance(x, tensor)


def as_array(x: Any) -> Any:
    """A numpy view of an array-like (numpy, torch, anything with ``__array__``), or None
    (also used by integrations.tensorboard)."""
    ndarray = _loaded_class("numpy", "ndarray")
    if ndarray is None:
        return None
    if isinstance(x, ndarray):
        return x
    np = sys.modules["numpy"]
    if _is_torch(x):
        t = x.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other types numpy does not have
            return t.float().numpy()
    if hasattr(x, "numpy") and callable(x.numpy):  # TensorFlow, JAX: their own copy
        return np.asarray(x.numpy())
    if hasattr(x, "__array__"):
        return np.asarray(x)
    return None


def _array_snap(key: str, arr: Any, torch: bool) -> _Snap | None:
    if not _has_pillow():
        _no_pillow(key)
        return None
    hwc = _to_hwc(arr, torch)
    if hwc is None:
        shape = tuple(arr.shape)
        _bad(key, f"an array of shape {shape} is not an image (H x W, H x W x 1/3/4, C x H x W)")
        return None
    if hwc.dtype.kind not in "buif":
        _bad(key, f"an array of {hwc.dtype} is not an image (uint8, or floats in [0, 1])")
        return None
    h, w = int(hwc.shape[0]), int(hwc.shape[1])
    if not _pixels_ok(key, w, h):
        return None
    np = sys.modules["numpy"]
    copy = np.array(hwc, copy=True)  # the caller may change its array at the next step
    return _Snap("array", copy, int(copy.nbytes))


def _to_hwc(arr: Any, torch: bool) -> Any:
    """H x W or H x W x C (C = 1, 3, 4) as a view; C x H x W is transposed (a torch
    tensor's layout, and a numpy array's whose last axis cannot be channels)."""
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        return None
    chw = arr.shape[0] in (1, 3, 4) and (torch or arr.shape[2] not in (1, 3, 4))
    if chw:
        arr = arr.transpose(1, 2, 0)
    return arr if arr.shape[2] in (1, 3, 4) else None


def _pixels_ok(key: str, w: int, h: int) -> bool:
    if w <= 0 or h <= 0:
        _bad(key, f"an image of {w} x {h} pixels is empty")
        return False
    if w * h > MAX_PIXELS:
        _too_large(
            key, f"{w} x {h} pixels is over the limit of {MAX_PIXELS // 1_000_000} megapixels"
        )
        return False
    return True


def _no_pillow(key: str) -> None:
    warn_once(
        "media-pillow",
        f"image {key!r}: encoding an array as PNG needs Pillow ({INSTALL_HINT}); "
        "images given as arrays are skipped",
    )


def _bad(key: str, why: str) -> None:
    warn_once(f"media-bad-{key}", f"image {key!r}: {why}; skipped")


def _too_large(key: str, why: str) -> None:
    warn_once(f"media-large-{key}", f"image {key!r}: {why}; skipped")


_pillow: list[bool] = []


def _has_pillow() -> bool:
    if not _pillow:
        import importlib.util  # lazy: only when an array is logged

        _pillow.append(importlib.util.find_spec("PIL") is not None)
    return _pillow[0]


# -- tables -----------------------------------------------------------------------------------


@dataclass
class _Table:
    columns: list[str]
    rows: list[list[Any]]
    total: int
    nbytes: int = 0


def _table(key: str, data: Any) -> _Table | None:
    """``data`` as columns and rows of JSON values (a copy: the caller's frame may change)."""
    if _is_dataframe(data):
        columns, rows, total = _frame_rows(data)
    elif isinstance(data, Mapping):
        names = [str(c) for c in data]
        cols = [list(v) if _iterable(v) else [v] for v in data.values()]
        total = max((len(c) for c in cols), default=0)
        rows = [
            [c[i] if i < len(c) else None for c in cols] for i in range(min(total, MAX_TABLE_ROWS))
        ]
        columns = names
    elif (
        isinstance(data, Sequence)
        and not isinstance(data, (str, bytes))
        and all(isinstance(r, Mapping) for r in data)
    ):
        columns = list(dict.fromkeys(str(k) for r in data for k in r))
        total = len(data)
        rows = [[_get(r, c) for c in columns] for r in data[:MAX_TABLE_ROWS]]
    else:
        warn_once(
            f"media-bad-{key}",
            f"table {key!r}: a value of type {type(data).__name__} is not a table (give a "
            "pandas DataFrame, a list of dicts or a dict of columns); skipped",
        )
        return None
    if total > MAX_TABLE_ROWS:
        warn_once(
            f"media-rows-{key}",
            f"table {key!r}: {total} rows, more than {MAX_TABLE_ROWS}; the first "
            f"{MAX_TABLE_ROWS} are kept",
        )
    clean = [[_cell(v) for v in r] for r in rows]
    return _Table(columns, clean, total, nbytes=64 * len(columns) * max(1, len(clean)))


def _is_dataframe(x: Any) -> bool:
    frame = _loaded_class("pandas", "DataFrame")
    return frame is not None and isinstance(x, frame)


def _frame_rows(df: Any) -> tuple[list[str], list[list[Any]], int]:
    if type(df.index).__name__ != "RangeIndex":  # a meaningful index (groupby): columns too
        df = df.reset_index()
    total = len(df)
    part = df.iloc[:MAX_TABLE_ROWS]
    columns = [str(c) for c in part.columns]
    return columns, [list(r) for r in part.itertuples(index=False, name=None)], total


def _iterable(v: Any) -> bool:
    return not isinstance(v, (str, bytes, Mapping)) and hasattr(v, "__iter__")


def _get(row: Mapping[Any, Any], column: str) -> Any:
    if column in row:
        return row[column]
    return next((v for k, v in row.items() if str(k) == column), None)


def _cell(v: Any) -> Any:
    """A cell as a JSON value: numbers, text, booleans, null (NaN and infinities too:
    strict JSON has none); anything else as its text."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if -I64 <= v < I64 else str(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    item = getattr(v, "item", None)  # numpy scalars
    if item is not None and type(v).__module__ == "numpy":
        try:
            return _cell(item())
        except (TypeError, ValueError):
            pass
    if type(v).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    iso = getattr(v, "isoformat", None)  # datetimes, dates, pandas Timestamps
    if callable(iso):
        try:
            return str(iso())
        except (TypeError, ValueError):
            pass
    return str(v)


def table_json(table: _Table) -> tuple[bytes, int]:
    """The stored object, ``{"columns", "rows", "total_rows", "truncated"}`` as UTF-8
    JSON, cut to fewer rows when it would be over 16 MiB; and how many rows it holds."""
    rows = table.rows
    while True:
        body = json.dumps(
            {
                "columns": table.columns,
                "rows": rows,
                "total_rows": table.total,
                "truncated": len(rows) < table.total,
            },
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8", "backslashreplace")  # a lone surrogate cannot be UTF-8
        if len(body) <= MAX_BYTES or not rows:
            return body, len(rows)
        rows = rows[: int(len(rows) * MAX_BYTES / len(body) * 0.9)]


# -- image bytes: what their first bytes say ------------------------------------------------


def sniff(data: bytes) -> tuple[str, int, int] | None:
    """``(media type, width, height)`` of PNG, JPEG, GIF or WebP bytes, read from their
    header; None for anything else (or a header cut short)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return "image/png", w, h
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return "image/gif", w, h
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
    except struct.error:  # cut short
        return None
    return None


def _webp(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ("image/webp", w, h) if len(data) >= 30 else None
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return "image/webp", w & 0x3FFF, h & 0x3FFF
    return None


# JPEG start-of-frame markers (baseline, progressive, lossless, ...): they give the size
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame before it
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return "image/jpeg", w, h
        i += 2 + length
    return None


# -- the writer thread: encode, hash, store, spool ------------------------------------------


@dataclass
class _Job:
    tracker: _tracker.Tracker
    kind: str
    key: str
    step: int
    when: float
    items: list[tuple[Any, str | None]]  # (_Snap or _Table, caption)
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(getattr(item, "nbytes", 0) for item, _ in self.items)


class _Writer:
    """One thread that stores what the program's threads logged, in order."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: collections.deque[_Job] = collections.deque()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.pending = 0  # jobs queued or being stored (read without the lock: settle)
        self.pending_bytes = 0
        self.objects: dict[str, LocalObjects] = {}
        self.thread = threading.Thread(target=self._loop, name="runbase-media", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        # a program far ahead of the encoder waits for it: memory stays bounded
        while self.pending_bytes > MAX_PENDING_BYTES and self.pending and self.thread.is_alive():
            time.sleep(0.005)
        if not self.thread.is_alive():
            self._store(job)  # the thread is gone (it never should be): store here
            return
        with self.lock:
            self.pending += 1
            self.pending_bytes += job.nbytes
        self.jobs.append(job)
        self.wake.set()

    def _loop(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            while self.jobs:
                job = self.jobs.popleft()
                try:
                    self._store(job)
                finally:
                    with self.lock:
                        self.pending -= 1
                        self.pending_bytes -= job.nbytes

    def settle(self, timeout: float) -> None:
        """Wait for the queue to empty; lock-free, as a SIGTERM handler may call it."""
        if os.getpid() != self.pid:
            return  # a forked child: that thread and its queue are the parent's
        deadline = time.monotonic() + timeout
        while self.pending and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.pending:
            warn_once(
                "media-settle",
                f"{self.pending} logged images or tables were still being stored when the "
                "run ended; they are not recorded",
            )

    def _store(self, job: _Job) -> None:
        try:
            items = [i for i in (self._item(job, x, c) for x, c in job.items) if i]
            if items:
                job.tracker.event(
                    "media", media=job.kind, key=job.key, step=job.step, at=job.when, items=items
                )
        except Exception as e:  # noqa: BLE001 - the writer must never die
            warn_once(
                f"media-store-{job.key}",
                f"could not store {job.kind} {job.key!r}: {type(e).__name__}: {e}",
            )

    def _item(self, job: _Job, x: Any, caption: str | None) -> dict[str, Any] | None:
        if isinstance(x, _Table):
            data, h = table_json(x)
            mime, w = TABLE_MIME, len(x.columns)
        else:
            encoded = _encode(job.key, x)
            if encoded is None:
                return None
            data, mime, w, h = encoded
        if len(data) > MAX_BYTES:
            _too_large(job.key, f"{len(data)} bytes encoded, over the limit of {MAX_BYTES}")
            return None
        oid = self._objects(job.tracker.store_root).put_bytes(data)  # before it is named
        return {
            "oid": oid,
            "mime": mime,
            "size": len(data),
            "width": w,
            "height": h,
            "caption": caption,
        }

    def _objects(self, root: str) -> LocalObjects:
        objs = self.objects.get(root)
        if objs is None:
            objs = self.objects[root] = LocalObjects(Path(root) / "objects", Path(root) / "tmp")
        return objs


def _encode(key: str, snap: _Snap) -> tuple[bytes, str, int, int] | None:
    if snap.form == "bytes":
        info = sniff(snap.value)
        if info is None:
            _bad(key, "the bytes given are not a PNG, JPEG, GIF or WebP image")
            return None
        mime, w, h = info
        if not _pixels_ok(key, w, h):
            return None
        return snap.value, mime, w, h
    try:
        from PIL import Image  # lazy: Pillow (runbase[media]), on the writer thread
    except ImportError:
        _no_pillow(key)
        return None

    img = snap.value if snap.form == "pil" else _array_image(key, snap.value, Image)
    if img is None:
        return None
    if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue(), "image/png", img.width, img.height


def _array_image(key: str, arr: Any, image_module: Any) -> Any:
    np = sys.modules["numpy"]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            warn_once(
                f"media-range-{key}", f"image {key!r}: float values outside [0, 1] are clipped"
            )
        arr = (np.clip(arr, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            _bad(key, "integer values must be in 0..255 (uint8), or give floats in [0, 1]")
            return None
        arr = arr.astype(np.uint8)
    return image_module.fromarray(np.ascontiguousarray(arr))  # L, RGB or RGBA by shape


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _submit(job: _Job) -> None:
    global _writer
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():  # first use, or a forked child
            _writer = _Writer()
        w = _writer
    w.submit(job)


def _settle(_t: _tracker.Tracker, timeout: float) -> None:
    w = _writer
    if w is not None:
        w.settle(timeout)


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: a lock another thread of the
    parent held stays held forever in the child, and the parent's writer thread and its
    queue are not there. Fresh locks, and a writer of its own on first use."""
    global _writer, _writer_lock, _steps_lock
    _writer = None
    _writer_lock = threading.Lock()
    _steps_lock = threading.Lock()


_tracker.on_settle(_settle)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
