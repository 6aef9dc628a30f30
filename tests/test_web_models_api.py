"""The model registry's API on `runbase ui` (docs/api.md, "Model registry"), in process
over ASGI against a real store made by real runs: every route's answer, its documented
keys, and bad input answered 400/404/409/422 with a clear `detail` (never a 500: an
exception inside the app is raised here)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import GIT, commit, documented_keys, require, runbase_cmd, write

require("fastapi")
httpx = require("httpx")

from runbase.web.app import create_app  # noqa: E402

TRAIN = """
import os, sys
import runbase
lr = runbase.param("lr", float(sys.argv[1]))
os.makedirs("out", exist_ok=True)
with open("out/model.bin", "wb") as f:
    f.write(("weights lr=%r " % lr).encode() * 100)
with open("out/notes.txt", "w") as f:
    f.write("lr %r" % lr)
runbase.log(acc=0.5 + lr)
"""


class Api:
    """Requests against the app in process; an exception inside it is raised here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def _call(self, method: str, url: str, body: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            if isinstance(body, bytes):
                headers = {"Content-Type": "application/json"}
                return await c.request(method, url, content=body, headers=headers)
            return await c.request(method, url, json=body)

    def call(self, method: str, url: str, body: Any = None, status: int = 200) -> Any:
        r = asyncio.run(self._call(method, url, body))
        assert r.status_code == status, (method, url, r.status_code, r.text[:500])
        assert r.headers["content-type"].startswith("application/json")
        answer = r.json()
        if status >= 400:  # a clear message: a sentence for runbase's own errors
            assert answer["detail"], answer
        return answer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("models-api") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("out/\n*.log\n")
    write(root, "train.py", TRAIN)
    commit(root, "train")
    runs = []
    for lr in ("0.1", "0.2"):
        runbase_cmd("run", "--", sys.executable, "train.py", lr, cwd=root, check=True)
        shown = runbase_cmd("show", "latest", "--json", cwd=root, check=True).stdout
        runs.append(json.loads(shown)["id"])
    app = create_app(str(root / ".runbase"))
    yield {"api": Api(app), "runs": runs, "root": root}
    app.state.store_pool.close()


def test_register_promote_rollback_demote_and_read(site: dict[str, Any]) -> None:
    api, (r1, r2) = site["api"], site["runs"]
    first = api.call("POST", "/api/models/churn/versions",
                     {"run": r1, "path": "out/model.bin", "message": "first"}, 201)  # fmt: skip
    [event] = first["events"]
    assert (event["action"], event["version"], event["run"], event["message"]) == (
        "register", "v0.0.1", r1, "first",
    )  # fmt: skip
    assert event["data"]["path"] == "out/model.bin" and event["data"]["kind"] == "file"
    # by oid alone (the run's recorded output), a minor bump
    oid = api.call("GET", "/api/models/churn")["versions"][0]["oid"]
    files = json.loads(runbase_cmd("show", r2, "--json", cwd=site["root"], check=True).stdout)
    oid2 = next(f["hash"] for f in files["outputs"] if f["path"] == "out/model.bin")
    assert oid2 != oid
    second = api.call("POST", "/api/models/churn/versions",
                      {"run": r2, "oid": oid2, "bump": "minor"}, 201)  # fmt: skip
    assert second["events"][0]["version"] == "v0.1.0"
    for version in ("v0.0.1", "0.1.0"):
        api.call("POST", "/api/models/churn/promote", {"version": version, "stage": "production"})
    back = api.call("POST", "/api/models/churn/rollback", {"stage": "production", "message": "x"})
    assert [(e["action"], e["from_version"], e["to_version"]) for e in back["events"]] == [
        ("rollback", "v0.1.0", "v0.0.1")
    ]
    api.call("POST", "/api/models/churn/promote", {"version": "v0.1.0", "stage": "staging"})
    gone = api.call("POST", "/api/models/churn/demote", {"stage": "staging"})
    assert gone["events"][0]["to_version"] is None

    listing = api.call("GET", "/api/models")
    churn = next(m for m in listing["models"] if m["name"] == "churn")
    assert churn["latest"] == "v0.1.0" and churn["versions"] == 2
    assert churn["stages"] == {"production": "v0.0.1"}
    detail = api.call("GET", "/api/models/churn")
    assert [v["version"] for v in detail["versions"]] == ["v0.1.0", "v0.0.1"]
    assert detail["versions"][1]["stages"] == ["production"]
    assert detail["versions"][0]["metrics"]["acc"] == pytest.approx(0.7)
    log = api.call("GET", "/api/models/churn/log")["events"]
    assert [e["action"] for e in log] == [
        "register", "register", "promote", "promote", "rollback", "promote", "demote",
    ]  # fmt: skip
    resolved = api.call("GET", "/api/models/resolve?ref=churn@production")
    assert resolved["ref"] == "churn@v0.0.1" and resolved["oid"] == oid
    verified = api.call("GET", "/api/models/verify")
    assert verified["ok"] is True and verified["problems"] == []
    assert verified["events"] >= len(log) and verified["head"].startswith("sha256:")

    # the documented keys are the answers' keys
    assert set(listing) | set(churn) == documented_keys("api.md", "GET /api/models")
    version_keys = set(resolved)
    assert version_keys == documented_keys("api.md", "GET /api/models/resolve?ref=")
    shown = set(detail) | (set(detail["versions"][0]) - version_keys)
    request_keys = {"id", "model", "version", "stage", "requested_by", "requested_at",
                    "message", "state", "decided_by", "decided_at", "decision"}  # fmt: skip
    assert shown | request_keys == documented_keys("api.md", "GET /api/models/{name}")
    assert set(log[0]) | {"events"} == documented_keys("api.md", "GET /api/models/{name}/log")
    verify_keys = set(api.call("GET", "/api/models/verify"))
    assert verify_keys == documented_keys("api.md", "GET /api/models/verify")


def test_bad_input_is_a_clear_4xx(site: dict[str, Any]) -> None:
    api, (r1, r2) = site["api"], site["runs"]
    api.call("POST", "/api/models/gate/versions", {"run": r1, "path": "out/notes.txt"}, 201)
    cases: list[tuple[str, str, Any, int, str]] = [
        # 404: unknown model, version, stage, run, output, request
        ("GET", "/api/models/nope", None, 404, "no model 'nope'"),
        ("GET", "/api/models/nope/log", None, 404, "no model 'nope'"),
        ("GET", "/api/models/resolve?ref=nope@latest", None, 404, "no model 'nope'"),
        ("GET", "/api/models/resolve?ref=gate@v9.9.9", None, 404, "no version v9.9.9"),
        ("GET", "/api/models/resolve?ref=gate@production", None, 404, "stage 'production'"),
        ("POST", "/api/models/gate/promote", {"version": "v0.0.7", "stage": "prod"}, 404,
         "no version v0.0.7"),
        ("POST", "/api/models/nope/promote", {"version": "v0.0.1", "stage": "prod"}, 404,
         "no model 'nope'"),
        ("POST", "/api/models/gate/demote", {"stage": "prod"}, 404, "stage 'prod'"),
        ("POST", "/api/models/gate/versions", {"run": "nosuchrun", "path": "out/model.bin"},
         404, "nosuchrun"),
        ("POST", "/api/models/gate/versions", {"run": r1, "path": "out/absent.bin"}, 404,
         "wrote no output"),
        ("POST", "/api/models/requests/0000000000000000/approve", {}, 404, "no promotion request"),
        ("POST", "/api/models/requests/0000000000000000/reject", {}, 404, "no promotion request"),
        # 409: the registry as it is
        ("POST", "/api/models/gate/versions", {"run": r1, "path": "out/notes.txt"}, 409,
         "already gate@v0.0.1"),
        ("POST", "/api/models/gate/versions",
         {"run": r2, "path": "out/notes.txt", "version": "v0.0.1"}, 409, "exists"),
        ("POST", "/api/models/gate/rollback", {"stage": "prod"}, 404, "has ever been in stage"),
        ("POST", "/api/models/gate/versions",
         {"oid": "blake3:" + "0" * 64, "external": True}, 409, "does not hold"),
        # 400: names, versions, stages, references, text, a body that means nothing
        ("GET", "/api/models/Bad", None, 400, "bad model name"),
        ("GET", "/api/models/resolve?ref=gate", None, 400, "bad model reference"),
        ("POST", "/api/models/gate/promote", {"version": "1.2", "stage": "prod"}, 400,
         "bad version"),
        ("POST", "/api/models/gate/promote", {"version": "v0.0.1", "stage": "Prod!"}, 400,
         "bad stage name"),
        ("POST", "/api/models/gate/promote", {"version": "v0.0.1", "stage": "latest"}, 400,
         "reads as a version"),
        ("POST", "/api/models/gate/promote",
         {"version": "v0.0.1", "stage": "prod", "message": "a\u0000b"}, 400, "NUL"),
        ("POST", "/api/models/gate/versions", {"oid": "blake3:zz", "external": True}, 422,
         "oid"),
        ("POST", "/api/models/gate/versions", {"message": "why"}, 400, "give the run"),
        ("POST", "/api/models/gate/versions", {"run": r1}, 400, "name the run's output"),
        ("POST", "/api/models/gate/versions", {"run": r1, "path": "x", "external": True}, 400,
         "not both"),
        ("POST", "/api/models/gate/versions", {"external": True}, 400, "needs the oid"),
        # 422: a body of another shape
        ("POST", "/api/models/gate/promote", {"version": 1, "stage": "prod"}, 422, ""),
        ("POST", "/api/models/gate/promote", {"stage": "prod"}, 422, ""),
        ("POST", "/api/models/gate/promote", {"version": "v0.0.1", "stage": "p", "x": 1}, 422, ""),
        ("POST", "/api/models/gate/versions", {"run": r1, "path": "x", "bump": "huge"}, 422, ""),
        ("POST", "/api/models/gate/promote", b"{not json", 422, ""),
        ("POST", "/api/models/gate/promote",
         {"version": "v0.0.1", "stage": "p", "message": "m" * 10_001}, 422, ""),
        ("POST", "/api/models/events", {"events": {"id": "x"}}, 422, ""),
        ("POST", "/api/models/events", {"events": [{}] * 1_001}, 422, ""),
        ("GET", "/api/models/resolve?ref=" + "a" * 301, None, 422, ""),
        ("GET", "/api/models/" + "a" * 201, None, 422, ""),
    ]  # fmt: skip
    for method, url, body, status, says in cases:
        answer = api.call(method, url, body, status)
        assert says in json.dumps(answer["detail"]), (url, body, answer)
    # nothing was half-written: the log and the registry agree, gate has its one version
    assert api.call("GET", "/api/models/verify")["ok"] is True
    assert [v["version"] for v in api.call("GET", "/api/models/gate")["versions"]] == ["v0.0.1"]


def test_pushed_events_are_checked_one_by_one(site: dict[str, Any]) -> None:
    """``POST /api/models/events`` (what runbase push sends): each event replayed or
    refused with its reason; a refused one changes nothing and the others still apply."""
    api, (r1, r2) = site["api"], site["runs"]
    files = json.loads(runbase_cmd("show", r2, "--json", cwd=site["root"], check=True).stdout)
    oid = next(f["hash"] for f in files["outputs"] if f["path"] == "out/notes.txt")
    register = {"id": "ev-1", "action": "register", "model": "pushed", "version": "v1.0.0",
                "oid": oid, "run": r2, "data": {"kind": "file", "path": "out/notes.txt"}}  # fmt: skip
    events = [
        register,
        {**register, "id": "ev-2", "run": r1},  # r1 did not write these bytes
        {**register, "id": "ev-3", "version": "v1.0.1", "data": {"kind": 3}},
        {"id": "ev-4", "action": "promote", "model": "pushed", "stage": "prod",
         "to_version": "v1.0.0", "message": "go"},
        {"id": "ev-5", "action": "approve", "model": "pushed", "stage": "prod"},
        {"id": "ev-6", "action": "promote", "model": "pushed", "stage": "prod",
         "to_version": "v2.0.0"},
        {"id": "ev-7", "action": "promote", "model": "Bad", "stage": "prod", "to_version": "v1"},
        {"id": "ev-8", "action": "register", "model": "pushed", "version": "v3.0.0",
         "oid": "blake3:" + "1" * 64},
        {"id": "ev-9", "action": "register", "model": "pushed", "version": "v3.0.0",
         "oid": oid, "run": "0000000000000000"},
    ]  # fmt: skip
    results = api.call("POST", "/api/models/events", {"events": events})["results"]
    got = {r["id"]: (r["result"], r["detail"]) for r in results}
    assert [r["id"] for r in results] == [e["id"] for e in events]
    assert got["ev-1"][0] == "applied"
    assert got["ev-2"][0] == "refused" and "wrote no output" in got["ev-2"][1]
    assert got["ev-3"] == ("refused", "event.data.kind: must be one of 'file', 'dir'")
    assert got["ev-4"] == ("applied", "pushed@prod -> v1.0.0")
    assert got["ev-5"][0] == "refused" and "approvals happen on the server" in got["ev-5"][1]
    assert got["ev-6"][0] == "refused" and "no version v2.0.0" in got["ev-6"][1]
    assert got["ev-7"][0] == "refused" and "bad model name" in got["ev-7"][1]
    assert got["ev-8"][0] == "refused" and "does not hold" in got["ev-8"][1]
    assert got["ev-9"][0] == "refused" and "push the run first" in got["ev-9"][1]
    # again: each one it has is recognised by its origin
    again = api.call("POST", "/api/models/events", {"events": events[:1] + events[3:4]})
    assert [r["result"] for r in again["results"]] == ["exists", "exists"]
    log = api.call("GET", "/api/models/pushed/log")["events"]
    assert [(e["action"], e["origin"]) for e in log] == [("register", "ev-1"), ("promote", "ev-4")]
    assert api.call("GET", "/api/models/verify")["ok"] is True
