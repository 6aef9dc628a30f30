"""The Models pages of the web UI (issue 19): the list of models, a model's versions beside
their runs' metrics, its stages, event history and the compare of two versions, the 404
page of an unknown model, the header's Models link on `runbase ui` and the team server.

Real parts throughout: runs made by real `runbase run` in a git repo, versions registered
and promoted through the library (`runbase.records.registry`) on the store those runs
wrote, a real `runbase ui` (and a real `runbase server` for its links), a real headless
Chromium (Playwright, /usr/bin/chromium).
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import GIT, commit, runbase_cmd, runbase_ui, screenshot, write
from runbase.records import registry
from runbase.store import Store

TRAIN = """\
import sys

import runbase

seed = int(sys.argv[1])
for step in range(5):
    runbase.log(loss=1.0 / (step + seed), step=step)
runbase.log(acc=0.5 + 0.1 * seed, step=5)
with open("model.bin", "wb") as f:
    f.write(bytes([seed]) * 256)
"""

ALICE = registry.Actor("alice")
BOB = registry.Actor("bob")
# a writer on a two-person stage: a promotion waits for an approver
CAROL = registry.Actor("carol", role="writer", protected={"production": 2})

# the history the module's store gets, in order: (action, who, message)
HISTORY = [
    ("register", "alice", "first model"),
    ("register", "alice", "more data"),
    ("promote", "alice", "first deploy"),
    ("promote", "bob", "better accuracy"),
    ("rollback", "bob", "v0.0.2 times out on <big> inputs"),
    ("promote", "alice", "try it on staging"),
    ("register", "bob", "hand-tuned outside runbase"),
    ("request", "carol", "ship the tuned one"),
]


def _run(root: Path, name: str, seed: int) -> str:
    runbase_cmd(
        "run", "--name", name, "--", sys.executable, "train.py", str(seed), cwd=root, check=True
    )  # fmt: skip
    out = runbase_cmd("ls", "--json", "--where", f"name == '{name}'", cwd=root, check=True)
    runs = json.loads(out.stdout)
    runs = runs["runs"] if isinstance(runs, dict) else runs
    assert len(runs) == 1, runs
    return str(runs[0]["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git project with two training runs, each writing model.bin: `churn` has v0.0.1
    and v0.0.2 from them and an external v0.1.0; production was v0.0.1, then v0.0.2,
    then rolled back to v0.0.1; staging holds v0.0.2; carol asks to put v0.1.0 in
    production, which needs a second person."""
    root = tmp_path_factory.mktemp("models") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, ".gitignore", "*.log\nmodel.bin\nexternal.bin\n")
    write(root, "train.py", TRAIN)
    commit(root, "initial")
    run1 = _run(root, "train-1", 1)
    run2 = _run(root, "train-2", 2)
    (root / "external.bin").write_bytes(b"tuned by hand" * 10)
    store = Store.open(root / ".runbase")
    try:
        registry.register(
            store, "churn", registry.source_of_run_path(store, run1, "model.bin"),
            message="first model", actor=ALICE,
        )  # fmt: skip
        registry.register(
            store, "churn", registry.source_of_run_path(store, run2, "model.bin"),
            message="more data", actor=ALICE,
        )  # fmt: skip
        registry.promote(
            store, "churn", "v0.0.1", "production", message="first deploy", actor=ALICE
        )
        registry.promote(
            store, "churn", "v0.0.2", "production", message="better accuracy", actor=BOB
        )
        registry.rollback(
            store, "churn", "production", message="v0.0.2 times out on <big> inputs", actor=BOB
        )
        registry.promote(
            store, "churn", "v0.0.2", "staging", message="try it on staging", actor=ALICE
        )
        external = registry.source_of_file(store, str(root / "external.bin"), external=True)
        registry.register(
            store, "churn", external, bump="minor", message="hand-tuned outside runbase", actor=BOB
        )
        registry.promote(
            store, "churn", "v0.1.0", "production", message="ship the tuned one", actor=CAROL
        )
    finally:
        store.close()
    return {"root": root, "run1": run1, "run2": run2}


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"], "/api/models") as url:
        yield url


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _console_errors(pg: Any) -> list[str]:
    """The console errors ``pg`` logs from now on (a failed request, a script error)."""
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


# -- /models -------------------------------------------------------------------------------


def test_models_page_lists_the_model_its_latest_version_and_stages(server: str, page: Any) -> None:
    errors = _console_errors(page)
    page.goto(server + "/")
    nav = page.locator("#nav-models")
    assert nav.get_attribute("href") == "/models"
    nav.click()  # the header's Models link, from the runs page
    page.wait_for_selector("#models-table tr[data-model=churn]")
    assert page.url == server + "/models"
    row = page.locator("#models-table tr[data-model=churn]")
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "churn"
    assert cells[1] == "v0.1.0"  # the highest version, external or not
    assert cells[2] == "3"
    badges = row.locator(".stage-badge").all_inner_texts()
    assert badges == ["production v0.0.1", "staging v0.0.2"]
    page.wait_for_selector("#chain-state")
    assert page.inner_text("#chain-state") == "chain verified · 8 events"
    screenshot(page, "models.png")
    row.locator("a.model-link").click()
    page.wait_for_selector("#versions-table")
    assert page.url == server + "/models/churn"
    assert not errors


# -- /models/NAME --------------------------------------------------------------------------


def test_model_page_shows_versions_runs_stages_and_history(
    site: dict[str, Any], server: str, page: Any
) -> None:
    errors = _console_errors(page)
    page.goto(server + "/models/churn")
    page.wait_for_selector("#versions-table tbody tr")
    versions = page.locator("#versions-table tbody tr")
    assert [versions.nth(i).get_attribute("data-version") for i in range(3)] == [
        "v0.1.0",
        "v0.0.2",
        "v0.0.1",
    ]
    headers = page.locator("#versions-table thead th").all_inner_texts()
    assert headers[:3] == ["Version", "Stages", "Run"] and "acc" in headers and "loss" in headers
    v1 = page.locator("#versions-table tr[data-version='v0.0.1']")
    assert v1.locator(".stage-badge").all_inner_texts() == ["production"]
    assert v1.locator("a.run-link").inner_text() == "train-1"
    acc = v1.locator("td").nth(headers.index("acc")).inner_text()
    assert acc == "0.6"  # the run's last value of acc, side by side
    assert "first model" in v1.inner_text() and "alice" in v1.inner_text()
    v2 = page.locator("#versions-table tr[data-version='v0.0.2']")
    assert v2.locator(".stage-badge").all_inner_texts() == ["staging"]
    assert v2.locator("td").nth(headers.index("acc")).inner_text() == "0.7"
    external = page.locator("#versions-table tr[data-version='v0.1.0']")
    assert external.locator(".no-provenance").inner_text() == "no provenance"
    assert external.locator("a.run-link").count() == 0

    # the stages: who put each version there, when and why
    stages = page.locator("#stages-table tbody tr")
    assert stages.count() == 2
    prod = page.locator("#stages-table tr[data-stage=production]").locator("td").all_inner_texts()
    assert prod[1] == "v0.0.1" and prod[3] == "bob"
    assert prod[4] == "v0.0.2 times out on <big> inputs"  # markup shown as text
    request = page.locator("#requests-table tbody tr").all_inner_texts()
    assert len(request) == 1 and "carol" in request[0] and "ship the tuned one" in request[0]
    assert page.locator("#requests-table .change").inner_text() == "v0.1.0 → production"

    # the history: every event in order, with who and why, and the chain's hashes
    page.wait_for_selector("#history-table tbody tr")
    rows = page.locator("#history-table tbody tr")
    assert rows.count() == len(HISTORY)
    for i, (action, who, message) in enumerate(HISTORY):
        row = rows.nth(i)
        assert row.get_attribute("data-action") == action
        assert row.get_attribute("data-seq") == str(i + 1)
        assert row.locator("td.who").inner_text() == who
        assert row.locator("td.message").inner_text() == message
    assert rows.nth(0).locator("td.change").inner_text() == "v0.0.1 from train-1"
    rollback = rows.nth(4).locator("td.change").inner_text()
    assert rollback.split() == ["production", "v0.0.2", "→", "v0.0.1"]
    first = rows.nth(0).locator("td.chain").inner_text()
    assert first.startswith("000000000000 → ")  # the genesis before the first event
    page.wait_for_selector("#chain-state")
    assert page.inner_text("#chain-state") == "chain verified · 8 events"
    screenshot(page, "model.png")

    # the run link leads to the run's page
    v1.locator("a.run-link").click()
    page.wait_for_url(f"{server}/runs/{site['run1']}")
    page.wait_for_selector("#run-title .mono")
    assert page.inner_text("#run-title").startswith("train-1")
    assert not errors


def test_model_page_in_dark_mode(server: str, new_page: Any) -> None:
    dark = new_page(color_scheme="dark")
    errors = _console_errors(dark)
    dark.goto(server + "/models/churn")
    dark.wait_for_selector("#history-table tbody tr")
    bg = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(13, 17, 23)"
    badge = dark.evaluate(
        "getComputedStyle(document.querySelector('.stage-badge[data-stage=production]')).color"
    )
    assert badge == "rgb(63, 185, 80)"  # --ok of the dark palette
    screenshot(dark, "model-dark.png")
    assert not errors


def test_compare_two_versions_opens_the_compare_page_of_their_runs(
    site: dict[str, Any], server: str, page: Any
) -> None:
    errors = _console_errors(page)
    page.goto(server + "/models/churn")
    page.wait_for_selector("#deltas-table")
    # by default the newest against the one before it, of those with a run (v0.1.0 is
    # external): their runs' metrics side by side, and a link to the runs' compare page
    assert page.input_value("#compare-b") == "v0.0.2"
    assert page.input_value("#compare-a") == "v0.0.1"
    link = page.locator("#compare-link")
    assert link.is_visible()
    assert link.get_attribute("href") == f"/compare?runs={site['run1']},{site['run2']}"
    deltas = page.locator("#deltas-table tr[data-metric=acc] td").all_inner_texts()
    assert deltas == ["0.6", "0.7", "+0.1", "+16.7%"]
    screenshot(page, "model-compare.png")
    # an external version has no run to compare
    page.select_option("#compare-b", "v0.1.0")
    assert page.is_hidden("#compare-link")
    assert page.inner_text("#compare-note") == "v0.1.0: no provenance, no run to compare"
    page.select_option("#compare-b", "v0.0.1")
    assert page.inner_text("#compare-note") == "pick two different versions"
    # the keyboard alone: pick B with the arrow keys, then follow the link with Enter
    page.focus("#compare-b")
    page.keyboard.press("ArrowUp")  # v0.0.1 -> v0.0.2 (the options are newest first)
    assert page.input_value("#compare-b") == "v0.0.2"
    assert link.is_visible()
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/compare?runs={site['run1']},{site['run2']}")
    page.wait_for_selector("#run-list .run-chip")
    chips = page.locator("#run-list .run-chip").all_inner_texts()
    assert len(chips) == 2 and "train-1" in chips[0] and "train-2" in chips[1]
    assert not errors


def test_unknown_model_is_the_404_page(server: str, page: Any) -> None:
    for name in ("nosuch", "Bad%20Name", "%3Cb%3Ex%3C%2Fb%3E"):
        status, html = _get(f"{server}/models/{name}")
        assert status == 404, (name, html)
        assert "<b>x</b>" not in html  # the name is escaped in the message
        assert "Traceback" not in html
    status, html = _get(f"{server}/models/{'a' * 5000}")
    assert status == 404 and "a" * 121 not in html  # a long path is not echoed back whole
    assert "lower-case letters" in html
    resp = page.goto(server + "/models/nosuch")
    assert resp is not None and resp.status == 404
    assert page.inner_text("#not-found") == "no model 'nosuch' (see `runbase model ls`)"
    page.click("#not-found-back")
    page.wait_for_selector("#models-table")
    screenshot(page, "model-404.png")


def test_a_broken_chain_is_shown(tmp_path: Path, new_page: Any) -> None:
    """An event row edited in SQLite: both pages say the chain is broken, with why."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / "weights.bin").write_bytes(b"w" * 100)
    store = Store.open(root / ".runbase", create=True)
    try:
        source = registry.source_of_file(store, str(root / "weights.bin"), external=True)
        registry.register(store, "tiny", source, message="original", actor=ALICE)
    finally:
        store.close()
    with sqlite3.connect(root / ".runbase" / "runbase.db") as db:
        db.execute("UPDATE model_events SET message = 'rewritten' WHERE seq = 1")
    with runbase_ui(root, "/api/models") as url:
        page = new_page()
        page.goto(url + "/models/tiny")
        page.wait_for_selector("#chain-state")
        assert page.inner_text("#chain-state").startswith("chain broken: ")
        assert page.locator("#verify-problems li").count() >= 1
        assert page.inner_text("#history-table td.message") == "rewritten"
        screenshot(page, "model-broken-chain.png")


def test_the_team_servers_pages_link_to_their_projects_models(tmp_path: Path) -> None:
    """On the team server the pages live under /p/PROJECT: the Models link, the model
    page's links and its 404 stay there."""
    conftest.require("uvicorn")
    base = tmp_path / "srv"
    base.mkdir()
    db, objects = str(base / "server.db"), str(base / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, check=True)
    token = runbase_cmd(
        "server", "users", "add", "alice", "--role", "admin", "--db", db, check=True
    ).stdout.strip()
    server = conftest.start_server(db, objects, log_dir=base)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        status, runs = _get(server.url + "/p/default/", auth)
        status_models, models = _get(server.url + "/p/default/models", auth)
        status_api, api = _get(server.url + "/p/default/api/models", auth)
        status_404, missing = _get(server.url + "/p/default/models/nosuch", auth)
        # without a session, to the login page: whether a model exists is not said
        anonymous = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        anonymous.request("GET", "/p/default/models/nosuch")
        login = anonymous.getresponse()
        anonymous.close()
    finally:
        server.kill()
    assert status == 200 and 'id="nav-models" href="/p/default/models"' in runs
    assert status_models == 200 and 'href="/p/default/models"' in models
    assert '"base": "/p/default"' in models  # models.js asks /p/default/api/models
    assert status_api == 200 and json.loads(api) == {"models": []}
    assert status_404 == 404 and "no model &#39;nosuch&#39;" in missing
    assert 'href="/p/default/models"' in missing  # the way back stays in the project
    assert login.status == 303 and login.getheader("location", "").startswith("/login")
