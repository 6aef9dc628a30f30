"""A job's code tree and inputs through a REAL team server (tests/serverkit.py), as a Ray
worker without the driver's store gets them (runbase.remote.fetch): uploaded by hash
from one store, fetched into an EMPTY second store, every object verified, and written
out again byte for byte (a subdirectory, a symlink, an executable, an input directory);
a copy corrupted on the server is refused with nothing stored; a running run's points
read back from the server."""

from __future__ import annotations

import http.server
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import conftest
from conftest import commit, runbase_cmd, write
from runbase.core.ids import new_run_id, split_id
from runbase.errors import RemoteError, RunbaseError
from runbase.remote.client import Remote
from runbase.remote.fetch import (
    fetch_tree,
    remote_attempts,
    send_tree,
    series_after,
    tree_objects,
)
from runbase.store import Store
from runbase.tracking.launch import write_inputs, write_tree
from serverkit import PROJECT, TeamServer, team_server

conftest.require("fastapi")
conftest.require("uvicorn")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    with team_server(tmp_path_factory.mktemp("fetch-server"), [("alice", "writer")]) as t:
        yield t


def _remote(team: TeamServer) -> Remote:
    return Remote("team", team.url, PROJECT, team.tokens["alice"])


def _tree_project(project: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A run of a project with a subdirectory, a symlink, an executable and an
    uncommitted edit, declaring a gitignored data directory: its code record and its
    input as a job's tree names them."""
    write(project, ".gitignore", "*.log\ndata/\n")
    write(project, "pkg/deep/model.py", "W = 3\n")
    write(project, "run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(project / "run.sh", 0o755)
    os.symlink("pkg/deep/model.py", project / "model_link.py")
    commit(project, "tree")
    write(project, "pkg/deep/model.py", "W = 4  # uncommitted\n")
    write(project, "data/a.csv", "x\n1\n")
    write(project, "data/sub/b.bin", "\x00\x01binary")
    runbase_cmd("run", "--input", "data", "--", sys.executable, "-c", "pass", cwd=project,
                check=True)  # fmt: skip
    out = runbase_cmd("ls", "--json", "-l", "1", cwd=project, check=True)
    rec = json.loads(
        runbase_cmd("show", json.loads(out.stdout)[0]["id"], "--json", cwd=project).stdout
    )
    data = next(i for i in rec["inputs"] if i["path"] == "data")
    store = Store.open(project / ".runbase")
    try:
        code = json.loads(
            store.db.query("SELECT code_json FROM runs WHERE id = ?", (rec["id"],))[0][0]
        )
    finally:
        store.close()
    return code, [{"path": "data", "oid": data["hash"], "kind": "dir"}]


def test_a_tree_goes_through_the_server_into_an_empty_store(
    project: Path, team: TeamServer, tmp_path: Path
) -> None:
    code, inputs = _tree_project(project)
    remote = _remote(team)
    src = Store.open(project / ".runbase")
    try:
        wanted = tree_objects(src, code, inputs)
        assert code["tree"] in wanted and code["patch"] in wanted and inputs[0]["oid"] in wanted
        assert send_tree(src, remote, code, inputs) == len(wanted)
        assert send_tree(src, remote, code, inputs) == 0  # the server has them all now
    finally:
        src.close()
    node = Store.open(tmp_path / "node-store", create=True)
    try:
        assert fetch_tree(node, remote, code, inputs) == len(wanted)
        assert all(node.objects.exists(o) for o in wanted)
        for oid in wanted:  # every byte verified where it landed
            assert node.objects.get_bytes(oid)
        assert fetch_tree(node, remote, code, inputs) == 0
        out = tmp_path / "tree"
        write_tree(node, code["tree"], out)
        write_inputs(node, inputs, out)
    finally:
        node.close()
    assert (out / "pkg/deep/model.py").read_text() == "W = 4  # uncommitted\n"
    assert os.readlink(out / "model_link.py") == "pkg/deep/model.py"
    assert os.stat(out / "run.sh").st_mode & stat.S_IXUSR
    assert (out / "data/a.csv").read_text() == "x\n1\n"
    assert (out / "data/sub/b.bin").read_bytes() == b"\x00\x01binary"


def _server_copy(team: TeamServer, oid: str) -> Path:
    hexd = split_id(oid)[1]
    return next(p for p in team.objects.rglob(hexd[2:]) if p.parent.name == hexd[:2])


@pytest.mark.parametrize("which", ["manifest", "blob"])
def test_a_corrupted_copy_on_the_server_is_refused_and_nothing_stored(
    project: Path, team: TeamServer, tmp_path: Path, which: str
) -> None:
    unique = f"only in the {which} test\n"  # objects no other test sends
    write(project, f"{which}.txt", unique)
    code, inputs = _tree_project(project)
    remote = _remote(team)
    src = Store.open(project / ".runbase")
    try:
        send_tree(src, remote, code, inputs)
        blob = next(
            o for o in tree_objects(src, code, []) if src.objects.get_bytes(o) == unique.encode()
        )
    finally:
        src.close()
    bad = code["tree"] if which == "manifest" else blob
    copy = _server_copy(team, bad)
    os.chmod(copy, 0o644)
    copy.write_bytes(  # a substitute: well-formed, other bytes
        b'{"format":"runbase-tree","version":1,"entries":[]}' if which == "manifest" else b"evil"
    )
    node = Store.open(tmp_path / f"node-{which}", create=True)
    try:
        with pytest.raises(RunbaseError, match="corrupted"):
            fetch_tree(node, remote, code, inputs)
        assert not node.objects.exists(bad)
        if which == "manifest":  # nothing it names was asked for
            assert not node.objects.exists(blob)
    finally:
        node.close()


def test_a_runs_points_after_a_step_are_read_from_the_server(
    project: Path, team: TeamServer
) -> None:
    team.login("alice", dict(os.environ), cwd=project)
    prog = "import runbase\nfor i in range(5):\n    runbase.log(loss=1.0 / (i + 1), step=i)\n"
    write(project, "t.py", prog)
    commit(project, "t")
    runbase_cmd("run", "--publish", "team", "--", sys.executable, "t.py", cwd=project,
                check=True)  # fmt: skip
    run_id = json.loads(runbase_cmd("ls", "--json", "-l", "1", cwd=project).stdout)[0]["id"]
    remote = _remote(team)
    assert series_after(remote, run_id, "loss") == ([0, 1, 2, 3, 4], [1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert series_after(remote, run_id, "loss", 2) == ([3, 4], [0.25, 0.2])
    assert series_after(remote, run_id, "nope") == ([], [])
    assert series_after(remote, new_run_id(), "loss") == ([], [])


def test_a_series_of_a_project_the_server_lacks_is_an_error_not_no_points(
    team: TeamServer,
) -> None:
    """A run not published yet has no points; a wrong project is said, never read as
    "no points" (a sweep would then silently never prune)."""
    remote = Remote("team", team.url, "no-such-project", team.tokens["alice"])
    with pytest.raises(RemoteError, match="no-such-project"):
        series_after(remote, new_run_id(), "loss")


class _Junk(http.server.BaseHTTPRequestHandler):
    """A server answering well-formed JSON of the wrong shapes."""

    answers: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        route = next((k for k in self.answers if k in self.path), None)
        body = json.dumps(self.answers.get(route or "", {})).encode()
        self.send_response(200 if route else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.mark.parametrize(
    "steps", [["1", "2"], [None], [1.5], [True]], ids=["str", "null", "frac", "bool"]
)
def test_steps_and_run_lists_that_are_not_what_they_say_are_clear_errors(
    steps: list[Any],
) -> None:
    run_id = new_run_id()
    _Junk.answers = {
        "/series/": {"steps": steps, "values": [1.0] * len(steps)},
        f"/runs/{run_id}": {"id": run_id, "name": "n"},
        "/runs?": ["not", "a", "page"],
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Junk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = Remote("junk", f"http://127.0.0.1:{server.server_address[1]}", PROJECT, "t")
        with pytest.raises(RemoteError, match="not integers"):
            series_after(remote, run_id, "loss")
        with pytest.raises(RemoteError, match="no list of runs"):
            remote_attempts(remote, run_id)
    finally:
        server.shutdown()
        server.server_close()
