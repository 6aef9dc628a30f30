"""Run a callback when a module is imported (or now, if it already is).

Lets the bootstrap patch argparse (and, later, frameworks) without importing them
eagerly, which would slow down every tracked Python process.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `from typing import` costs ~8 ms in every tracked process
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

# Duck-typed finder/loader: importing importlib.abc would cost every tracked process ~3 ms.

_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    mod = sys.modules.get(name)
    if mod is not None:
        _run(callback, mod)
        return
    _callbacks.setdefault(name, []).append(callback)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _run(callback: Callable[[ModuleType], None], mod: ModuleType) -> None:
    try:
        callback(mod)
    except Exception:  # noqa: BLE001 - a hook must never break an import
        pass


class _Loader:
    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        for cb in _callbacks.pop(self.name, []):
            _run(cb, module)


class _Finder:
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_finder = _Finder()
