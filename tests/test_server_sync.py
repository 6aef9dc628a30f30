"""The team server end to end: real `runbase server` processes on PostgreSQL (conftest's
pg_server cluster) and S3 (SeaweedFS, conftest's seaweed), real runs made by the real
CLI, pushed and pulled by two users with their own stores and config files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
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
    _free_port,
    commit,
    http_request,
    pg_ctl,
    require,
    runbase_cmd,
    start_server,
    write,
)
from conftest import ServerProcess as Server  # the servers a Team starts
from runbase.server import control
from runbase.store.hashing import hash_bytes

PY = sys.executable
MiB = 1 << 20

TRAIN = """
import os, sys
import runbase
lr = runbase.param("lr", float(sys.argv[1]) if len(sys.argv) > 1 else 0.1)
data = open(sys.argv[2] if len(sys.argv) > 2 else "data/input.bin", "rb").read()
os.makedirs("out", exist_ok=True)
with open("out/model.bin", "wb") as f:
    f.write(data[:4096][::-1] + repr(lr).encode())
for step in range(5):
    runbase.log(step=step, loss=lr / (step + 1))
print("trained on", len(data), "bytes")
"""

MANY = """
import os, sys
n = int(sys.argv[1])
os.makedirs("out", exist_ok=True)
for i in range(n):
    with open(f"out/part-{i:04d}.bin", "wb") as f:
        f.write(os.urandom(16384))
"""


# -- the team: a database, an S3 prefix, two users, server processes -----------------------


@dataclass
class Team:
    db: str
    objects: str  # s3://bucket/prefix
    env: dict[str, str]  # what a server process (and this test's S3 client) needs
    base: Path
    tokens: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return runbase_cmd("server", *args, "--db", self.db, env=self.env, check=check)

    def add_user(self, name: str, *args: str) -> str:
        token = self.admin("users", "add", name, *args).stdout.strip()
        assert token.startswith("rbt_"), token
        self.tokens[name] = token
        return token

    def start(self, port: int | None = None, workers: int = 1) -> Server:
        server = start_server(
            self.db, self.objects, env=self.env, port=port, workers=workers, log_dir=self.base
        )
        self.servers.append(server)
        return server

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()

    # -- what the server holds, read behind its back ---------------------------------
    def s3(self) -> Any:
        boto3 = require("boto3")
        return boto3.client(
            "s3",
            endpoint_url=self.env["RUNBASE_S3_ENDPOINT_URL"],
            aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDS["AWS_DEFAULT_REGION"],
        )

    def s3_keys(self) -> list[str]:
        prefix = self.objects.removeprefix(f"s3://{BUCKET}/") + "/"
        keys: list[str] = []
        for page in (
            self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        ):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def s3_objects(self) -> list[str]:
        """Object ids in the bucket (from the keys ``<prefix>/objects/ab/cdef...``)."""
        prefix = self.objects.removeprefix(f"s3://{BUCKET}/") + "/objects/"
        out = []
        for key in self.s3_keys():
            assert key.startswith(prefix), f"a stray key {key}"
            out.append("blake3:" + key[len(prefix) :].replace("/", ""))
        return out

    def s3_get(self, oid: str) -> bytes:
        prefix = self.objects.removeprefix(f"s3://{BUCKET}/") + "/objects/"
        hexd = oid.removeprefix("blake3:")
        body = self.s3().get_object(Bucket=BUCKET, Key=f"{prefix}{hexd[:2]}/{hexd[2:]}")["Body"]
        return bytes(body.read())

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        psycopg = require("psycopg")
        with psycopg.connect(self.db, autocommit=True) as conn:
            return list(conn.execute(query, params).fetchall())

    def held(self, project: str = "default") -> list[str]:
        rows = self.sql(
            "SELECT oid FROM runbase_server.project_objects WHERE project = %s", project
        )
        return [r[0] for r in rows]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RUNBASE_", "AWS_"))}


def http(
    url: str,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    """One JSON request (no retry): ``(status, parsed JSON or bytes)``."""
    data = json.dumps(body).encode() if body is not None else None
    return http_request(url, method, path, token, data)


@pytest.fixture
def team(pg_server: str, seaweed: str, tmp_path: Path) -> Iterator[Team]:
    """A migrated server database of its own (and S3 prefix), users alice and bob
    (writers in ``default``); the servers it starts are killed at the end."""
    name = f"srv_{uuid.uuid4().hex[:10]}"
    psycopg = require("psycopg")
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    env = {**CREDS, "RUNBASE_S3_ENDPOINT_URL": seaweed}
    t = Team(f"{pg_server}/{name}", f"s3://{BUCKET}/srv-{name}", env, tmp_path)
    runbase_cmd("server", "migrate", "--db", t.db, "--objects", t.objects, env=env, check=True)
    t.add_user("alice")  # the CLI prints the token
    from runbase.server.admin import add_user

    t.tokens["bob"] = add_user(t.db, "bob").secret
    try:
        yield t
    finally:
        t.kill_all()


# -- the users' machines ---------------------------------------------------------------------


@dataclass
class Machine:
    """A user's machine: a git repo with its own store, and their own config file."""

    root: Path
    config: Path

    def cli(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return runbase_cmd(
            *args, cwd=self.root, env={"RUNBASE_CONFIG": str(self.config)}, check=check, **kw
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**_clean_env(), "RUNBASE_CONFIG": str(self.config)}
        return subprocess.Popen(
            [PY, "-m", "runbase", *args], cwd=self.root, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def login(self, server: Server, token: str, project: str = "default", name: str = "team"):
        self.cli("login", server.url, "--token", token)
        self.cli("remote", "add", name, server.url, "--project", project)

    def run(self, *args: str, name: str | None = None) -> str:
        named = ["--name", name] if name else []
        self.cli("run", *named, "--", PY, *args)
        return str(self.show()["id"])

    def show(self, ref: str = "latest") -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.cli("show", ref, "--json").stdout)
        return out

    def push(self, *args: str) -> str:
        return self.cli("push", *args).stdout


def machine(base: Path, who: str, files: dict[str, str | bytes] | None = None) -> Machine:
    root = base / who
    root.mkdir(parents=True)
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("data/\nout/\n*.log\n")
    write(root, "train.py", TRAIN)
    write(root, "many.py", MANY)
    for rel, content in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    commit(root, "initial")
    return Machine(root, base / f"{who}-config.json")


def pushed(stdout: str) -> dict[str, int]:
    """The numbers of `runbase push`'s summary line."""
    import re

    m = re.search(
        r"(\d+) run\(s\) pushed, (\d+) unchanged; (\d+) objects \(.*\) sent, (\d+) already there",
        stdout,
    )
    assert m, stdout
    keys = ("runs", "unchanged", "sent", "skipped")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def b3(path: Path) -> str:
    return hash_bytes(path.read_bytes())


def check_server_objects(team: Team, project: str = "default") -> list[str]:
    """The bucket holds each object once, under its own hash, and exactly the objects
    the project's table says it holds."""
    keys = team.s3_keys()
    assert len(keys) == len(set(keys))
    oids = team.s3_objects()
    for oid in oids:
        assert hash_bytes(team.s3_get(oid)) == oid
    held = team.held(project)
    assert len(held) == len(set(held))
    assert sorted(held) == sorted(oids)
    uploads = team.s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    prefix = team.objects.removeprefix(f"s3://{BUCKET}/")
    assert [u for u in uploads if u["Key"].startswith(prefix)] == []
    return oids


# -- 1. push, then pull on another machine ---------------------------------------------------


def _as_pushed(rec: dict[str, Any], account: str, data: bool) -> dict[str, Any]:
    """``rec`` as the server changes it (documented): the author is the pushing account,
    the machine's login name is kept as the tag ``host_user``; data not pulled is
    recorded as not stored here."""
    out: dict[str, Any] = json.loads(json.dumps(rec))
    out["user"] = account
    out["tags"]["host_user"] = rec["user"]
    if not data:
        for item in out["inputs"] + out["outputs"]:
            item["stored"] = False
    return out


def test_push_then_pull_on_another_machine(team: Team, tmp_path: Path) -> None:
    server = team.start()
    data = os.urandom(300_000)
    alice = machine(tmp_path, "alice", {"data/input.bin": data})
    bob = machine(tmp_path, "bob")
    alice.login(server, team.tokens["alice"])
    bob.cli("login", server.url, "--token", team.tokens["bob"])
    run_id = alice.run("train.py", "0.3", name="first")

    first = pushed(alice.push())
    assert first["runs"] == 1 and first["unchanged"] == 0 and first["sent"] > 0
    assert first["skipped"] == 0
    # again: nothing to do, not even the record
    again = pushed(alice.push(run_id))
    assert again == {"runs": 0, "unchanged": 1, "sent": 0, "skipped": 0}
    check_server_objects(team)

    # bob pulls it by its URL (no remote configured): all but the data
    out = bob.cli("pull", f"{server.url}/p/default/runs/{run_id}").stdout
    assert f"pulled {run_id}" in out
    original, copy = alice.show(run_id), bob.show(run_id)
    assert copy["user"] == "alice" and copy["tags"]["host_user"] == original["user"] != "alice"
    assert copy == _as_pushed(original, "alice", data=False)

    # --data brings the data objects too: checkout restores the files
    bob.cli("remote", "add", "team", server.url)
    out = bob.cli("pull", f"team:{run_id}", "--data").stdout
    assert f"pulled {run_id}" in out
    copy = bob.show(run_id)
    assert copy == _as_pushed(original, "alice", data=True)
    into = tmp_path / "restored"
    bob.cli("checkout", run_id, "--into", str(into), "--outputs")
    assert (into / "data/input.bin").read_bytes() == data
    assert b3(into / "out/model.bin") == b3(alice.root / "out/model.bin")
    assert (into / "train.py").read_text() == (alice.root / "train.py").read_text()

    # --no-data: the server records the data's hashes, not its bytes
    (alice.root / "data/other.bin").write_bytes(os.urandom(200_000))
    local_run = alice.run("train.py", "0.5", "data/other.bin", name="local-data")
    rec = alice.show(local_run)
    data_oids = {i["hash"] for i in rec["inputs"] + rec["outputs"]}
    assert len(data_oids) == 2
    pushed(alice.push(local_run, "--no-data"))
    status, bundle = http(
        server.url, "GET", f"/p/default/api/runs/{local_run}/bundle", team.tokens["bob"]
    )
    assert status == 200
    assert {r["oid"] for r in bundle["run_files"]} >= data_oids
    assert all(r["stored"] == 0 for r in bundle["run_files"])
    oids = check_server_objects(team)
    assert not data_oids & set(oids)
    bob.cli("pull", f"team:{local_run}", "--data")
    copy = bob.show(local_run)
    assert all(not i["stored"] for i in copy["inputs"] + copy["outputs"])


# -- 2. the same data in two runs is sent once -----------------------------------------------


def test_second_push_sends_only_new_bytes(team: Team, tmp_path: Path) -> None:
    from runbase.remote.client import Remote
    from runbase.remote.sync import push
    from runbase.store import Store

    server = team.start()
    alice = machine(tmp_path, "alice", {"data/input.bin": os.urandom(20 * MiB)})
    first = alice.run("train.py", "0.1")
    second = alice.run("train.py", "0.2")
    remote = Remote("team", server.url, "default", team.tokens["alice"])
    store = Store.open(alice.root / ".runbase")
    try:
        one = push(store, remote, [first])
        assert one.runs == [first] and one.bytes_sent > 20 * MiB
        two = push(store, remote, [second])
    finally:
        store.close()
    assert two.runs == [second] and two.objects_skipped > 0
    # the 20 MB input is on the server already: only the second run's own objects go
    assert 0 < two.bytes_sent < MiB
    check_server_objects(team)


# -- 3. the server killed in the middle of a push --------------------------------------------


def test_server_killed_mid_push_then_restarted(team: Team, tmp_path: Path) -> None:
    server = team.start()
    alice = machine(tmp_path, "alice")
    alice.login(server, team.tokens["alice"])
    run_id = alice.run("many.py", "300")
    assert len(alice.show(run_id)["outputs"]) == 300

    push = alice.popen("push", "--jobs", "2")
    try:
        while len(team.held()) < 20 and push.poll() is None:
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGSTOP)  # freeze it (uploads in flight), then kill
        at_kill = len(team.held())
        server.kill()
        assert push.poll() is None and at_kill < 300, "the push ended before the kill"
        server = team.start(server.port)  # the client retries for 60 s
        out, err = push.communicate(timeout=300)
    finally:
        if push.poll() is None:
            push.kill()
            push.wait()
    if push.returncode != 0:  # it gave up: pushing again finishes the job
        out = alice.push()
    summary = pushed(out)
    assert summary["runs"] == 1
    assert pushed(alice.push()) == {"runs": 0, "unchanged": 1, "sent": 0, "skipped": 0}

    oids = check_server_objects(team)
    status, bundle = http(
        server.url, "GET", f"/p/default/api/runs/{run_id}/bundle", team.tokens["alice"]
    )
    assert status == 200 and len(bundle["run_files"]) == 300
    assert set(bundle["objects"]) <= set(oids)
    for row in bundle["run_files"]:
        assert row["stored"] == 1 and row["oid"] in oids


# -- 4. PostgreSQL restarts under a running server -------------------------------------------


def test_database_restart_is_503_then_recovers(team: Team, tmp_path: Path, pg_server: str) -> None:
    server = team.start()
    token = team.tokens["alice"]
    alice = machine(tmp_path, "alice", {"data/input.bin": os.urandom(100_000)})
    alice.login(server, token)
    first = alice.run("train.py", "0.1")
    pushed(alice.push(first))
    second = alice.run("train.py", "0.2")
    oid = alice.show(first)["inputs"][0]["hash"]

    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/p/default/api/runs/{first}/bundle", None),
        ("GET", f"/p/default/api/runs/{first}", None),
        ("GET", "/api/v1/me", None),
        ("POST", "/p/default/api/objects/missing", {"oids": [oid]}),
        ("GET", f"/api/v1/search?data={oid}", None),
    ]
    statuses: list[int] = []
    stop = threading.Event()

    def keep_reading() -> None:  # a client that never stops asking, through the outage
        while not stop.is_set():
            for method, path, body in requests:
                try:
                    statuses.append(http(server.url, method, path, token, body)[0])
                except OSError:
                    statuses.append(0)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        pg_ctl(pg_server, "stop", "-m", "fast")
        try:
            during = [http(server.url, m, p, token, b)[0] for m, p, b in requests]
            ready = http(server.url, "GET", "/readyz")[0]
            late_push = alice.popen("push", second)  # retried until the database is back
        finally:
            pg_ctl(pg_server, "start")
        out, err = late_push.communicate(timeout=120)
        # the server recovers by itself: a request after the restart may still meet a
        # dead connection (503, retry), never a 500
        deadline = time.monotonic() + 30
        while http(server.url, "GET", f"/p/default/api/runs/{first}", token)[0] != 200:
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert during == [503] * len(requests), server.tail()
    assert ready == 503
    assert late_push.returncode == 0, err + server.tail()
    assert pushed(out)["runs"] == 1
    assert set(statuses) <= {200, 503}, server.tail()
    assert 503 in statuses and 200 in statuses
    assert server.proc.poll() is None  # the same process all along
    for method, path, body in requests:
        assert http(server.url, method, path, token, body)[0] == 200, (path, server.tail())
    third = alice.run("train.py", "0.3")
    assert pushed(alice.push(third))["runs"] == 1
    check_server_objects(team)


# -- 5. two clients push the same objects at once --------------------------------------------


def test_two_clients_push_the_same_objects_at_once(team: Team, tmp_path: Path) -> None:
    server = team.start()
    shared = {f"data/shard-{i:02d}.bin": os.urandom(64_000) for i in range(40)}
    shared["data/input.bin"] = os.urandom(6 * MiB)  # a multipart upload on S3
    reader = "import glob\nfor p in sorted(glob.glob('data/*.bin')): open(p, 'rb').read()\n"
    users = []
    for who in ("alice", "bob"):
        m = machine(tmp_path, who, {**shared, "read_all.py": reader})
        m.login(server, team.tokens[who])
        m.run("read_all.py")
        users.append(m)
    a, b = (u.show() for u in users)
    assert {i["hash"] for i in a["inputs"]} == {i["hash"] for i in b["inputs"]}
    assert len(a["inputs"]) == 41

    procs = [u.popen("push") for u in users]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err + server.tail()
        assert pushed(out)["runs"] == 1
    oids = check_server_objects(team)
    for rec in (a, b):
        assert {i["hash"] for i in rec["inputs"]} <= set(oids)
        status, bundle = http(
            server.url, "GET", f"/p/default/api/runs/{rec['id']}/bundle", team.tokens["bob"]
        )
        assert status == 200 and set(bundle["objects"]) <= set(oids)
    # each piece of data went up at most once per client, and is stored once
    assert len([o for o in oids if o in {i["hash"] for i in a["inputs"]}]) == 41


# -- 6. several server processes on one database and bucket ----------------------------------


def test_server_processes_share_one_database_and_bucket(team: Team, tmp_path: Path) -> None:
    many = team.start(workers=2)
    other = team.start()
    data = os.urandom(500_000)
    alice = machine(tmp_path, "alice", {"data/input.bin": data})
    bob = machine(tmp_path, "bob", {"data/input.bin": data})
    alice.login(many, team.tokens["alice"])
    bob.login(other, team.tokens["bob"])
    ran = alice.run("train.py", "0.1")
    assert pushed(alice.push())["runs"] == 1  # to the two-worker server

    bob.cli("pull", f"team:{ran}", "--data")  # from the other one
    assert bob.show(ran) == _as_pushed(alice.show(ran), "alice", data=True)
    into = tmp_path / "restored"
    bob.cli("checkout", ran, "--into", str(into), "--data")
    assert (into / "data/input.bin").read_bytes() == data

    theirs = bob.run("train.py", "0.7")
    summary = pushed(bob.push())  # the same input: already on the server
    assert summary["runs"] == 1 and summary["skipped"] >= 1
    alice.cli("pull", f"team:{theirs}")
    assert alice.show(theirs)["user"] == "bob"
    # every request of a batch, whichever worker takes it, sees the same runs
    for _ in range(10):
        for srv in (many, other):
            status, body = http(srv.url, "GET", "/p/default/api/runs", team.tokens["alice"])
            assert status == 200
            assert {ran, theirs} <= {r["id"] for r in body["runs"]}
    check_server_objects(team)


# -- 7. a database the server does not know ----------------------------------------------------


def _serve_once(team: Team, db: str) -> subprocess.CompletedProcess[str]:
    """`runbase server` on ``db``, expected to refuse it (and so to exit) at once."""
    try:
        return runbase_cmd(
            "server", "--db", db, "--objects", team.objects, "--port", str(_free_port()),
            env=team.env, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:  # it was killed when the timeout expired
        pytest.fail(f"runbase server started on a database it should refuse:\n{e.stderr!r}")


def test_server_refuses_an_unknown_database(team: Team, pg_server: str) -> None:
    psycopg = require("psycopg")
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    scratch = f"{pg_server}/{name}"

    proc = _serve_once(team, scratch)  # never migrated
    assert proc.returncode != 0
    assert "runbase server migrate" in proc.stderr and "Traceback" not in proc.stderr

    runbase_cmd(
        "server", "migrate", "--db", scratch, "--objects", team.objects, env=team.env, check=True
    )
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute(
            "UPDATE runbase_server.server_meta SET value = '99' WHERE key = 'control_version'"
        )
    proc = _serve_once(team, scratch)
    assert proc.returncode != 0
    assert "newer" in proc.stderr and "upgrade runbase" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # the server tables are fine, a project's run store is from a newer runbase
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute(
            "UPDATE runbase_server.server_meta SET value = %s WHERE key = 'control_version'",
            (str(control.CONTROL_VERSION),),
        )
        conn.execute("UPDATE rbp_default.meta SET value = '99' WHERE key = 'schema_version'")
    proc = _serve_once(team, scratch)
    assert proc.returncode != 0
    assert "newer" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# -- 8. team search by data hash ------------------------------------------------------------

PREP = """
raw = open("data/raw.bin", "rb").read()
with open("data/clean.bin", "wb") as f:
    f.write(raw[::2])
"""

READ_CLEAN = """
import os
clean = open("data/clean.bin", "rb").read()
os.makedirs("out", exist_ok=True)
with open("out/stats.txt", "w") as f:
    f.write(str(sum(clean[:1000])))
"""


def test_search_by_data_hash_across_readable_projects(team: Team, tmp_path: Path) -> None:
    for p in ("vision", "secret"):
        team.admin("projects", "add", p)
    team.admin("member", "vision", "alice", "writer")
    team.admin("member", "secret", "alice", "writer")
    team.admin("member", "vision", "bob", "reader")  # bob: not in secret
    server = team.start()
    alice = machine(
        tmp_path,
        "alice",
        {"data/raw.bin": os.urandom(50_000), "prep.py": PREP, "use.py": READ_CLEAN},
    )
    alice.login(server, team.tokens["alice"])
    alice.cli("remote", "add", "vision", server.url, "--project", "vision")
    alice.cli("remote", "add", "secret", server.url, "--project", "secret")
    prep = alice.run("prep.py", name="prep")
    use = alice.run("use.py", name="use")
    hidden = alice.run("use.py", name="hidden")
    unrelated = alice.run("train.py", "0.1", "data/raw.bin", name="unrelated")
    clean = b3(alice.root / "data/clean.bin")
    assert alice.show(prep)["outputs"][0]["hash"] == clean
    assert alice.show(use)["inputs"][0]["hash"] == clean

    alice.cli("push", prep, unrelated, "--to", "team")
    alice.cli("push", use, "--to", "vision")
    alice.cli("push", hidden, "--to", "secret", "--no-data")

    def search(who: str, oid: str) -> dict[str, tuple[str, str]]:
        status, body = http(server.url, "GET", f"/api/v1/search?data={oid}", team.tokens[who])
        assert status == 200, body
        assert body["total"] == len(body["runs"])
        return {r["id"]: (r["project"], r["data_role"]) for r in body["runs"]}

    assert search("bob", clean) == {prep: ("default", "output"), use: ("vision", "input")}
    assert search("alice", clean) == {
        prep: ("default", "output"),
        use: ("vision", "input"),
        hidden: ("secret", "input"),  # found by hash: its data stayed on alice's machine
    }
    raw = b3(alice.root / "data/raw.bin")
    assert search("bob", raw) == {prep: ("default", "input"), unrelated: ("default", "input")}
    assert search("bob", hash_bytes(b"never seen")) == {}
    # a bad hash is refused, not searched
    status, _ = http(server.url, "GET", "/api/v1/search?data=blake3:xyz", team.tokens["bob"])
    assert status == 422
    status, _ = http(server.url, "GET", f"/api/v1/search?data={clean}")
    assert status == 401


# -- sweeps: the record reaches the server, and stays its user's (issue 21) -----------------


INPUT: dict[str, str | bytes] = {"data/input.bin": b"trial input"}


def _make_sweep(m: Machine, sweep_id: str, runs: list[str], **update: Any) -> None:
    """Make ``runs`` trials of sweep ``sweep_id`` in ``m``'s store (its record created
    when missing, then ``update``d), as ``runbase sweep`` records them."""
    from runbase.records import sweeps
    from runbase.store import Store

    store = Store.open(m.root / ".runbase")
    try:
        if sweeps.get_sweep(store, sweep_id) is None:
            sweeps.create_sweep(store, sweep_id, {"command": [PY, "train.py"]})
        for run_id in runs:
            store.db.execute("UPDATE runs SET sweep_id = ? WHERE id = ?", (sweep_id, run_id))
        if update:
            sweeps.update_sweep(store, sweep_id, **update)
    finally:
        store.close()


def test_a_sweeps_record_is_pushed_on_its_own_once(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbase.errors import RemoteError
    from runbase.remote.sweeps import push_sweep
    from runbase.store import Store

    server = team.start()
    alice = machine(tmp_path, "alice", INPUT)
    alice.login(server, team.tokens["alice"])
    a, b = alice.run("train.py", "0.1"), alice.run("train.py", "0.2")
    _make_sweep(alice, "sw-a", [a, b], best_run=a)
    assert pushed(alice.push("--all"))["runs"] == 2

    def on_server() -> dict[str, Any]:
        status, body = http(server.url, "GET", "/p/default/api/sweeps/sw-a", team.tokens["bob"])
        assert status == 200, body
        return dict(body)

    got = on_server()
    assert (got["status"], got["best_run"], got["user"], got["total"]) == ("running", a, "alice", 2)

    # the driver moves on after its trials were sent: push sends the sweep, not the trials
    _make_sweep(alice, "sw-a", [], status="finished", best_run=b)
    assert pushed(alice.push("--all")) == {"runs": 0, "unchanged": 2, "sent": 0, "skipped": 0}
    got = on_server()
    assert (got["status"], got["best_run"]) == ("finished", b)

    # the driver's own call (runbase sweep --publish)
    monkeypatch.setenv("RUNBASE_CONFIG", str(alice.config))
    _make_sweep(alice, "sw-a", [], status="interrupted")
    store = Store.open(alice.root / ".runbase")
    try:
        push_sweep(store, "sw-a", "team")
        store.db.execute("UPDATE sweeps SET status = 'failed', updated_at = 1")  # older
        push_sweep(store, "sw-a", "team")  # sent, but the server keeps the newer
        with pytest.raises(RemoteError, match="no remote 'nowhere'"):
            push_sweep(store, "sw-a", "nowhere")
    finally:
        store.close()
    assert on_server()["status"] == "interrupted"


def test_nobody_adds_to_another_users_sweep(team: Team, tmp_path: Path) -> None:
    server = team.start()
    alice, bob = machine(tmp_path, "alice", INPUT), machine(tmp_path, "bob", INPUT)
    alice.login(server, team.tokens["alice"])
    bob.login(server, team.tokens["bob"])
    a = alice.run("train.py", "0.1")
    _make_sweep(alice, "sw-a", [a], best_run=a)
    pushed(alice.push(a))

    # a run of bob's claiming to be a trial of alice's sweep
    c = bob.run("train.py", "0.2")
    _make_sweep(bob, "sw-a", [c])
    p = bob.cli("push", c, check=False)
    assert p.returncode != 0 and "sweep sw-a belongs to alice" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    status, _ = http(server.url, "GET", f"/p/default/api/runs/{c}", team.tokens["bob"])
    assert status == 404

    # the sweep's record itself
    def put(who: str, sweep_id: str, **row: Any) -> int:
        body = {"id": sweep_id, "created_at": 1.0e9, "updated_at": 2.0e9, "status": "failed",
                "spec_json": '{"command": ["true"]}', **row}  # fmt: skip
        status, _ = http(
            server.url, "PUT", f"/p/default/api/sweeps/{sweep_id}", team.tokens[who], body
        )
        return status

    assert put("bob", "sw-a") == 403
    assert put("bob", "sw-b") == 200  # his own
    assert put("alice", "sw-b") == 403
    assert put("bob", "sw-b", owner_pid=1) == 422  # the driver never leaves its machine
    assert put("bob", "sw-b", id="sw-c") == 400
    assert put("bob", "..") in (404, 422)
    _, got = http(server.url, "GET", "/p/default/api/sweeps/sw-a", team.tokens["bob"])
    assert (got["status"], got["user"], got["total"]) == ("running", "alice", 1)


def test_a_pruned_run_takes_its_last_live_updates(team: Team, tmp_path: Path) -> None:
    from runbase.records import sweeps
    from runbase.store import Store

    server = team.start()
    alice = machine(tmp_path, "alice", INPUT)
    alice.login(server, team.tokens["alice"])
    run_id = alice.run("train.py", "0.1")
    store = Store.open(alice.root / ".runbase")
    try:  # the pruner stopped it: its supervisor ended it killed, the sweep marked it
        store.db.execute("UPDATE runs SET status = 'killed' WHERE id = ?", (run_id,))
        assert sweeps.set_run_status(store, run_id, "pruned", note="pruned at step 2")
    finally:
        store.close()
    pushed(alice.push(run_id))

    # its publisher's last deltas arrive after the mark: taken, the status stays
    token = team.tokens["alice"]
    delta = {"bundle_version": 1, "run": {"id": run_id, "status": "running"},
             "tags": [{"key": "late", "value": "1"}]}  # fmt: skip
    status, body = http(server.url, "POST", f"/p/default/api/runs/{run_id}/live", token, delta)
    assert status == 200, body
    _, rec = http(server.url, "GET", f"/p/default/api/runs/{run_id}", token)
    assert rec["status"] == "pruned" and rec["tags"]["late"] == "1"

    # a run that ended on its own still refuses them
    other = alice.run("train.py", "0.2")
    pushed(alice.push(other))
    delta["run"]["id"] = other
    status, body = http(server.url, "POST", f"/p/default/api/runs/{other}/live", token, delta)
    assert status == 409, body
