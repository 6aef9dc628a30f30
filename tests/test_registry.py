"""The model registry's library (runbase.records.registry, docs/models.md): versions,
stages as stacks, who may change what, the two-person approval, and the audit chain
that catches any edit of history, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import itertools
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import runbase_cmd, write
from runbase.core.auditchain import event_hash
from runbase.errors import Conflict, Forbidden, NotFound, UsageError
from runbase.records import registry
from runbase.records.registry import Actor, Source
from runbase.store import Store
from runbase.store.db import open_database

PY = sys.executable
ADMIN = Actor("ana")
_counter = itertools.count(1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / ".runbase", create=True)
    yield s
    s.close()


def external(store: Store, where: Path, text: str | None = None) -> Source:
    """Bytes no run produced, stored and registered as ``--external`` would."""
    path = where / f"model-{next(_counter)}.bin"
    path.write_text(text if text is not None else f"weights {path.name}\n")
    return registry.source_of_file(store, str(path), external=True)


def three_versions(store: Store, where: Path, name: str = "churn") -> list[str]:
    out = []
    for _ in range(3):
        out.append(registry.register(store, name, external(store, where), actor=ADMIN)[0].version)
    return [str(v) for v in out]


def holder(store: Store, name: str, stage: str) -> str | None:
    return registry.stages(store, name).get(stage)


# -- versions ----------------------------------------------------------------------------


def test_register_numbers_versions_by_semver(store: Store, tmp_path: Path) -> None:
    reg = registry.register
    assert reg(store, "a", external(store, tmp_path), actor=ADMIN)[0].version == "v0.0.1"
    assert reg(store, "b", external(store, tmp_path), bump="minor", actor=ADMIN)[0].version == (
        "v0.1.0"
    )
    assert reg(store, "c", external(store, tmp_path), bump="major", actor=ADMIN)[0].version == (
        "v1.0.0"
    )
    for bump, want in (("patch", "v0.0.2"), ("minor", "v0.1.0"), ("major", "v1.0.0")):
        assert reg(store, "a", external(store, tmp_path), bump=bump, actor=ADMIN)[0].version == want
    # an explicit number, with or without its v; the next bump goes on from the highest
    assert reg(store, "a", external(store, tmp_path), version="2.3.4", actor=ADMIN)[0].version == (
        "v2.3.4"
    )
    assert reg(store, "a", external(store, tmp_path), version="v1.5.0", actor=ADMIN)[0].version == (
        "v1.5.0"
    )
    assert reg(store, "a", external(store, tmp_path), actor=ADMIN)[0].version == "v2.3.5"
    assert [v.version for v in registry.versions(store, "a")] == [
        "v2.3.5", "v2.3.4", "v1.5.0", "v1.0.0", "v0.1.0", "v0.0.2", "v0.0.1",
    ]  # fmt: skip
    assert registry.resolve_ref(store, "a@latest").version == "v2.3.5"
    latest = registry.resolve_ref(store, "a@2.3.4")
    assert latest.ref == "a@v2.3.4" and latest.external and latest.user == "ana"
    assert latest.to_json()["external"] is True and latest.to_json()["run"] is None
    with pytest.raises(UsageError, match="vMAJOR.MINOR.PATCH"):
        reg(store, "a", external(store, tmp_path), version="v1.2", actor=ADMIN)
    with pytest.raises(UsageError, match="bad bump"):
        reg(store, "a", external(store, tmp_path), bump="huge", actor=ADMIN)
    with pytest.raises(UsageError, match="bad model name"):
        reg(store, "Churn/x", external(store, tmp_path), actor=ADMIN)
    summary = {m["name"]: m for m in registry.list_models(store)}
    assert summary["a"]["latest"] == "v2.3.5" and summary["a"]["versions"] == 7
    assert registry.verify(store).ok


def test_register_conflicts_write_nothing(store: Store, tmp_path: Path) -> None:
    src = external(store, tmp_path, "the bytes\n")
    registry.register(store, "churn", src, version="v1.0.0", actor=ADMIN)
    before = registry.events(store)
    with pytest.raises(Conflict, match="exists"):
        registry.register(store, "churn", external(store, tmp_path), version="1.0.0", actor=ADMIN)
    with pytest.raises(Conflict, match=r"already churn@v1\.0\.0"):
        registry.register(store, "churn", src, actor=ADMIN)
    # the same bytes may be a version of another model
    assert registry.register(store, "other", src, actor=ADMIN)[0].version == "v0.0.1"
    # bytes the store lacks cannot be registered (nothing to deliver)
    gone = Source("blake3:" + "ab" * 32, "file", 3, None, None)
    with pytest.raises(Conflict, match="not in the store"):
        registry.register(store, "churn", gone, actor=ADMIN)
    assert len(registry.events(store)) == len(before) + 1  # only "other"'s register
    assert [v.version for v in registry.versions(store, "churn")] == ["v1.0.0"]


def test_unknown_model_version_and_stage(store: Store, tmp_path: Path) -> None:
    three_versions(store, tmp_path)
    with pytest.raises(NotFound, match="no model 'nope'"):
        registry.promote(store, "nope", "v0.0.1", "production", message=None, actor=ADMIN)
    with pytest.raises(NotFound, match="no version v9.0.0 of model churn"):
        registry.promote(store, "churn", "v9.0.0", "production", message=None, actor=ADMIN)
    with pytest.raises(NotFound, match="in stage 'production'"):
        registry.resolve_ref(store, "churn@production")
    with pytest.raises(NotFound, match="no version of churn is in stage 'staging'"):
        registry.demote(store, "churn", "staging", message=None, actor=ADMIN)
    with pytest.raises(NotFound, match="no model 'nope'"):
        registry.versions(store, "nope")
    with pytest.raises(NotFound):
        registry.get_version(store, "churn", "v0.0.9")
    with pytest.raises(UsageError, match="cannot name a stage"):
        registry.promote(store, "churn", "v0.0.1", "latest", message=None, actor=ADMIN)
    with pytest.raises(UsageError, match="bad stage name"):
        registry.promote(store, "churn", "v0.0.1", "Prod!", message=None, actor=ADMIN)
    with pytest.raises(UsageError, match="bad model reference"):
        registry.resolve_ref(store, "churn")
    assert registry.lookup(store, "nope@production") is None  # no such model: not a reference
    assert registry.lookup(store, "not a ref") is None
    with pytest.raises(NotFound):  # the model exists: the reader meant it
        registry.lookup(store, "churn@production")
    assert [e.action for e in registry.events(store)] == ["register"] * 3


# -- stages ------------------------------------------------------------------------------


def test_promote_rollback_demote_as_a_stack(store: Store, tmp_path: Path) -> None:
    a, b, c = three_versions(store, tmp_path)
    for v in (a, b, c):
        registry.promote(store, "churn", v, "production", message=f"ship {v}", actor=ADMIN)
    assert holder(store, "churn", "production") == c
    assert registry.resolve_ref(store, "churn@production").version == c
    assert registry.resolve_ref(store, f"churn@{c}").stages == ("production",)
    with pytest.raises(Conflict, match="already is"):
        registry.promote(store, "churn", c, "production", message=None, actor=ADMIN)
    steps = []
    for action in ("rollback", "rollback", "demote", "rollback"):
        fn = registry.rollback if action == "rollback" else registry.demote
        (ev,) = fn(store, "churn", "production", message=f"{action} it", actor=ADMIN)
        steps.append(
            (ev.action, ev.from_version, ev.to_version, holder(store, "churn", "production"))
        )
    assert steps == [
        ("rollback", c, b, b),
        ("rollback", b, a, a),
        ("demote", a, None, None),
        ("rollback", None, a, a),  # a rollback undoes the demotion
    ]
    with pytest.raises(Conflict, match="no earlier version"):
        registry.rollback(store, "churn", "production", message=None, actor=ADMIN)
    log = registry.events(store, "churn")
    assert [e.action for e in log] == [
        "register", "register", "register", "promote", "promote", "promote",
        "rollback", "rollback", "demote", "rollback",
    ]  # fmt: skip
    assert log[4].message == f"ship {b}" and log[4].user == "ana" and log[4].from_version == a
    assert log[5].oid == registry.get_version(store, "churn", c).oid
    # each event links to the one before it
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(log))
    assert registry.verify(store).ok


def test_stages_are_per_model_and_on_events_runs_after_commit(store: Store, tmp_path: Path) -> None:
    a, b, _ = three_versions(store, tmp_path)
    three_versions(store, tmp_path, "fraud")
    seen: list[list[str]] = []
    watcher = Actor("ana", on_events=lambda evs: seen.append([e.action for e in evs]))
    registry.promote(store, "churn", a, "staging", message=None, actor=watcher)
    registry.promote(store, "churn", b, "production", message=None, actor=watcher)
    registry.promote(store, "fraud", "v0.0.3", "production", message=None, actor=watcher)
    assert registry.stages(store, "churn") == {"production": b, "staging": a}
    assert registry.stages(store, "fraud") == {"production": "v0.0.3"}
    with pytest.raises(Conflict):  # a failed change tells no one
        registry.promote(store, "churn", b, "production", message=None, actor=watcher)
    assert seen == [["promote"], ["promote"], ["promote"]]


# -- who may do what ----------------------------------------------------------------------


def test_roles_and_protected_stages(store: Store, tmp_path: Path) -> None:
    a, b, _ = three_versions(store, tmp_path)
    protected = {"production": 1}
    writer = Actor("wes", role="writer", protected=protected)
    approver = Actor("amy", role="approver", protected=protected)
    reader = Actor("rod", role="reader", protected=protected)
    with pytest.raises(Forbidden, match="registering a version needs the writer role"):
        registry.register(store, "churn", external(store, tmp_path), actor=reader)
    with pytest.raises(Forbidden, match="protected"):
        registry.promote(store, "churn", a, "production", message=None, actor=writer)
    registry.promote(store, "churn", a, "staging", message=None, actor=writer)  # not protected
    registry.promote(store, "churn", a, "production", message=None, actor=approver)
    registry.promote(store, "churn", b, "production", message=None, actor=approver)
    for fn in (registry.demote, registry.rollback):
        with pytest.raises(Forbidden, match="approver"):
            fn(store, "churn", "production", message=None, actor=writer)
    registry.rollback(store, "churn", "production", message="b broke", actor=approver)
    assert registry.stages(store, "churn") == {"production": a, "staging": a}
    users = [(e.action, e.user) for e in registry.events(store, "churn") if e.action != "register"]
    assert users == [
        ("promote", "wes"),
        ("promote", "amy"),
        ("promote", "amy"),
        ("rollback", "amy"),
    ]


def test_two_person_promotion(store: Store, tmp_path: Path) -> None:
    a, b, _ = three_versions(store, tmp_path)
    two = {"production": 2}
    alice_w = Actor("alice", role="writer", protected=two)
    alice_a = Actor("alice", role="approver", protected=two)
    bob = Actor("bob", role="approver", protected=two)
    (req,) = registry.promote(store, "churn", a, "production", message="please", actor=alice_w)
    assert req.action == "request" and req.to_version == a
    assert holder(store, "churn", "production") is None  # nothing changed yet
    (open_,) = registry.requests(store, "churn")
    assert open_["requested_by"] == "alice" and open_["state"] == "open"
    assert open_["id"] == req.data["request"] and open_["message"] == "please"
    with pytest.raises(Conflict, match="already open"):
        registry.promote(store, "churn", a, "production", message=None, actor=alice_w)
    with pytest.raises(Forbidden, match="approver"):
        registry.approve(store, open_["id"], message=None, actor=alice_w)
    with pytest.raises(Forbidden, match="yours"):
        registry.approve(store, open_["id"], message=None, actor=alice_a)
    done = registry.approve(store, open_["id"], message="looks good", actor=bob)
    assert [e.action for e in done] == ["approve", "promote"]
    assert done[1].data == {"request": open_["id"], "approved_by": "bob"}
    assert done[1].user == "bob" and done[1].to_version == a
    assert holder(store, "churn", "production") == a
    (decided,) = registry.requests(store, "churn", state="approved")
    assert decided["decided_by"] == "bob" and decided["decision"] == "looks good"
    with pytest.raises(Conflict, match="approved already"):
        registry.approve(store, open_["id"], message=None, actor=bob)
    with pytest.raises(NotFound, match="no promotion request"):
        registry.approve(store, "nope", message=None, actor=bob)
    # a second request, rejected: nothing moves
    (req2,) = registry.promote(store, "churn", b, "production", message=None, actor=alice_w)
    (rej,) = registry.reject(store, req2.data["request"], message="not now", actor=bob)
    assert rej.action == "reject" and holder(store, "churn", "production") == a
    assert registry.requests(store, "churn") == []
    assert registry.verify(store).ok


# -- the audit chain ---------------------------------------------------------------------


def history(store: Store, tmp_path: Path) -> list[str]:
    """Register three versions and move production around: six events."""
    a, b, c = three_versions(store, tmp_path)
    registry.promote(store, "churn", a, "production", message="first", actor=ADMIN)
    registry.promote(store, "churn", b, "production", message="second", actor=ADMIN)
    registry.promote(store, "churn", c, "staging", message="try", actor=ADMIN)
    return [a, b, c]


def sql(store: Store, statement: str, *args: object) -> None:
    """Change the database behind runbase's back, as someone with the file could."""
    conn = sqlite3.connect(store.root / "runbase.db")
    with conn:
        conn.execute(statement, args)
    conn.close()


def test_verify_an_intact_log(store: Store, tmp_path: Path) -> None:
    assert registry.verify(store).to_json() == {
        "ok": True, "events": 0, "head": None, "problems": [],
    }  # fmt: skip
    history(store, tmp_path)
    report = registry.verify(store)
    last = registry.events(store)[-1]
    assert report.to_json() == {"ok": True, "events": 6, "head": last.hash, "problems": []}
    assert last.seq == 6 and last.hash.startswith("sha256:")


def test_verify_names_an_edited_event(store: Store, tmp_path: Path) -> None:
    history(store, tmp_path)
    sql(store, "UPDATE model_events SET message = 'nothing to see' WHERE seq = 4")
    report = registry.verify(store)
    assert not report.ok
    assert "event 4 does not match its hash (its fields were edited)" in report.problems
    # a hash recomputed to match the edit breaks the next link instead
    names = ("seq", "id", "time", "user_name", "action", "model", "version", "stage",
             "from_version", "to_version", "oid", "run_id", "message", "data", "origin")  # fmt: skip
    row = store.db.query_one(
        f"SELECT {', '.join(names)}, prev_hash FROM model_events WHERE seq = 4"
    )
    assert row is not None
    fields = dict(zip(names, row[:-1], strict=True))
    fields["user"] = fields.pop("user_name")  # the hashed field is named user (docs/models.md)
    sql(store, "UPDATE model_events SET hash = ? WHERE seq = 4", event_hash(row[-1], fields))
    problems = registry.verify(store).problems
    assert "event 5 does not link to the event before it (history was changed)" in problems
    assert not any("event 4" in p for p in problems)


def test_verify_catches_a_deleted_middle_event(store: Store, tmp_path: Path) -> None:
    history(store, tmp_path)
    sql(store, "DELETE FROM model_events WHERE seq = 3")
    problems = registry.verify(store).problems
    assert "event 4 follows event 2: events are missing or reordered" in problems
    assert "event 4 does not link to the event before it (history was changed)" in problems
    # the log no longer registers the third version the registry still has
    assert any("in the registry but the log never made it" in p for p in problems)


def test_verify_catches_a_deleted_last_event_by_its_head(store: Store, tmp_path: Path) -> None:
    history(store, tmp_path)
    sql(store, "DELETE FROM model_events WHERE seq = 6")
    problems = registry.verify(store).problems
    # the chain that is left is intact: the head, kept apart, says an event is gone
    assert not any(p.startswith("event ") for p in problems)
    assert any(p.startswith("the log's head is 6 sha256:") for p in problems), problems
    # (and the stage the removed event moved no longer follows from the log)
    assert "stage churn@staging is v0.0.3 in the registry but empty by the log" in problems


def test_verify_replays_the_log_against_the_state(store: Store, tmp_path: Path) -> None:
    a, b, _ = history(store, tmp_path)
    sql(
        store,
        "UPDATE model_stages SET version = ? WHERE name = 'churn' AND stage = 'production'",
        a,
    )
    problems = registry.verify(store).problems
    assert problems == [f"stage churn@production is {a} in the registry but {b} by the log"]
    sql(
        store,
        "UPDATE model_stages SET version = ? WHERE name = 'churn' AND stage = 'production'",
        b,
    )
    assert registry.verify(store).ok
    sql(store, "UPDATE model_versions SET oid = ? WHERE version = ?", "blake3:" + "cd" * 32, a)
    (problem,) = registry.verify(store).problems
    assert problem.startswith(f"version churn@{a}: oid is 'blake3:cdcdcdcdcdcd")
    sql(store, "DELETE FROM model_versions WHERE version = ?", a)
    assert registry.verify(store).problems == [
        f"version churn@{a} is in the log but gone from the registry"
    ]


# -- the same on PostgreSQL ----------------------------------------------------------------


def pg_store(server: str, root: Path) -> tuple[Store, str]:
    """A store whose database is a fresh PostgreSQL database on ``server`` (objects on
    disk), as a team server's project store is; and the database's URL."""
    import psycopg

    name = f"reg{next(_counter)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    local = Store.open(root / ".runbase", create=True)
    local.close()
    url = f"{server}/{name}"
    return Store(local.root, open_database(url, create=True), local.objects), url


def test_postgresql_edit_is_detected(pg_server: str, tmp_path: Path) -> None:
    import psycopg

    store, url = pg_store(pg_server, tmp_path)
    a, b, _ = history(store, tmp_path)
    assert registry.verify(store).ok and registry.verify(store).events == 6
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE model_events SET user_name = 'mallory' WHERE seq = 5")
    assert (
        "event 5 does not match its hash (its fields were edited)"
        in registry.verify(store).problems
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE model_events SET user_name = 'ana' WHERE seq = 5")
        conn.execute("UPDATE model_stages SET version = %s WHERE stage = 'production'", (a,))
    assert registry.verify(store).problems == [
        f"stage churn@production is {a} in the registry but {b} by the log"
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE model_stages SET version = %s WHERE stage = 'production'", (b,))
        conn.execute("DELETE FROM model_events WHERE seq = 6")
    assert any("head" in p for p in registry.verify(store).problems)
    store.close()


def test_postgresql_concurrent_promotes_never_fork_the_chain(
    pg_server: str, tmp_path: Path
) -> None:
    store, url = pg_store(pg_server, tmp_path)
    a, b, _ = three_versions(store, tmp_path)
    errors: list[str] = []
    rounds = 15

    def promoter(stage: str) -> None:
        # its own Store and database connection: two writers, as two server workers are
        own = Store(store.root, open_database(url), store.objects)
        try:
            for i in range(rounds):
                v = (a, b)[i % 2]
                registry.promote(own, "churn", v, stage, message=f"{stage} {i}", actor=ADMIN)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(e))
        finally:
            own.close()

    threads = [threading.Thread(target=promoter, args=(s,)) for s in ("production", "staging")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = registry.events(store)
    assert [e.seq for e in log] == list(range(1, 3 + 2 * rounds + 1))
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(log))
    assert len({e.prev_hash for e in log}) == len(log)  # no two events follow the same one
    report = registry.verify(store)
    assert report.ok, report.problems
    assert report.head == log[-1].hash
    last = (a, b)[(rounds - 1) % 2]
    assert registry.stages(store, "churn") == {"production": last, "staging": last}
    store.close()


# -- pushed events -------------------------------------------------------------------------


def test_import_event_is_idempotent(store: Store, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    there = Store.open(tmp_path / "other" / ".runbase", create=True)
    src = external(store, tmp_path, "pushed weights\n")
    (reg,) = registry.register(store, "churn", src, message="from a laptop", actor=ADMIN)
    (pro,) = registry.promote(store, "churn", reg.version, "staging", message="go", actor=ADMIN)
    pusher = Actor("pat", role="writer")
    # the register event names bytes the other store lacks: refused until pushed
    result, detail = registry.import_event(there, reg.to_json(), actor=pusher)
    assert result == "refused" and "not in the store" in detail
    there.objects.put_bytes(b"pushed weights\n")
    assert registry.import_event(there, reg.to_json(), actor=pusher) == ("applied", "churn@v0.0.1")
    assert registry.import_event(there, reg.to_json(), actor=pusher)[0] == "exists"
    assert registry.import_event(there, pro.to_json(), actor=pusher)[0] == "applied"
    assert registry.import_event(there, pro.to_json(), actor=pusher)[0] == "exists"
    log = registry.events(there)
    assert [(e.action, e.origin, e.user) for e in log] == [
        ("register", reg.id, "pat"),
        ("promote", pro.id, "pat"),
    ]
    assert registry.stages(there, "churn") == {"staging": "v0.0.1"}
    assert registry.get_version(there, "churn", "v0.0.1").oid == src.oid
    # approvals are not pushed; an event without an id is refused
    assert (
        registry.import_event(
            there, {**pro.to_json(), "id": "x1", "action": "approve"}, actor=pusher
        )[0]
        == "refused"
    )
    assert registry.import_event(there, {"action": "promote"}, actor=pusher)[0] == "refused"
    assert registry.verify(there).ok
    there.close()


def test_a_pushed_rollback_cannot_skip_a_second_person(store: Store, tmp_path: Path) -> None:
    """A rollback pushed to a two-person stage is a rollback only if it restores the
    stage's previous holder here; anything else is the promotion it amounts to, which
    opens a request (found by review: an approver could carry any version in)."""
    a, b, c = three_versions(store, tmp_path)
    registry.promote(store, "churn", a, "production", message="first", actor=ADMIN)
    guarded = Actor("mallory", role="approver", protected={"production": 2})
    forged = {"id": "evil-1", "action": "rollback", "model": "churn", "stage": "production",
              "from_version": a, "to_version": c}  # fmt: skip
    result, detail = registry.import_event(store, forged, actor=guarded)
    assert (result, holder(store, "churn", "production")) == ("applied", a)
    assert detail == f"a request to promote churn@{c} to production is open"
    assert [r["version"] for r in registry.requests(store, "churn")] == [c]
    # a promote without its version is refused, not read as "empty the stage"
    bare = {"id": "evil-2", "action": "promote", "model": "churn", "stage": "production"}
    assert registry.import_event(store, bare, actor=guarded)[0] == "refused"
    assert holder(store, "churn", "production") == a
    # a true rollback (to the previous holder here) is one, by an approver
    registry.promote(store, "churn", b, "production", message="next", actor=ADMIN)
    back = {**forged, "id": "ok-1", "from_version": b, "to_version": a}
    assert registry.import_event(store, back, actor=guarded)[0] == "applied"
    assert holder(store, "churn", "production") == a
    assert registry.events(store)[-1].action == "rollback"
    assert registry.verify(store).ok


def test_a_stale_pushed_event_never_reverts_a_stage(store: Store, tmp_path: Path) -> None:
    """Stage changes pushed from elsewhere are compare-and-set, and each event is answered
    once: pushing an old event again after the stage moved on changes nothing."""
    a, b, _ = three_versions(store, tmp_path)
    registry.promote(store, "churn", a, "staging", message=None, actor=ADMIN)
    pusher = Actor("pat", role="writer")
    old = {"id": "laptop-1", "action": "promote", "model": "churn", "stage": "staging",
           "from_version": None, "to_version": a}  # fmt: skip
    assert registry.import_event(store, old, actor=pusher)[0] == "exists"
    registry.promote(store, "churn", b, "staging", message="moved on", actor=ADMIN)
    assert registry.import_event(store, old, actor=pusher)[0] == "exists"
    assert holder(store, "churn", "staging") == b
    # a change that started from another holder than this store's is refused
    moved = {**old, "id": "laptop-2", "from_version": a, "to_version": a.replace("1", "3")}
    result, detail = registry.import_event(store, moved, actor=pusher)
    assert result == "refused" and "moved on here" in detail
    assert holder(store, "churn", "staging") == b
    # decided for good: even once the stage is back where that change started from, a
    # later push of it does not apply it (found by review: it did, silently)
    registry.promote(store, "churn", a, "staging", message="back", actor=ADMIN)
    result, detail = registry.import_event(store, moved, actor=pusher)
    assert result == "settled" and detail.startswith("refused before: ")
    assert holder(store, "churn", "staging") == a
    assert registry.prior_answer(store, "laptop-2") == (result, detail)
    assert registry.prior_answer(store, "never-pushed") is None
    assert registry.verify(store).ok


def test_a_refused_push_stays_refused_when_roles_change(store: Store, tmp_path: Path) -> None:
    a, _, _ = three_versions(store, tmp_path)
    event = {"id": "w-1", "action": "promote", "model": "churn", "stage": "production",
             "from_version": None, "to_version": a, "user": "wes",
             "time": "2026-12-01T10:00:00+00:00", "message": "ship it"}  # fmt: skip
    writer = Actor("wes", role="writer", protected={"production": 1})
    assert registry.import_event(store, event, actor=writer)[0] == "refused"
    approver = Actor("wes", role="approver", protected={"production": 1})
    assert registry.import_event(store, event, actor=approver)[0] == "settled"
    assert holder(store, "churn", "production") is None
    # a refusal a later push can cure (bytes not here yet) is not kept
    late = {**event, "id": "w-2", "action": "register", "version": "v9.0.0",
            "oid": "blake3:" + "ab" * 32, "stage": None, "data": {"kind": "file"}}  # fmt: skip
    result, detail = registry.import_event(store, late, actor=approver)
    assert result == "refused" and "not in the store" in detail
    assert registry.prior_answer(store, "w-2") is None
    # an applied event keeps who made it where it was pushed from, and when
    (made,) = registry.import_event(store, {**event, "id": "w-3"}, actor=approver)[:1]
    assert made == "applied"
    last = registry.events(store)[-1]
    assert (last.user, last.origin, last.data["pushed"]) == (
        "wes", "w-3", {"user": "wes", "time": 1796119200.0},
    )  # fmt: skip


def test_verify_checks_every_field_of_the_state(store: Store, tmp_path: Path) -> None:
    """Provenance (a version's run and path) and requests are replayed from the log too."""
    a, b, _ = three_versions(store, tmp_path)
    two = Actor("pat", role="writer", protected={"production": 2})
    registry.promote(store, "churn", a, "production", message="ask", actor=two)
    assert registry.verify(store).ok
    sql(store, "UPDATE model_versions SET run_id = 'x' WHERE version = ?", b)
    assert registry.verify(store).problems == [
        f"version churn@{b}: run is 'x' in the registry but None by the log"
    ]
    sql(store, "UPDATE model_versions SET run_id = NULL WHERE version = ?", b)
    sql(store, "UPDATE model_requests SET requested_by = 'ana'")
    (problem,) = registry.verify(store).problems
    assert problem.endswith("requested_by is 'ana' in the registry but 'pat' by the log")
    sql(store, "UPDATE model_requests SET requested_by = 'pat'")
    assert registry.verify(store).ok
    # who and why are part of the record too: the message, the user, the time
    sql(store, "UPDATE model_versions SET message = 'approved by legal' WHERE version = ?", b)
    sql(store, "UPDATE model_stages SET user_name = 'mallory'")
    sql(store, "UPDATE model_requests SET message = 'urgent'")
    problems = registry.verify(store).problems
    assert len(problems) == 2 and any("message is 'approved by legal'" in p for p in problems)
    assert any("request" in p and "message is 'urgent'" in p for p in problems)


# -- where a version comes from --------------------------------------------------------------


def test_a_file_resolves_to_the_newest_run_that_produced_it(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import os
        os.makedirs("out", exist_ok=True)
        open("out/model.bin", "w").write("the same weights\\n")
    """,
    )
    (project / ".gitignore").write_text("out/\n")
    runbase_cmd("run", "--name", "first", "--", PY, "train.py", cwd=project, check=True)
    runbase_cmd("run", "--name", "second", "--", PY, "train.py", cwd=project, check=True)
    store = Store.open(project / ".runbase")
    runs = dict(store.db.query("SELECT name, id FROM runs"))
    src = registry.source_of_file(store, str(project / "out" / "model.bin"))
    assert src.run_id == runs["second"] and src.path == "out/model.bin" and src.kind == "file"
    assert src.git_commit and len(src.git_commit) == 40
    by_path = registry.source_of_run_path(store, runs["first"], "out/model.bin")
    assert by_path.run_id == runs["first"] and by_path.oid == src.oid
    with pytest.raises(NotFound, match="wrote no output 'out/nope.bin'"):
        registry.source_of_run_path(store, runs["first"], "out/nope.bin")
    (project / "other.bin").write_text("nobody made this\n")
    with pytest.raises(UsageError, match="--external"):
        registry.source_of_file(store, str(project / "other.bin"))
    (ev,) = registry.register(store, "churn", src, actor=ADMIN)
    assert ev.run_id == runs["second"] and ev.data["git_commit"] == src.git_commit
    version = registry.get_version(store, "churn", "v0.0.1")
    assert not version.external and version.run_id == runs["second"]
    store.close()
