"""The active run inside a process: an in-memory buffer and a flush thread.

``log()`` is the hot path: one dict append (measured ~2 M calls/s on the 2-core dev
machine). A daemon thread moves the buffer into this process's spool file every
0.25 s (sooner under load, so memory stays flat), where the supervisor or watcher
ingests it into the store. Stdlib only: this module is imported into every Python
child of ``runbase run`` and must not slow start-up.
"""

from __future__ import annotations

import atexit
import marshal
import os
import sys
import threading
import time
from collections.abc import Mapping
from itertools import chain

from runbase.core._imphook import when_imported
from runbase.core._safe import warn_once
from runbase.core.spool import (
    KIND_KEY,
    STEP_KEY,
    TIME_KEY,
    encode_frame,
    open_spool_file,
    write_all,
)

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_FLUSH_EVERY = 0.25  # seconds: bounds what a SIGKILL can lose
_FLUSH_AT = 20_000  # entries: bounds memory under a hot logging loop
_MAX_PENDING = 2_000_000  # entries kept in memory while the spool cannot be written
_FSYNC_EVERY = 1.0
_SETTLE_TIMEOUT = 300.0  # s: a run's end waits this long for images still being encoded
_EMERGENCY_SETTLE = 2.0  # s: the same, dying of SIGTERM


class Tracker:
    """Buffers one process's contributions to a run and spools them to disk."""

    def __init__(self, run_id: str, store_root: str) -> None:
        self.run_id = run_id
        self.store_root = store_root
        self.spool_dir = os.path.join(store_root, "spool", run_id)
        self.buf: list[dict[str, Any]] = []
        self._pending: list[bytes] = []
        self._pending_entries = 0
        self._dropped = 0
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_fsync = 0.0
        self.closed = False
        # Under `runbase run` the supervisor reports an unwritable store (one warning for
        # the whole run, not one per process); a process of its own reports it itself.
        self._quiet_io = bool(os.environ.get("RUNBASE_RUN_ID"))
        self._start()

    # -- lifecycle ----------------------------------------------------------------
    def _start(self) -> None:
        self._open_spool()
        self._thread = threading.Thread(target=self._loop, name="runbase-flush", daemon=True)
        self._thread.start()

    def _open_spool(self) -> None:
        try:
            os.makedirs(self.spool_dir, exist_ok=True)
            self._fd = open_spool_file(self.spool_dir)
        except OSError as e:
            self._fd = None
            self._io_warning(f"cannot write to the run's spool in {self.spool_dir}: {e}")

    def after_fork_in_child(self) -> None:
        """A forked worker gets its own spool file and thread; the parent's buffer stays with it."""
        self.buf.clear()
        self._pending = []
        self._pending_entries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fd = None
        self._start()

    def close(self) -> None:
        if self.closed:
            return
        self.settle()  # work still in flight (images being encoded) reaches the buffer
        self.closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        if self._fd is not None:
            # no fsync here: a process exit keeps the page cache, and the reader comes next
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def settle(self, timeout: float = _SETTLE_TIMEOUT) -> None:
        """Wait (up to ``timeout`` s each) for the work other modules do for this
        tracker off the caller's thread (tracking.media encodes images there): what it
        produces is then in the buffer, for the next flush. Never raises."""
        for hook in list(_settle_hooks):
            try:
                hook(self, timeout)
            except Exception as e:  # noqa: BLE001 - closing must go on
                warn_once("settle", f"could not finish recording: {type(e).__name__}: {e}")

    # -- buffering ------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> None:
        fields[KIND_KEY] = kind
        fields[TIME_KEY] = time.time()
        self.buf.append(fields)

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            if len(self.buf) >= _FLUSH_AT or now - last >= _FLUSH_EVERY:
                try:
                    self.flush()
                except Exception as e:  # noqa: BLE001 - the flush thread must never die
                    warn_once("flush", f"could not spool metrics: {type(e).__name__}: {e}")
                last = now

    def flush(self, timeout: float = -1) -> None:
        """Write everything buffered so far to the spool file. Never raises."""
        # The main thread holds off SIGTERM while it holds the lock, so the SIGTERM
        # handler (which runs on the main thread) can wait for the lock without deadlock.
        masked = _mask_term() if threading.current_thread() is threading.main_thread() else None
        if not self._lock.acquire(timeout=timeout):
            _unmask(masked)
            return
        try:
            n = len(self.buf)
            if n:
                batch = self.buf[:n]
                del self.buf[:n]  # appends racing with us land after index n: nothing lost
                frame = _encode(batch)
                if frame is not None:
                    self._pending.append(frame)
                    self._pending_entries += n
            self._write_pending()
        finally:
            self._lock.release()
            _unmask(masked)

    def emergency_flush(self) -> None:
        """Flush from a signal handler without waiting: the interrupted code may hold
        the lock. Frames are single O_APPEND writes, so they cannot interleave."""
        self.settle(_EMERGENCY_SETTLE)  # images being encoded: a moment, not more
        got = self._lock.acquire(timeout=1.0)  # held only by the flush thread, briefly
        try:
            n = len(self.buf)
            batch = self.buf[:n]
            del self.buf[:n]
            frames = list(self._pending) if got else []  # else the lock holder writes them
            if got:
                self._pending = []
            frame = _encode(batch) if batch else None
            if frame is not None:
                frames.append(frame)
            if frames and self._fd is None:
                self._open_spool()
            if self._fd is not None:
                for f in frames:
                    write_all(self._fd, f)
        except OSError:
            pass
        finally:
            if got:
                self._lock.release()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        if self._fd is None:
            self._open_spool()
            if self._fd is None:
                self._bound_pending()
                return
        try:
            while self._pending:
                # a frame torn by an error stays pending and is rewritten whole into a new
                # spool file (readers stop at a torn frame, so nothing is read twice)
                write_all(self._fd, self._pending[0])
                self._pending.pop(0)
            self._pending_entries = 0
            now = time.monotonic()
            if now - self._last_fsync > _FSYNC_EVERY:
                os.fsync(self._fd)
                self._last_fsync = now
        except OSError as e:
            self._io_warning(f"cannot write the run's spool ({e}); keeping data in memory")
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
            self._bound_pending()

    def _io_warning(self, message: str) -> None:
        if not self._quiet_io:
            warn_once("store", message)

    def _bound_pending(self) -> None:
        while self._pending_entries > _MAX_PENDING and len(self._pending) > 1:
            self._pending.pop(0)
            self._pending_entries = _MAX_PENDING  # approximate: frames are not re-counted
            self._dropped += 1
            warn_once(
                "spool-drop", "the store has been unwritable for long; dropping oldest metrics"
            )


def _mask_term() -> Any:
    try:
        import signal  # lazy: signal loads enum (~1 ms) in every tracked process; at first flush

        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (AttributeError, ValueError, OSError):
        return None


def _unmask(old: Any) -> None:
    if old is not None:
        import signal  # lazy: as in _mask_term

        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_FAST_TYPES = frozenset({float, int, str, dict, list, bool, type(None)})


def _encode(batch: list[dict[str, Any]]) -> bytes | None:
    # marshal silently writes numpy scalars as raw bytes (buffer protocol), so once numpy
    # is loaded, check the value types first: done in C, but ~120 ns per entry on the
    # flush thread (~15% of logging throughput), hence only when numpy can be there.
    if (
        "numpy" not in sys.modules
        or set(map(type, chain.from_iterable(map(dict.values, batch)))) <= _FAST_TYPES
    ):
        try:
            return encode_frame(batch)
        except ValueError:
            pass
    # numpy/torch scalars and other non-builtin values: coerce (slow path)
    try:
        return encode_frame([_coerce_entry(e) for e in batch])
    except Exception as e:  # noqa: BLE001
        warn_once("spool-encode", f"could not record a batch of values: {e}")
        return None


def _coerce_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if KIND_KEY in entry:
        for k, v in entry.items():
            out[k] = v if _marshallable(v) else repr(v)
        return out
    for k, v in entry.items():
        if k == STEP_KEY:
            out[k] = _to_int(v)
        elif k == TIME_KEY:
            out[k] = v
        else:
            f = to_float(v)
            if f is None:
                warn_once(
                    f"metric-type-{k}",
                    f"metric {k!r}: {type(v).__name__} value is not a number; skipped",
                )
            else:
                out[k] = f
    return out


def _marshallable(v: Any) -> bool:
    try:
        marshal.dumps(v)
        return True
    except ValueError:
        return False


def to_float(v: Any) -> float | None:
    """A metric value as a float: python/numpy numbers, 0-d tensors (``.item()``); else None."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    try:
        item = getattr(v, "item", None)
        if item is not None:
            v = item()
        if isinstance(v, (str, bytes)):
            return None
        return float(v)
    except Exception:
        return None


def _to_int(v: Any) -> int | None:
    try:
        f = float(v)
        return int(f) if f == int(f) else None
    except Exception:
        return None


# -- the process-wide active tracker -------------------------------------------------

_active: Tracker | None = None
_append: Any = None  # bound to _active.buf.append: log() must be one global lookup away


def activate(tracker: Tracker) -> None:
    global _active, _append
    _active = tracker
    _append = tracker.buf.append
    when_imported("multiprocessing.util", _hook_multiprocessing)


class _Token:
    pass


_mp_token = _Token()


def _hook_multiprocessing(mp_util: Any) -> None:
    # Forked multiprocessing workers leave through os._exit(), so atexit never runs,
    # and they clear finalizers registered before their bootstrap: register ours
    # from multiprocessing's own after-fork hook, which runs after that clearing.
    if getattr(mp_util, "_runbase_hooked", False):
        return
    mp_util._runbase_hooked = True
    mp_util.register_after_fork(_mp_token, lambda _t: _register_mp_finalizer(mp_util))


def _register_mp_finalizer(mp_util: Any) -> None:
    if _active is not None:
        mp_util.Finalize(None, _active.close, exitpriority=-100)


def deactivate() -> None:
    global _active, _append
    _active = None
    _append = None


def active() -> Tracker | None:
    return _active


def _after_fork() -> None:
    if _active is not None and not _active.closed:
        _active.after_fork_in_child()
        activate(_active)
        install_term_flush()


def install_term_flush() -> None:
    """Flush before dying of SIGTERM when nobody else handles it.

    multiprocessing terminates pool workers with SIGTERM; without this, their last
    ~0.25 s of metrics would be lost. The process still dies of SIGTERM afterwards.
    """
    import signal  # lazy: as in _mask_term

    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_term(signum: int, _frame: Any) -> None:
            try:
                if _active is not None:
                    _active.emergency_flush()
            finally:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):
        pass


def _at_exit() -> None:
    if _active is not None:
        _active.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)


# -- the hot path ----------------------------------------------------------------------

_time = time.time


def log(step: Any = None, **metrics: Any) -> None:
    """Record metric values, e.g. ``runbase.log(loss=0.31, acc=0.9, step=10)``.

    An in-memory append (no I/O). Values are numbers (Python, numpy, 0-d tensors);
    ``step`` defaults to the key's previous step + 1. ``log({"loss": x})`` also works.
    """
    metrics[TIME_KEY] = _time()
    if step is not None:
        if step.__class__ is int:
            metrics[STEP_KEY] = step
        else:
            _log_slow(step, metrics)
            return
    try:
        _append(metrics)
    except TypeError:  # no active run yet (_append is None)
        _log_without_run(metrics)


def _log_slow(step: Any, metrics: dict[str, Any]) -> None:
    if isinstance(step, Mapping):  # log({"loss": 0.1}) / log({"loss": 0.1}, step=3)
        s = metrics.pop("step", None)
        merged = {str(k): v for k, v in step.items()}
        merged[TIME_KEY] = metrics[TIME_KEY]
        log(s, **merged) if s is not None else _append_or_init(merged)
        return
    s = _to_int(step)
    if s is None:
        warn_once("step-type", f"step must be an integer, got {step!r}; using the next step")
    else:
        metrics[STEP_KEY] = s
    _append_or_init(metrics)


def _append_or_init(entry: dict[str, Any]) -> None:
    if _append is None:
        _log_without_run(entry)
    else:
        _append(entry)


def _log_without_run(entry: dict[str, Any]) -> None:
    if start_run() and _append is not None:
        _append(entry)


# -- starting a run on first use ---------------------------------------------------------

# Set by runbase.tracking.api (its ensure_run) when it is imported: what starts a run
# when something is recorded before init(). This module sits below the API and must
# not import it; the facade's `runbase.log` is loaded through the API, so it is set.
_run_starter: Callable[[], object] | None = None


def on_no_run(starter: Callable[[], object]) -> None:
    """Register what starts a run when a value is recorded without one."""
    global _run_starter
    _run_starter = starter


# Set by modules that work for a tracker off the caller's thread (tracking.media): each
# is called as ``hook(tracker, timeout)`` when the tracker settles (Tracker.settle).
_settle_hooks: list[Callable[[Tracker, float], None]] = []


def on_settle(hook: Callable[[Tracker, float], None]) -> None:
    """Register ``hook(tracker, timeout)``: finish the work queued for ``tracker``
    (within ``timeout`` s) before it closes, flushes at a run's end, or dies of SIGTERM.
    A hook called from a signal handler must not take locks the interrupted code may
    hold."""
    if hook not in _settle_hooks:
        _settle_hooks.append(hook)


def start_run() -> bool:
    """Whether a run is active, after starting one (through the registered starter) if
    there was none."""
    if _active is not None:
        return True
    if _run_starter is not None:
        _run_starter()
    return _active is not None
