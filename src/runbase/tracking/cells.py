"""In the kernel: the notebook file a run came from, and the cells that actually ran.

In IPython (a Jupyter kernel under classic Notebook, JupyterLab or VS Code, or a
terminal IPython), ``runbase.init()`` and ``%load_ext runbase``:

- find the notebook file: ``init(notebook=PATH)``, else VS Code's
  ``__vsc_ipynb_file__``, else ``$JPY_SESSION_NAME`` (Jupyter Server sets it to the
  notebook's path when it starts the kernel), else ``__session__`` (ipykernel's copy
  of it). Its bytes at ``init`` are stored, and kept in the code snapshot;
- record every cell executed while the run is active, from IPython's
  ``pre_run_cell``/``post_run_cell`` events: source, execution count, time, success.
  The saved file may differ from what ran (cells edited, re-run, run out of order,
  changes not saved yet);
- turn papermill's injected parameters cell, and cells tagged ``parameters`` in the
  notebook file, into params with source ``papermill``.

Cells are appended to ``spool/<run>/cells.jsonl`` as they run (a kernel that dies
keeps them, the cell it died in included); runbase.records.notebook stores them.
Never imports IPython.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlparse

from runbase.capture.secrets import scrub
from runbase.core._safe import warn_once
from runbase.core.runfiles import CELLS_FILE
from runbase.records.notebook import NOTEBOOK_MAX_BYTES, read_cell_lines
from runbase.tracking.params import record_params

CELL_MAX_CHARS = 1 << 20  # a cell's source is kept up to this many characters
PAPERMILL_HEADER = "# Parameters"  # the first line of the cell papermill injects


# -- in the kernel: finding the notebook -----------------------------------------------


def shell() -> Any:
    """The running IPython shell, or None. Never imports IPython."""
    mod = sys.modules.get("IPython")
    if mod is None:
        return None
    try:
        return mod.get_ipython()
    except Exception:  # noqa: BLE001
        return None


def find_notebook(ip: Any) -> tuple[str, str] | None:
    """``(absolute path, how it was found)`` of the kernel's notebook, if it can tell."""
    ns = getattr(ip, "user_ns", None) or {}
    candidates = (
        (ns.get("__vsc_ipynb_file__"), "vscode"),
        (os.environ.get("JPY_SESSION_NAME"), "jupyter"),
        (ns.get("__session__"), "session"),
    )
    for text, source in candidates:
        if isinstance(text, str) and text.strip():
            path = resolve_path(text)
            if path is not None:
                return path, source
    return None


def resolve_path(text: str) -> str | None:
    """The existing file ``text`` names: absolute, a ``file://`` URL, or relative to the
    kernel's directory (Jupyter may give the path relative to its root directory, and
    starts the kernel in the notebook's directory)."""
    text = text.strip()
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    p = os.path.expanduser(text)
    if os.path.isabs(p):
        return p if os.path.isfile(p) else None
    cwd = os.getcwd()
    candidates = [os.path.join(cwd, p), os.path.join(cwd, os.path.basename(p))]
    if os.path.dirname(p):
        d = cwd
        while os.path.dirname(d) != d:
            d = os.path.dirname(d)
            candidates.append(os.path.join(d, p))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.abspath(c)
    return None


def tagged_sources(path: str) -> set[str]:
    """Sources of the notebook's cells tagged ``parameters`` or ``injected-parameters``."""
    out: set[str] = set()
    try:
        if os.path.getsize(path) > NOTEBOOK_MAX_BYTES:
            return out
        with open(path, "rb") as f:
            nb = json.loads(f.read())
        for cell in nb.get("cells") or []:
            tags = (cell.get("metadata") or {}).get("tags") or []
            if cell.get("cell_type") == "code" and (
                "parameters" in tags or "injected-parameters" in tags
            ):
                src = cell.get("source")
                out.add(_norm("".join(src) if isinstance(src, list) else str(src or "")))
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return out


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


# -- in the kernel: papermill parameters -------------------------------------------------


def parameter_values(
    source: str, namespace: Mapping[str, Any], tagged: Collection[str] = ()
) -> dict[str, Any] | None:
    """The names a parameters cell assigns, with their values: papermill's injected
    cell (its first line is ``# Parameters``) or a cell whose source is that of a cell
    tagged ``parameters``/``injected-parameters`` in the notebook file. A value is the
    literal assigned (``float('nan')``, as papermill writes NaN, included), else the
    name's value in ``namespace`` (the cell has run). None for any other cell."""
    text = source.strip()
    if not text:
        return None
    if text.splitlines()[0].strip() != PAPERMILL_HEADER and _norm(source) not in tagged:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for name in (t.id for t in targets if isinstance(t, ast.Name)):
            try:
                out[name] = _literal(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                if name in namespace:
                    out[name] = namespace[name]
    return out


def _literal(node: Any) -> Any:
    if (  # float('nan'), float('inf'), float('-inf'): papermill's non-finite floats
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return float(node.args[0].value)
    return ast.literal_eval(node)


def history_parameters(ip: Any, tagged: Collection[str]) -> dict[str, Any]:
    """Parameters cells the kernel ran before the run started (a notebook's parameters
    cell usually runs before the cell that calls ``runbase.init()``)."""
    hist = getattr(getattr(ip, "history_manager", None), "input_hist_raw", None) or []
    ns = getattr(ip, "user_ns", None) or {}
    values: dict[str, Any] = {}
    for source in list(hist)[1:]:
        if isinstance(source, str):
            values.update(parameter_values(source, ns, tagged) or {})
    return values


# -- in the kernel: the executed cells --------------------------------------------------


class CellRecorder:
    """Appends the cells executed while a run is active to the run's spool.

    A cell is written when it starts (so a kernel killed mid-cell leaves it, with
    ``success`` null) and again when it ends; the later line wins. Cells nest when a
    cell calls ``get_ipython().run_cell(...)``: a stack pairs starts and ends.
    """

    def __init__(
        self, spool_dir: str, secrets: Collection[str], tagged: Collection[str], namespace: Any
    ) -> None:
        self.path = os.path.join(spool_dir, CELLS_FILE)
        self.secrets = secrets
        self.tagged = tagged
        self.namespace = namespace
        self.count = _next_index(self.path)  # a re-attached run (`runbase run`) goes on
        self.running: list[tuple[dict[str, Any], float]] = []  # (entry, start time)
        self.closed = False

    def begin(self, source: str, cell_id: Any, execution_count: Any) -> None:
        t0 = time.time()
        entry = {
            "index": self.count,
            "execution_count": execution_count if isinstance(execution_count, int) else None,
            "cell_id": cell_id if isinstance(cell_id, str) else None,
            "source": self._clean(source),
            "started_at": datetime.fromtimestamp(t0, tz=timezone.utc).isoformat(),
            "duration_s": None,
            "success": None,
            "error": None,
        }
        self.count += 1
        self.running.append((entry, t0))
        self._write(entry)

    def pre_run_cell(self, info: Any) -> None:
        source = getattr(info, "raw_cell", None)
        if self.closed or not isinstance(source, str) or not source.strip():
            return
        cur = _current_cell()  # IPython has set the cell's execution count by now
        count = cur[2] if cur is not None and cur[0] == source else None
        self.begin(source, getattr(info, "cell_id", None), count)

    def post_run_cell(self, result: Any) -> None:
        if self.closed:
            return
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", None)
        if not isinstance(source, str) or not source.strip():
            return
        if not self.running:  # its pre_run_cell came before this recorder existed
            self.begin(source, getattr(info, "cell_id", None), None)
        entry, t0 = self.running.pop()
        count = getattr(result, "execution_count", None)
        if isinstance(count, int):
            entry["execution_count"] = count
        entry["duration_s"] = round(time.time() - t0, 6)
        entry["success"] = bool(getattr(result, "success", False))
        err = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        if err is not None:
            entry["error"] = self._clean(f"{type(err).__name__}: {err}")[:2000]
        self._write(entry)
        if entry["success"]:
            values = parameter_values(source, self.namespace or {}, self.tagged)
            if values:
                record_params(values, source="papermill")

    def close(self) -> None:
        """The run ends: the cells running now (the one that ended it) are kept, their
        ``success`` null."""
        if self.closed:
            return
        self.closed = True
        while self.running:
            entry, t0 = self.running.pop()
            entry["duration_s"] = round(time.time() - t0, 6)
            self._write(entry)

    def _clean(self, text: str) -> str:
        if len(text) > CELL_MAX_CHARS:
            text = text[:CELL_MAX_CHARS]
        if self.secrets:
            text = scrub(text, self.secrets)
        return text

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "replace")
            # never creates the spool directory: gone means the run was finalized
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except (OSError, ValueError, TypeError):
            pass


def _next_index(path: str) -> int:
    cells = read_cell_lines(path)
    return cells[-1]["index"] + 1 if cells else 0


_recorder: CellRecorder | None = None
_hooked: set[int] = set()  # id() of the shells whose events carry our callbacks


def _pre_run_cell(info: Any = None) -> None:
    rec = _recorder
    if rec is not None:
        try:
            rec.pre_run_cell(info)
        except Exception as e:  # noqa: BLE001 - never break the user's cell
            warn_once("cells", f"could not record a notebook cell: {e}")


def _post_run_cell(result: Any = None) -> None:
    rec = _recorder
    if rec is not None:
        try:
            rec.post_run_cell(result)
        except Exception as e:  # noqa: BLE001
            warn_once("cells", f"could not record a notebook cell: {e}")


def _register(ip: Any) -> None:
    if id(ip) in _hooked:
        return
    ip.events.register("pre_run_cell", _pre_run_cell)
    ip.events.register("post_run_cell", _post_run_cell)
    _hooked.add(id(ip))


def unregister(ip: Any) -> None:
    if id(ip) not in _hooked:
        return
    for event, cb in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        try:
            ip.events.unregister(event, cb)
        except ValueError:
            pass
    _hooked.discard(id(ip))


def _current_cell() -> tuple[str, Any, Any] | None:
    """``(source, cell id, execution count)`` of the cell executing now, found on the
    stack (IPython's ``run_cell_async`` frame), or None outside a cell."""
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if code.co_name == "run_cell_async" and "interactiveshell" in code.co_filename:
            info, result = f.f_locals.get("info"), f.f_locals.get("result")
            source = getattr(info, "raw_cell", None)
            if isinstance(source, str):
                return (
                    source,
                    getattr(info, "cell_id", None),
                    getattr(result, "execution_count", None),
                )
            return None
        f = f.f_back  # type: ignore[assignment]
    return None


def start_cells(
    ip: Any, spool_dir: str, secrets: Collection[str], notebook: str | None
) -> CellRecorder:
    """Record the cells ``ip`` executes from now on (the current one included) into
    the run whose spool is ``spool_dir``; parameters cells already run become params."""
    global _recorder
    if _recorder is not None:
        _recorder.close()
    tagged = tagged_sources(notebook) if notebook else set()
    rec = CellRecorder(spool_dir, secrets, tagged, getattr(ip, "user_ns", None))
    _register(ip)
    _recorder = rec
    cur = _current_cell()
    if cur is not None:
        rec.begin(*cur)
    values = history_parameters(ip, tagged)
    if values:
        record_params(values, source="papermill")
    return rec


def stop_cells(rec: CellRecorder | None) -> None:
    global _recorder
    if rec is not None:
        rec.close()
    if _recorder is rec:
        _recorder = None
