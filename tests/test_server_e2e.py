"""The team server's UI end to end: a real `runbase server` (SQLite + a local object
directory) holding a run pushed with the real CLI, driven by a real headless Chromium:
login and logout, the author of a run, notes on runs, roles and CSRF.

Chromium and Playwright are required (see test_web_e2e.py): without them these tests
fail, they do not skip.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import GIT, commit, runbase_cmd, start_server, write

# the browser fixtures of the `runbase ui` tests: Chromium (failing, never skipping, when
# it or playwright is missing), and a page that fails the test on a script error

TRAIN = """\
import argparse

import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
a = p.parse_args()
for step in range(5):
    runbase.log(loss=1.0 / (step + 1 + a.lr), step=step)
runbase.summary(acc=0.9)
"""


def _token(proc: subprocess.CompletedProcess[str]) -> str:
    """The API token `runbase server users add` prints (its last stdout line)."""
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A migrated server with alice (server admin, writer in `default`) and bob (reader),
    running on a free port, and one run pushed by alice from a git project."""
    tmp = tmp_path_factory.mktemp("team")
    db, objects = str(tmp / "server.db"), str(tmp / "objects")
    store = ["--db", db]
    runbase_cmd("server", "migrate", *store, "--objects", objects, check=True)
    alice = _token(runbase_cmd("server", "users", "add", "alice", "--role", "admin", *store,
                               check=True))  # fmt: skip
    bob = _token(runbase_cmd("server", "users", "add", "bob", "--project-role", "reader", *store,
                             check=True))  # fmt: skip

    server = start_server(db, objects, log_dir=tmp)
    url = server.url
    try:
        root = tmp / "proj"
        root.mkdir()
        subprocess.run([*GIT, "init", "-q", str(root)], check=True)
        write(root, "train.py", TRAIN)
        commit(root, "initial")
        env = {"RUNBASE_CONFIG": str(tmp / "client-config.json")}
        runbase_cmd("run", "--", sys.executable, "train.py", "--lr", "0.1", cwd=root, env=env,
                    check=True)  # fmt: skip
        runbase_cmd("login", url, "--token", alice, cwd=root, env=env, check=True)
        runbase_cmd("remote", "add", "team", url, cwd=root, env=env, check=True)
        pushed = runbase_cmd("push", cwd=root, env=env, check=True)
        assert "1 run(s) pushed" in pushed.stdout, pushed.stdout + pushed.stderr
        run_id = re.search(r"/p/default/runs/(\w+)", pushed.stderr).group(1)  # type: ignore[union-attr]
        yield {"url": url, "alice": alice, "bob": bob, "run_id": run_id}
    finally:
        server.stop()


def _login(pg: Any, url: str, token: str) -> None:
    """Log in through the form, as a person does: /p/default/ sends one to /login first."""
    pg.goto(url + "/p/default/")
    pg.wait_for_url(re.compile(r"/login\?next="))
    pg.fill("#token", token)
    pg.click("#login")
    pg.wait_for_url(url + "/p/default/")


def _post_note(pg: Any, run_id: str, headers: dict[str, str]) -> int:
    """POST a note from the page's own origin and cookies; the HTTP status."""
    status: int = pg.evaluate(
        """async ([path, headers]) => (await fetch(path, {
            method: "POST", credentials: "same-origin",
            headers: Object.assign({"Content-Type": "application/json"}, headers),
            body: JSON.stringify({text: "sneaky"})})).status""",
        [f"/p/default/api/runs/{run_id}/notes", headers],
    )
    return status


def _notes(url: str, run_id: str, token: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(
        f"{url}/p/default/api/runs/{run_id}/notes", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        notes: list[dict[str, Any]] = json.load(r)["notes"]
    return notes


def test_pages_need_a_login_and_a_valid_token(team: dict[str, Any], page: Any) -> None:
    url = team["url"]
    page.goto(url + "/p/default/")
    page.wait_for_url(re.compile(r"/login\?next=%2Fp%2Fdefault%2F$"))
    assert page.locator("#runs").count() == 0
    page.fill("#token", "rbt_000000000000_not-a-real-token")
    page.click("#login")
    page.wait_for_selector(".error")
    assert "not valid" in page.inner_text(".error")
    assert page.locator("form.login #token").count() == 1  # still the login form
    page.goto(url + "/p/default/")  # and still no session
    page.wait_for_url(re.compile(r"/login\?next="))


def test_writer_sees_the_author_adds_a_note_and_logs_out(team: dict[str, Any], page: Any) -> None:
    url, run_id = team["url"], team["run_id"]
    _login(page, url, team["alice"])
    assert page.inner_text("#account-user") == "alice"
    row = f"#runs tr.run-row[data-id='{run_id}']"
    page.wait_for_selector(row)
    assert page.inner_text(f"{row} td.run-user") == "alice"  # the pushing account
    assert page.locator("#runs thead th", has_text="author").count() == 1

    page.click(f"{row} a >> nth=0")
    page.wait_for_url(re.compile(rf"/p/default/runs/{run_id}"))
    page.wait_for_selector("#run-author")
    assert page.inner_text("#run-author") == "alice"
    host_user = page.evaluate(  # the login name on the pushing machine, kept as a tag
        f"fetch('/p/default/api/runs/{run_id}').then(r => r.json()).then(r => r.tags.host_user)"
    )
    if getpass.getuser() != "alice":
        assert host_user and page.inner_text("#run-host-user").startswith(host_user + "@")
    page.wait_for_selector("#no-notes, #notes-list .note")  # notes loaded (another test may add)
    before = len(_notes(url, run_id, team["alice"]))

    text = "lr 0.1 <b>diverged</b> & <img src=x onerror=alert(1)>\nsecond line"
    page.fill("#note-text", text)
    page.click("#add-note")
    page.wait_for_function(
        f"document.querySelectorAll('#notes-list .note').length === {before + 1}"
    )
    assert page.input_value("#note-text") == ""
    page.reload()
    page.wait_for_selector("#notes-list .note")
    notes = page.locator("#notes-list .note")
    assert notes.count() == before + 1
    note = notes.last  # oldest first: the new one is the last
    assert note.locator(".note-author").inner_text() == "alice"
    assert note.locator(".note-text").inner_text() == text  # as text, never as HTML
    assert note.locator(".note-text *").count() == 0

    # a cookie session's unsafe request without (or with a wrong) CSRF token is refused
    assert _post_note(page, run_id, {}) == 403
    assert _post_note(page, run_id, {"X-CSRF-Token": "forged"}) == 403
    assert [n["text"] for n in _notes(url, run_id, team["alice"])][before:] == [text]

    page.click("#projects-link")
    page.wait_for_url(url + "/")
    assert page.inner_text("#user") == "alice"
    assert page.locator("#projects a", has_text="default").count() == 1

    page.goto(f"{url}/p/default/runs/{run_id}")
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(url + "/p/default/")
    page.wait_for_url(re.compile(r"/login\?next="))


def test_a_reader_sees_runs_and_notes_but_cannot_add_one(team: dict[str, Any], page: Any) -> None:
    url, run_id = team["url"], team["run_id"]
    req = urllib.request.Request(  # a note by alice, through the API with her token
        f"{url}/p/default/api/runs/{run_id}/notes",
        data=json.dumps({"text": "note for bob"}).encode(),
        headers={"Authorization": f"Bearer {team['alice']}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201

    _login(page, url, team["bob"])
    assert page.inner_text("#account-user") == "bob"
    page.wait_for_selector(f"#runs tr.run-row[data-id='{run_id}']")
    page.goto(f"{url}/p/default/runs/{run_id}")
    page.wait_for_selector("#notes-list .note")
    assert page.inner_text("#run-author") == "alice"
    assert "note for bob" in page.inner_text("#notes-list")
    assert page.is_visible("#notes-readonly")
    assert page.locator("#note-form, #note-text, #add-note").count() == 0

    # the server refuses it too, even with the right CSRF token: readers cannot write
    csrf = page.evaluate("RB.config.csrf")
    assert csrf
    assert _post_note(page, run_id, {"X-CSRF-Token": csrf}) == 403
    assert all(n["author"] == "alice" for n in _notes(url, run_id, team["bob"]))
