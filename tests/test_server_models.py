"""The model registry on the team server, end to end (docs/server.md, "Model registry";
docs/api.md, "Model registry"): a real `runbase server` process on PostgreSQL (conftest's
pg_server) and S3 (SeaweedFS, conftest's seaweed); real runs made by the real CLI,
registered and promoted locally and pushed with `runbase push`; the server's
`/api/models` answers; `runbase model get --remote` writing the exact bytes; roles,
protected stages and the two-person approval over HTTP; a webhook received by a local
HTTP server with a valid signature; and an event row edited in PostgreSQL found by
`GET /api/models/verify` and `runbase model verify --remote`."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    BUCKET,
    CREDS,
    GIT,
    ServerProcess,
    commit,
    http_request,
    require,
    runbase_cmd,
    start_server,
    wait_until,
    write,
)

PY = sys.executable
PROJECT = "default"

TRAIN = """
import os, sys
import runbase
lr = runbase.param("lr", float(sys.argv[1]))
os.makedirs("out", exist_ok=True)
with open("out/model.bin", "wb") as f:
    f.write(("weights lr=%r " % lr).encode() * 1000)
runbase.log(acc=0.5 + lr)
"""


def weights(lr: float) -> bytes:
    """What train.py writes to out/model.bin for ``lr``."""
    return (f"weights lr={lr!r} ").encode() * 1000


@dataclass
class Team:
    """One server (PostgreSQL + S3) with users of every role in project ``default``, and
    alice's machine: a git repo with three runs of train.py and her own config."""

    db: str
    env: dict[str, str]
    server: ServerProcess
    root: Path  # alice's repo
    config: Path
    runs: dict[float, str] = field(default_factory=dict)  # lr -> run id
    tokens: dict[str, str] = field(default_factory=dict)

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return runbase_cmd("server", *args, "--db", self.db, env=self.env, check=True)

    def cli(self, *args: str, check: bool = True, cwd: Path | None = None) -> Any:
        env = {"RUNBASE_CONFIG": str(self.config)}
        return runbase_cmd(*args, cwd=cwd or self.root, env=env, check=check)

    def api(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        return http_request(
            self.server.url, method, f"/p/{PROJECT}/api{path}", self.tokens[user], data
        )

    def ok(self, user: str, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.api(user, method, path, body)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        psycopg = require("psycopg")
        with psycopg.connect(self.db, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return list(cur.fetchall()) if cur.description else []


@pytest.fixture(scope="module")
def team(pg_server: str, seaweed: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("models-server")
    name = f"srv_{uuid.uuid4().hex[:10]}"
    psycopg = require("psycopg")
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db, objects = f"{pg_server}/{name}", f"s3://{BUCKET}/models-{name}"
    env = {**CREDS, "RUNBASE_S3_ENDPOINT_URL": seaweed}
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, env=env, check=True)
    server = start_server(db, objects, env=env, log_dir=base)
    root = base / "alice"
    root.mkdir()
    t = Team(db, env, server, root, base / "alice-config.json")
    try:
        roles = {"alice": "writer", "bob": "writer", "carol": "approver", "dave": "approver",
                 "rita": "reader"}  # fmt: skip
        for user, role in roles.items():
            out = t.admin("users", "add", user, "--project-role", role).stdout
            t.tokens[user] = next(w for w in out.split() if w.startswith("rbt_"))
        subprocess.run([*GIT, "init", "-q", str(root)], check=True)
        (root / ".gitignore").write_text("out/\n*.log\n")
        write(root, "train.py", TRAIN)
        commit(root, "train")
        for lr in (0.1, 0.2, 0.3):
            t.cli("run", "--", PY, "train.py", str(lr))
            t.runs[lr] = json.loads(t.cli("show", "latest", "--json").stdout)["id"]
        t.cli("login", server.url, "--token", t.tokens["alice"])
        t.cli("remote", "add", "team", server.url, "--project", PROJECT)
        # the run behind the "gate" model, registered over the API by bob (a writer)
        t.cli("push", t.runs[0.3])
        body = {"run": t.runs[0.3], "path": "out/model.bin", "message": "for the gates"}
        events = t.ok("bob", "POST", "/models/gate/versions", body)["events"]
        assert [(e["action"], e["version"], e["user"]) for e in events] == [
            ("register", "v0.0.1", "bob")
        ]
        yield t
    finally:
        server.kill()


def test_push_brings_versions_with_their_stage_history(team: Team) -> None:
    r1, r2 = team.runs[0.1], team.runs[0.2]
    team.cli("model", "register", "churn", f"{r1}:out/model.bin", "-m", "first")
    team.cli("model", "register", "churn", f"{r2}:out/model.bin", "-m", "more data")
    for version in ("v0.0.1", "v0.0.2"):
        team.cli("model", "promote", "churn", version, "--to", "staging", "-m", f"try {version}")
    team.cli("model", "rollback", "churn", "staging", "-m", "v0.0.2 regressed")
    team.cli("model", "promote", "churn", "v0.0.2", "--to", "production", "-m", "ship it")

    # the run of v0.0.2 alone: its version and production come along; staging's history
    # begins with v0.0.1, whose run is not pushed yet: it waits (never out of order)
    out = team.cli("push", r2).stdout
    assert "applied: register churn@v0.0.2" in out, out
    assert "applied: promote churn@production -> v0.0.2" in out, out
    assert "staging" not in out, out
    assert "1 model version(s): 2 event(s) applied, 0 already there, 0 refused" in out, out
    model = team.ok("rita", "GET", "/models/churn")
    assert [v["version"] for v in model["versions"]] == ["v0.0.2"]
    assert model["stages"] == {"production": "v0.0.2"}

    # then v0.0.1's run: the rest of the history, replayed in order
    out = team.cli("push", r1).stdout
    for line in (
        "applied: register churn@v0.0.1",
        "applied: promote churn@staging -> v0.0.1",
        "applied: promote churn@staging -> v0.0.2",
        "applied: rollback churn@staging -> v0.0.1",
    ):
        assert line in out, out
    assert "2 model version(s): 4 event(s) applied, 2 already there, 0 refused" in out, out
    assert "registry unchanged since last push" in team.cli("push", r1).stdout

    # the server's registry is the local one, each event by the pusher, keeping its origin
    listing = team.ok("rita", "GET", "/models")["models"]
    churn = next(m for m in listing if m["name"] == "churn")
    assert churn["latest"] == "v0.0.2" and churn["versions"] == 2
    assert churn["stages"] == {"production": "v0.0.2", "staging": "v0.0.1"}
    local = json.loads(team.cli("model", "show", "churn", "--json").stdout)
    model = team.ok("rita", "GET", "/models/churn")
    assert model["stages"] == local["stages"]
    by_version = {v["version"]: v for v in model["versions"]}
    for v in local["versions"]:
        served = by_version[v["version"]]
        for key in ("oid", "kind", "size", "run", "path"):
            assert served[key] == v[key], key
        assert served["user"] == "alice" and served["external"] is False
        assert served["run_name"] is not None and served["metrics"]["acc"] == v["metrics"]["acc"]
    assert by_version["v0.0.1"]["message"] == "first"
    log = team.ok("rita", "GET", "/models/churn/log")["events"]
    local_log = json.loads(team.cli("model", "log", "churn", "--json").stdout)["events"]
    # every served event replays one of the local log, whose id it keeps as its origin
    assert sorted(e["origin"] for e in log) == sorted(e["id"] for e in local_log)
    assert [(e["action"], e["stage"], e["to_version"]) for e in log if e["stage"]] == [
        ("promote", "production", "v0.0.2"),
        ("promote", "staging", "v0.0.1"),
        ("promote", "staging", "v0.0.2"),
        ("rollback", "staging", "v0.0.1"),
    ]
    assert {e["user"] for e in log} == {"alice"}
    prod = team.ok("rita", "GET", "/models/resolve?ref=churn@production")
    assert prod["ref"] == "churn@v0.0.2" and prod["oid"] == by_version["v0.0.2"]["oid"]
    verified = team.ok("rita", "GET", "/models/verify")
    assert verified["ok"] is True and verified["problems"] == [], verified

    # a deploy machine with no store of its own gets the exact bytes production names
    deploy = team.root.parent / "deploy"
    deploy.mkdir()
    target = deploy / "model.bin"
    team.cli("model", "get", "churn@production", "--remote", "team", "-o", str(target), cwd=deploy)
    assert target.read_bytes() == weights(0.2)
    staged = deploy / "staged.bin"
    team.cli("model", "get", "churn@staging", "--remote", "team", "-o", str(staged), cwd=deploy)
    assert staged.read_bytes() == weights(0.1)


def test_push_models_sends_external_directories_and_every_version(team: Team) -> None:
    """--models: every version, external ones too (their bytes uploaded, a directory's
    manifest and files), and get --remote writes the directory exactly."""
    bundle = team.root / "exported"
    (bundle / "sub").mkdir(parents=True)
    (bundle / "config.json").write_text('{"layers": 3}')
    (bundle / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    team.cli("model", "register", "vendor", str(bundle), "--external", "-m", "from a vendor")
    out = team.cli("push", "--models", check=False).stdout  # (exit 1 if another test's
    assert "applied: register vendor@v0.0.1" in out, out  # promotion is refused)
    served = team.ok("rita", "GET", "/models/vendor")["versions"][0]
    assert served["external"] is True and served["kind"] == "dir" and served["run"] is None
    deploy = team.root.parent / "deploy-dir"
    deploy.mkdir()
    team.cli("model", "get", "vendor@latest", "--remote", "team", "-o", "got", cwd=deploy)
    assert (deploy / "got" / "config.json").read_text() == '{"layers": 3}'
    assert (deploy / "got" / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 64


def test_registering_needs_bytes_the_project_holds_and_a_run_that_wrote_them(team: Team) -> None:
    r3 = team.runs[0.3]
    oid = team.ok("rita", "GET", "/models/gate")["versions"][0]["oid"]
    # bytes no run of the project wrote under that run / path
    status, answer = team.api("bob", "POST", "/models/other/versions", {"run": r3, "path": "x"})
    assert status == 404 and "wrote no output" in answer["detail"], answer
    # a run not in the project
    status, answer = team.api(
        "bob", "POST", "/models/other/versions", {"run": "0" * 16, "oid": oid}
    )
    assert status == 404, answer
    # external bytes the project does not hold (they may be in the shared bucket)
    missing = "blake3:" + "ab" * 32
    status, answer = team.api(
        "bob", "POST", "/models/other/versions", {"oid": missing, "external": True}
    )
    assert status == 409 and "does not hold" in answer["detail"], answer
    # bad bodies: 422 (shape), 400 (names, versions)
    for body, want in (
        ({"oid": oid, "external": "yes"}, 422),
        ({"oid": oid, "external": True, "extra": 1}, 422),
        ({"oid": oid, "external": True, "version": "1.2"}, 400),
        ({"oid": oid}, 400),
        ({"oid": oid, "external": True, "message": "a\u0000b"}, 400),
    ):
        status, answer = team.api("bob", "POST", "/models/other/versions", body)
        assert status == want, (body, status, answer)
    status, answer = team.api("bob", "POST", "/models/Bad/versions", {"oid": oid, "external": True})
    assert status == 400 and "bad model name" in answer["detail"]
    assert team.api("rita", "GET", "/models/nope")[0] == 404

    # bytes another project holds are not this project's, though the bucket is shared
    team.admin("projects", "add", "elsewhere")
    team.admin("member", "elsewhere", "bob", "writer")
    status, answer = http_request(
        team.server.url, "POST", "/p/elsewhere/api/models/stolen/versions", team.tokens["bob"],
        json.dumps({"oid": oid, "external": True}).encode(),
    )  # fmt: skip
    assert status == 409 and "does not hold" in answer["detail"], answer
    event = {"id": uuid.uuid4().hex, "action": "register", "model": "stolen",
             "version": "v1.0.0", "oid": oid, "data": {"kind": "file"}}  # fmt: skip
    status, answer = http_request(
        team.server.url, "POST", "/p/elsewhere/api/models/events", team.tokens["bob"],
        json.dumps({"events": [event]}).encode(),
    )  # fmt: skip
    assert status == 200 and answer["results"][0]["result"] == "refused", answer
    assert "does not hold" in answer["results"][0]["detail"]


def test_roles_protected_stages_and_two_person_approval(team: Team) -> None:
    # a reader reads but cannot change anything
    status, answer = team.api("rita", "POST", "/models/gate/promote",
                              {"version": "v0.0.1", "stage": "qa"})  # fmt: skip
    assert status == 403, answer
    # a writer promotes to an ordinary stage, not to a protected one; an approver can
    team.ok("bob", "POST", "/models/gate/promote", {"version": "v0.0.1", "stage": "qa"})
    team.admin("stages", "protect", "prod1", "--project", PROJECT)
    body = {"version": "v0.0.1", "stage": "prod1", "message": "release"}
    status, answer = team.api("bob", "POST", "/models/gate/promote", body)
    assert status == 403 and "approver" in answer["detail"], answer
    events = team.ok("carol", "POST", "/models/gate/promote", body)["events"]
    assert [(e["action"], e["user"], e["to_version"]) for e in events] == [
        ("promote", "carol", "v0.0.1")
    ]
    status, answer = team.api("bob", "POST", "/models/gate/demote", {"stage": "prod1"})
    assert status == 403, answer

    # two people: a request, which its requester cannot approve; another approver does
    team.admin("stages", "protect", "prod2", "--project", PROJECT, "--approvals", "2")
    body = {"version": "v0.0.1", "stage": "prod2", "message": "please"}
    events = team.ok("carol", "POST", "/models/gate/promote", body)["events"]
    assert [e["action"] for e in events] == ["request"]
    request_id = events[0]["data"]["request"]
    model = team.ok("rita", "GET", "/models/gate")
    assert "prod2" not in model["stages"]
    assert [(r["id"], r["requested_by"], r["state"]) for r in model["requests"]] == [
        (request_id, "carol", "open")
    ]
    status, answer = team.api("carol", "POST", f"/models/requests/{request_id}/approve", {})
    assert status == 403 and "yours" in answer["detail"], answer
    status, answer = team.api("bob", "POST", f"/models/requests/{request_id}/approve", {})
    assert status == 403, answer
    events = team.ok("dave", "POST", f"/models/requests/{request_id}/approve", {"message": "ok"})
    assert [(e["action"], e["user"]) for e in events["events"]] == [
        ("approve", "dave"),
        ("promote", "dave"),
    ]
    assert team.ok("rita", "GET", "/models/gate")["stages"]["prod2"] == "v0.0.1"
    log = team.ok("rita", "GET", "/models/gate/log")["events"]
    assert [(e["action"], e["user"]) for e in log[-3:]] == [
        ("request", "carol"),
        ("approve", "dave"),
        ("promote", "dave"),
    ]
    assert log[-1]["data"] == {"request": request_id, "approved_by": "dave"}
    status, answer = team.api("dave", "POST", f"/models/requests/{request_id}/approve", {})
    assert status == 409, answer

    # a writer's push of a promotion to a protected stage is refused, and said so
    r2 = team.runs[0.2]
    team.cli("model", "register", "pushed-gate", f"{r2}:out/model.bin")
    team.cli("model", "promote", "pushed-gate", "v0.0.1", "--to", "prod1", "-m", "local")
    done = team.cli("push", r2, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "applied: register pushed-gate@v0.0.1" in done.stdout
    assert "refused: promote pushed-gate@prod1 -> v0.0.1: stage 'prod1' is protected" in (
        done.stdout
    ), done.stdout


@dataclass
class Receiver:
    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                rec.got.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_on_promote_is_signed(team: Team, receiver: Receiver) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    team.admin("hooks", "add", receiver.url, "--project", PROJECT, "--events", "promote",
               "--secret", secret)  # fmt: skip
    events = team.ok("bob", "POST", "/models/gate/promote",
                     {"version": "v0.0.1", "stage": "canary", "message": "hooked"})  # fmt: skip
    event_id = events["events"][0]["id"]

    def delivered() -> tuple[dict[str, str], bytes] | None:
        with receiver.lock:
            return next(
                ((h, b) for h, b in receiver.got if json.loads(b)["event"]["id"] == event_id),
                None,
            )

    headers, body = wait_until(delivered, what="the webhook delivery")
    stamp = headers["X-Runbase-Timestamp"]  # signed with the body: a replay is dated
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Runbase-Signature-256"] == f"sha256={expected}"
    assert headers["X-Runbase-Event"] == "promote"
    payload = json.loads(body)
    assert payload["project"] == PROJECT and payload["delivery"] == headers["X-Runbase-Delivery"]
    event = payload["event"]
    assert (event["model"], event["stage"], event["to_version"], event["user"]) == (
        "gate",
        "canary",
        "v0.0.1",
        "bob",
    )
    assert event["message"] == "hooked"


def test_an_event_edited_in_postgresql_is_detected(team: Team) -> None:
    team.ok("bob", "POST", "/models/gate/promote", {"version": "v0.0.1", "stage": "audit"})
    assert team.ok("rita", "GET", "/models/verify")["ok"] is True
    assert team.cli("model", "verify", "--remote", "team").returncode == 0
    schema = f"rbp_{PROJECT}"
    seq = team.sql(f"SELECT min(seq) FROM {schema}.model_events WHERE model = 'gate'")[0][0]
    team.sql(f"UPDATE {schema}.model_events SET user_name = 'mallory' WHERE seq = %s", seq)
    try:
        report = team.ok("rita", "GET", "/models/verify")
        assert report["ok"] is False
        assert (
            f"event {seq} does not match its hash (its fields were edited)" in report["problems"]
        ), report
        done = team.cli("model", "verify", "--remote", "team", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        shown = json.loads(team.cli("model", "verify", "--remote", "team", "--json",
                                    check=False).stdout)  # fmt: skip
        assert shown["ok"] is False and shown["problems"] == report["problems"]
    finally:  # the other tests' server stays sound
        team.sql(f"UPDATE {schema}.model_events SET user_name = 'bob' WHERE seq = %s", seq)
    assert team.ok("rita", "GET", "/models/verify")["ok"] is True
