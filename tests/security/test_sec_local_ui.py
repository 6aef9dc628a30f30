"""Review 2 of issue 19: `runbase ui` has no login, so a page of another site must not be
able to change the store through the visitor's browser (a "simple" request: a no-cors
``fetch`` of a Blob, a form post; no CORS preflight). A real `runbase ui` subprocess over
a store made by a real run and a real `runbase model register`: a write from another
origin (``Origin``, ``Sec-Fetch-Site``) is 403 and changes nothing, a body that is not
declared JSON is 415, the UI's own request works, and a real Chromium page served from
another port cannot promote (docs/security.md, "The local web UI")."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import GIT, _free_port, commit, require, runbase_cmd, runbase_ui, write

httpx = require("httpx")
require("fastapi")
require("uvicorn")

TRAIN = """
import os
import runbase
os.makedirs("out", exist_ok=True)
with open("out/model.bin", "wb") as f:
    f.write(b"weights " * 100)
runbase.log(acc=0.9)
"""

PROMOTE = "/api/models/churn/promote"
BODY = {"version": "v0.0.1", "stage": "production", "message": "from elsewhere"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("local-ui") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("out/\n")
    write(root, "train.py", TRAIN)
    commit(root, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, check=True)
    runbase_cmd("model", "register", "churn", "latest:out/model.bin", cwd=root, check=True)
    with runbase_ui(root) as url:
        yield url


def _stages(url: str) -> dict[str, str]:
    r = httpx.get(url + "/api/models/churn", timeout=30)
    assert r.status_code == 200, r.text[:300]
    stages: dict[str, str] = r.json()["stages"]
    return stages


def _events(url: str) -> int:
    return len(httpx.get(url + "/api/models/churn/log", timeout=30).json()["events"])


def _post(url: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Any:
    content = json.dumps(BODY).encode() if body is None else body
    return httpx.post(url + path, content=content, headers=headers, timeout=30)


JSON = {"Content-Type": "application/json"}
REFUSED_403 = [
    {**JSON, "Origin": "https://evil.example"},
    {**JSON, "Origin": "http://evil.example"},
    {**JSON, "Origin": "null"},
    {**JSON, "Origin": "http://127.0.0.1:1"},  # another port of this machine: same site
    {**JSON, "Sec-Fetch-Site": "cross-site"},
    {**JSON, "Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", REFUSED_403, ids=lambda h: "/".join(h.values()))
def test_a_write_from_another_origin_is_403_and_changes_nothing(
    ui: str, headers: dict[str, str]
) -> None:
    before = _events(ui)
    r = _post(ui, PROMOTE, headers)
    assert r.status_code == 403, r.text[:300]
    assert "another site" in r.json()["detail"]
    assert _stages(ui) == {} and _events(ui) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
    ids=["no-type", "text-plain", "form"],
)
def test_a_body_not_declared_json_is_415(ui: str, headers: dict[str, str]) -> None:
    before = _events(ui)
    # httpx adds no Content-Type for raw content: the body goes as a no-cors Blob would
    r = _post(ui, PROMOTE, headers)
    assert r.status_code == 415, r.text[:300]
    assert "application/json" in r.json()["detail"]
    assert _stages(ui) == {} and _events(ui) == before


def test_every_write_route_is_covered(ui: str) -> None:
    evil = {**JSON, "Origin": "https://evil.example"}
    for method, path in [
        ("POST", "/api/models/churn/versions"),
        ("POST", "/api/models/churn/demote"),
        ("POST", "/api/models/churn/rollback"),
        ("POST", "/api/models/requests/0000000000000000/approve"),
        ("POST", "/api/models/events"),
        ("PUT", "/api/views/mine"),
        ("DELETE", "/api/views/mine"),
        ("PATCH", "/api/views/mine"),
    ]:
        r = httpx.request(method, ui + path, content=b"{}", headers=evil, timeout=30)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
        r = httpx.request(method, ui + path, content=b"{}", timeout=30)
        assert r.status_code == 415, (method, path, r.status_code, r.text[:200])
    # a read from anywhere is answered (a browser keeps another site from reading it)
    r = httpx.get(ui + "/api/models", headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 200


def test_the_uis_own_requests_work(ui: str) -> None:
    # as RB.apiSend sends them: its own Origin, JSON, Sec-Fetch-Site same-origin
    own = {**JSON, "Origin": ui, "Sec-Fetch-Site": "same-origin"}
    r = _post(ui, PROMOTE, own)
    assert r.status_code == 200, r.text[:300]
    assert _stages(ui) == {"production": "v0.0.1"}
    # the Origin compared as an origin: case and the default port do not matter
    r = _post(ui, "/api/models/churn/demote", {**JSON, "Origin": ui.upper()},
              json.dumps({"stage": "production"}).encode())  # fmt: skip
    assert r.status_code == 200, r.text[:300]
    # curl and scripts: no Origin, a JSON body
    r = _post(ui, PROMOTE, {"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text[:300]
    r = _post(ui, "/api/models/churn/demote", JSON, json.dumps({"stage": "production"}).encode())
    assert r.status_code == 200 and _stages(ui) == {}
    # a body-less DELETE is no body to check (the UI's own delete of a saved view)
    r = httpx.delete(ui + "/api/views/nothing", headers={"Origin": ui}, timeout=30)
    assert r.status_code == 404, r.text[:300]


EVIL_PAGE = """<!doctype html><html><body><script>
(async () => {
  const body = JSON.stringify(%s);
  const tries = [
    fetch("%s", {method: "POST", mode: "no-cors", body: new Blob([body])}),
    fetch("%s", {method: "POST", mode: "no-cors", body: body}),
    fetch("%s", {method: "POST", mode: "no-cors", credentials: "include",
                 headers: {"Content-Type": "text/plain"}, body: body}),
  ];
  for (const t of tries) { try { await t; } catch (e) {} }
  document.title = "sent";
})();
</script>
<form id="f" method="POST" action="%s" enctype="text/plain">
<input name='{"version": "v0.0.1", "stage": "production", "x": "' value='"}'>
</form></body></html>"""


@pytest.fixture
def evil_site(ui: str) -> Iterator[str]:
    """A page on another origin (another port of 127.0.0.1) that sends the promotion as
    a no-cors fetch, three ways, and holds a text/plain form aimed at it."""
    target = ui + PROMOTE
    page = (EVIL_PAGE % (json.dumps(BODY), target, target, target, target)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_origin_cannot_promote_in_chromium(
    ui: str, evil_site: str, page: Any
) -> None:
    before = _events(ui)
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if PROMOTE in r.url else None)
    page.goto(evil_site)
    page.wait_for_function("document.title === 'sent'")
    with page.expect_navigation():
        page.evaluate("document.getElementById('f').submit()")
    assert _stages(ui) == {} and _events(ui) == before
    # the browser did send them (so the refusal is the UI's, not the browser's)
    assert answers and all(status in (403, 415) for status in answers), answers
    assert 403 in answers


def test_the_ui_page_itself_can_still_write(ui: str, page: Any) -> None:
    """The UI's own script (RB.apiSend) passes the check: a saved view made from a page
    of the UI, then a promotion, in the real browser."""
    page.goto(ui + "/")
    page.wait_for_function("typeof RB !== 'undefined'")
    done = page.evaluate(
        """async () => {
            const v = await RB.apiSend("PUT", "/api/views/from-page", {spec: {version: 1}});
            await RB.apiSend("POST", "/api/models/churn/promote",
                             {version: "v0.0.1", stage: "staging"});
            await RB.apiSend("DELETE", "/api/views/from-page");
            return v.name;
        }"""
    )
    assert done == "from-page"
    assert _stages(ui).get("staging") == "v0.0.1"
    r = httpx.post(ui + "/api/models/churn/demote", json={"stage": "staging"}, timeout=30)
    assert r.status_code == 200
