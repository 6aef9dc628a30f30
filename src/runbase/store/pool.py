"""Open stores lent out one at a time: the web UI and the team server serve requests on
several threads, and a SQLite connection must not be used by two threads at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from runbase.store import Store


class StorePool:
    """Opened stores, each lent to one request at a time (a SQLite connection must not
    be used by two threads at once). Grows to the number of concurrent requests."""

    def __init__(self, opener: Callable[[], Store]) -> None:
        self._opener = opener
        self._idle: list[Store] = []
        self._all: list[Store] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Store]:
        with self._lock:
            store = self._idle.pop() if self._idle else None
        if store is None:
            store = self._opener()
            with self._lock:
                self._all.append(store)
        try:
            yield store
        finally:
            with self._lock:
                self._idle.append(store)

    def close(self) -> None:
        with self._lock:
            stores, self._all, self._idle = self._all, [], []
        for s in stores:
            s.close()
