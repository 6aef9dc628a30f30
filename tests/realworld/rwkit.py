"""The real-world corpus's kit: a git project made from a program directory, `runbase run`
in a real subprocess, the record read back, the expected hashes computed here.

Every program under ``programs/<name>/`` is written in the style of a popular public
training repository (a Hugging Face ``Trainer`` script, a Lightning module, a DVC
pipeline, nanoGPT's configurator...). The tests assert the *exact* record: which params,
which files in and out with which bytes (BLAKE3 computed here with the ``blake3``
package, independently of runbase), a lineage without loops, nothing redacted that is
not a secret, and what ``reproduce`` says.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import blake3

from conftest import GIT, commit, runbase_cmd
from runbase.records.read import list_runs
from runbase.store import Store

PROGRAMS = Path(__file__).resolve().parent / "programs"
PY = sys.executable
REDACTED = "***"

# what every realistic project ignores; the store itself lives in .runbase/
GITIGNORE = ".runbase/\n__pycache__/\n*.pyc\n"


def make_project(tmp_path: Path, program: str, ignore: Iterable[str] = ()) -> Path:
    """A git repository holding a copy of ``programs/<program>/``, committed, with
    ``ignore`` added to its .gitignore (data and outputs, as such projects do)."""
    root = tmp_path / program
    shutil.copytree(PROGRAMS / program, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text(GITIGNORE + "".join(f"{p}\n" for p in ignore))
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    commit(root, f"{program}: initial")
    return root


def rb(root: Path, *args: str, env: Mapping[str, str] | None = None, ok: bool = True,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``runbase ARGS`` in ``root``; ``ok``: fail the test unless it exits 0."""
    return runbase_cmd(*args, cwd=root, env=dict(env or {}), check=ok, timeout=timeout)


def run(root: Path, *cmd: str, opts: Iterable[str] = (), env: Mapping[str, str] | None = None,
        exit_code: int = 0) -> dict[str, Any]:  # fmt: skip
    """``runbase run [OPTS] -- CMD`` in ``root`` (``python`` is this interpreter); the run
    record of the run it made. Fails the test unless the command exits ``exit_code``."""
    argv = [PY if c == "python" else c for c in cmd]
    before = {r["id"] for r in runs(root)} if (root / ".runbase").exists() else set()
    proc = rb(root, "run", *opts, "--", *argv, env=env, ok=False)
    assert proc.returncode == exit_code, (
        f"runbase run -- {' '.join(cmd)} exited {proc.returncode}, not {exit_code}\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    new = [r for r in runs(root) if r["id"] not in before]
    assert len(new) == 1, f"expected one new run, got {new}"
    return record(root, new[0]["id"])


def runs(root: Path) -> list[dict[str, Any]]:
    """Every run of the project's store, newest first (the library's read API, in this
    process: a CLI start per look-up would slow the corpus down)."""
    store = Store.open(root / ".runbase")
    try:
        return list_runs(store, limit=None)
    finally:
        store.close()


def record(root: Path, ref: str = "latest") -> dict[str, Any]:
    """The run record: ``runbase show REF --json``."""
    return dict(json.loads(rb(root, "show", ref, "--json").stdout))


def b3(path: Path) -> str:
    """The object id runbase must record for this file's bytes."""
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def files(rec: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    """``{path: entry}`` of the record's ``inputs`` or ``outputs``."""
    return {f["path"]: f for f in rec[role]}


def assert_files(rec: dict[str, Any], role: str, expected: Mapping[str, str | None]) -> None:
    """The record's ``role`` files are exactly ``expected`` (path -> object id; None for a
    directory, whose id is a tree manifest), each stored with its size."""
    got = files(rec, role)
    assert set(got) == set(expected), (
        f"{role} of {rec['id']}: unexpected {sorted(set(got) - set(expected))}, "
        f"missing {sorted(set(expected) - set(got))}"
    )
    for path, oid in expected.items():
        entry = got[path]
        assert entry["hash"] is not None, f"{role} {path} recorded without a hash: {entry}"
        if oid is not None:
            assert entry["hash"] == oid, f"{role} {path}: {entry['hash']} != {oid}"
            assert entry["stored"] is True, entry


def expected_files(root: Path, paths: Iterable[str]) -> dict[str, str | None]:
    """``{path: BLAKE3 of the file now}`` for files of ``root`` (directories: None)."""
    return {p: None if (root / p).is_dir() else b3(root / p) for p in paths}


def assert_no_self_inputs(rec: dict[str, Any]) -> None:
    """No input holds bytes the run itself wrote at that path (a file written then read
    back is an output only; a file read *before* the run rewrote it, as a resumed
    checkpoint, is an input with the old bytes), and every input was read (has a hash)."""
    outs = files(rec, "outputs")
    for path, entry in files(rec, "inputs").items():
        assert entry["hash"] is not None, f"input {path} has no hash (never read?): {entry}"
        if path in outs:
            assert entry["hash"] != outs[path]["hash"], f"recorded as its own input: {path}"


def assert_no_redaction(
    rec: dict[str, Any], secrets: Iterable[str] = (), allowed: Iterable[str] = ()
) -> None:
    """No param holds ``***`` but the genuine secrets named in ``allowed``, and no secret
    value given in ``secrets`` appears anywhere in the record."""
    hidden = sorted(k for k, v in rec["params"].items() if v == REDACTED and k not in allowed)
    assert not hidden, f"ordinary params redacted: {hidden}"
    text = json.dumps(rec)
    for s in secrets:
        assert s not in text, f"a secret reached the record: {s[:6]}..."


def assert_params(rec: dict[str, Any], expected: Mapping[str, Any],
                  sources: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Each expected param is recorded with exactly this value (and type: 1 is not 1.0
    nor "1") and, where given, this source."""
    p = rec["params"]
    wrong = {k: (p.get(k, "<missing>"), v) for k, v in expected.items()
             if k not in p or p[k] != v or type(p[k]) is not type(v)}  # fmt: skip
    assert not wrong, f"params (recorded, expected): {wrong}"
    for k, src in (sources or {}).items():
        assert rec["param_sources"].get(k) == src, (k, rec["param_sources"].get(k), src)


def model_metrics(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's metrics without the system ones (``sys/*``)."""
    return {k: m for k, m in rec["metrics"].items() if not k.startswith("sys/")}


def trace(root: Path, target: str) -> dict[str, Any]:
    """``runbase trace TARGET --json``: the lineage graph."""
    return dict(json.loads(rb(root, "trace", target, "--json").stdout))


def lineage(root: Path, target: str) -> list[str]:
    """The run ids on ``target``'s lineage, the producer first; fails on a loop (a run
    reading what it produced, a cycle) or a producer that is not a single run."""
    g = trace(root, target)
    produced = {(e["from"], e["to"]) for e in g["edges"] if e["kind"] == "produced"}
    read = {(e["from"], e["to"]) for e in g["edges"] if e["kind"] == "read"}
    loops = sorted(f for (r, f) in produced if (f, r) in read)
    assert not loops, f"trace {target}: a run reads the file it produced: {loops}"
    nxt: dict[str, list[str]] = {}
    for e in g["edges"]:  # in the graph's order, so the walk is deterministic
        nxt.setdefault(e["to"], []).append(e["from"])  # upstream: file <- run <- file ...
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert state.get(node) != 1, f"trace {target}: a cycle through {path + (node,)}"
        if state.get(node) == 2:
            return
        state[node] = 1
        if node.startswith("run:"):
            order.append(node[4:])
        for up in nxt.get(node, []):
            visit(up, path + (node,))
        state[node] = 2

    visit(g["root"], ())
    return order


def reproduce(root: Path, ref: str, *args: str) -> tuple[int, dict[str, Any]]:
    """``runbase reproduce REF ARGS --json``: its exit status and the verdict (stdout must
    be the JSON alone). docs/reproduce.md: 0 reproduced, 1 diverged, 3 nothing to compare,
    4 changed by request; 2 (could not be attempted) fails the test."""
    proc = rb(root, "reproduce", ref, *args, "--json", ok=False, timeout=600)
    assert proc.returncode in (0, 1, 3, 4), f"reproduce failed ({proc.returncode}):\n{proc.stderr}"
    try:
        verdict = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(
            f"reproduce --json: stdout is not the JSON alone ({e}):\n{proc.stdout[:2000]}"
        ) from e
    return proc.returncode, dict(verdict)
