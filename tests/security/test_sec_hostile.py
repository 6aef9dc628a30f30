"""Issue 14.5 and 14.8: readers are robust to what a store holds. Rows an older version
(or a hostile writer, or a pull from an old server) left in a real local SQLite store —
times of 1e300/inf/NaN, wrong-shaped JSON columns, text in an integer column, JSON
nested thousands deep — are planted with plain SQL, never through runbase's checks;
then the real CLI (``ls``, ``show``, ``diff``, ``logs``, ``fsck``, ``trace``) and the
web API routes must answer, never a traceback or a 500, and every JSON output must be
strict JSON. Deep ``--where`` expressions are clear errors."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import commit, require, runbase_cmd, write

TRAIN = """
import runbase
runbase.param("lr", 0.1)
for i in range(3):
    runbase.log(loss=1.0 / (i + 1), step=i)
with open("out.txt", "w") as f:
    f.write("done")
"""

DEEP = 5000


def _strict(text: str) -> Any:
    """Parse ``text`` as strict JSON: NaN/Infinity tokens are not JSON."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"not strict JSON: {token} in the output")

    return json.loads(text, parse_constant=refuse)


def _ok(proc: Any) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return str(proc.stdout)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two real runs; run ``bad`` then gets what a hostile writer could have stored."""
    import subprocess

    from conftest import GIT

    root = tmp_path_factory.mktemp("hostile") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", TRAIN)
    commit(root, "train")
    for name in ("bad", "good"):
        runbase_cmd("run", "--name", name, "--", sys.executable, "train.py", cwd=root, check=True)
    ids = {r["name"]: r["id"] for r in _strict(_ok(runbase_cmd("ls", "--json", cwd=root)))}
    deep_list = "[" * DEEP + "]" * DEEP
    db = sqlite3.connect(root / ".runbase" / "runbase.db")
    with db:
        db.execute(
            "UPDATE runs SET started_at = 1e300, ended_at = 9e999, heartbeat_at = -9e999, "
            "exit_code = 'abc', env_json = '[1, 2]', code_json = '\"x\"', "
            "logs_json = '[1]', notebook_json = '{\"oid\": 5, \"cells_oid\": [1]}', "
            "command = '\"rm -rf /\"' WHERE id = ?",
            (ids["bad"],),
        )
        db.execute(
            "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, NULL, ?)",
            (ids["bad"], "deep", deep_list, "inline"),
        )
        db.execute(
            "INSERT INTO params (run_id, key, value, num, source) VALUES (?, ?, ?, NULL, ?)",
            (ids["bad"], "big", '{"$object": ' + deep_list + "}", "inline"),
        )
        # a diverged loss is a legitimate metric value: kept, shown as Infinity/NaN
        db.execute(
            "UPDATE metrics SET last = 9e999, max = 9e999, value = 9e999, last_time = 9e999, "
            "count = 'many' "
            "WHERE run_id = ?",
            (ids["bad"],),
        )
    db.close()
    # the good run's env is wrong-shaped inside (what diff reads field by field)
    db = sqlite3.connect(root / ".runbase" / "runbase.db")
    with db:
        db.execute(
            "UPDATE runs SET env_json = ? WHERE id = ?",
            (
                json.dumps({"python": "3.11", "packages_count": -1, "gpus": {"a": 1}}).replace(
                    "-1", "Infinity"
                ),
                ids["good"],
            ),
        )
    db.close()
    yield {"root": root, "bad": ids["bad"], "good": ids["good"]}


def test_cli_readers_answer(planted: dict[str, Any]) -> None:
    root, bad, good = planted["root"], planted["bad"], planted["good"]
    listed = _strict(_ok(runbase_cmd("ls", "--json", cwd=root)))
    by_id = {r["id"]: r for r in listed}
    assert by_id[bad]["started_at"] is None and by_id[bad]["duration_s"] is None
    assert by_id[bad]["exit_code"] is None  # text in an integer column reads as null
    assert by_id[bad]["metrics"]["loss"]["value"] == "Infinity"
    assert bad[:10] in _ok(runbase_cmd("ls", cwd=root))

    rec = _strict(_ok(runbase_cmd("show", bad, "--json", cwd=root)))
    assert rec["started_at"] is None and rec["ended_at"] is None
    assert rec["env"] is None and rec["code"] is None and rec["logs"] is None
    assert rec["command"] == []
    assert isinstance(rec["params"]["deep"], str)  # too deep to be a value: its text
    assert rec["metrics"]["loss"]["last"] == "Infinity"
    text = _ok(runbase_cmd("show", bad, cwd=root))
    assert "inf" in text

    good_rec = _strict(_ok(runbase_cmd("show", good, "--json", cwd=root)))
    assert good_rec["env"] is not None and "python" not in good_rec["env"]
    assert "gpus" not in good_rec["env"] and "packages_count" not in good_rec["env"]

    diff = _strict(_ok(runbase_cmd("diff", bad, good, "--json", cwd=root)))
    assert diff["a"]["started_at"] is None
    _ok(runbase_cmd("diff", bad, good, cwd=root))
    _ok(runbase_cmd("logs", bad, cwd=root))
    _ok(runbase_cmd("fsck", cwd=root))
    _strict(_ok(runbase_cmd("trace", "out.txt", "--json", cwd=root)))
    _ok(runbase_cmd("report", bad, good, "-o", str(root.parent / "report.html"), cwd=root))
    _ok(runbase_cmd("metrics", bad, "loss", cwd=root))


def test_web_api_answers(planted: dict[str, Any]) -> None:
    require("fastapi")
    require("httpx")
    from fastapi.testclient import TestClient

    from runbase.web.app import create_app

    bad, good = planted["bad"], planted["good"]
    app = create_app(str(planted["root"] / ".runbase"))
    urls = [
        "/api/runs",
        "/api/runs?sort=started_at",
        "/api/runs?group_by=param:deep",
        "/api/runs?sort=-started_at&where=started_at%20%3E%20%222020-01-01%22",
        f"/api/runs/{bad}",
        f"/api/runs/{good}",
        f"/api/runs/{bad}/series/loss",
        f"/api/runs/{bad}/code/tree",
        f"/api/runs/{bad}/code/diff",
        f"/api/runs/{bad}/notebook",
        f"/api/runs/{bad}/logs",
        f"/api/runs/{bad}/lineage",
        f"/api/compare?runs={bad},{good}",
        f"/api/diff?a={bad}&b={good}",
        "/",
        f"/runs/{bad}",
        f"/compare?runs={bad},{good}",
    ]
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            for url in urls:
                r = c.get(url)
                assert r.status_code < 500, f"{url}: {r.status_code} {r.text[:300]}"
                if r.headers.get("content-type", "").startswith("application/json"):
                    _strict(r.text)
            run = c.get(f"/api/runs/{bad}").json()
            assert run["started_at"] is None and run["env"] is None
    finally:
        app.state.store_pool.close()


@pytest.mark.parametrize(
    "where",
    [
        "(" * 500 + "params.lr > 0" + ")" * 500,
        "not " * 100 + "params.lr > 0",
        " or ".join(["params.lr > 0"] * 3000),
        "params.lr in (" + ",".join(["1"] * 3000) + ")",
    ],
    ids=["parens", "nots", "or-chain", "in-list"],
)
def test_deep_where_is_a_clear_error(planted: dict[str, Any], where: str) -> None:
    proc = runbase_cmd("ls", "--where", where, cwd=planted["root"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "nests" in proc.stderr or "comparisons" in proc.stderr, proc.stderr[-500:]


def test_deep_where_in_the_web_api_is_a_400(planted: dict[str, Any]) -> None:
    require("fastapi")
    from fastapi.testclient import TestClient

    from runbase.web.app import create_app

    app = create_app(str(planted["root"] / ".runbase"))
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.get("/api/runs", params={"where": "not " * 100 + "params.lr > 0"})
            assert r.status_code == 400, r.text[:300]
            assert "nests" in r.json()["detail"]
    finally:
        app.state.store_pool.close()


def test_moderate_where_still_works(planted: dict[str, Any]) -> None:
    where = "(" * 20 + "params.lr > 0" + ")" * 20 + " and not not params.lr > 0"
    out = _strict(_ok(runbase_cmd("ls", "--where", where, "--json", cwd=planted["root"])))
    assert {r["id"] for r in out} == {planted["bad"], planted["good"]}
