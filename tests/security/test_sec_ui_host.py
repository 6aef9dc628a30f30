"""Issue 14.9: `runbase ui` has no login, so it must not be reachable by DNS rebinding
(a web page whose own name is made to resolve to 127.0.0.1). A real `runbase ui`
subprocess is asked with forged ``Host`` headers: IP addresses, ``localhost`` and the
``--allowed-host`` names are served, any other name gets 403 with a clear message, on
the API, the pages and the static files alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GIT, _free_port, commit, require, runbase_cmd, stop_process, wait_http, write


def _start_ui(root: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "ui", "--no-browser", "--port", str(port), *args],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    failed = wait_http(url + "/api/health", proc)
    if failed:
        stop_process(proc)
        pytest.fail(f"runbase ui {failed}")
    return proc, url


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    require("fastapi")
    require("uvicorn")
    require("httpx")
    root = tmp_path_factory.mktemp("ui") / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    write(root, "train.py", "import runbase\nrunbase.log(loss=0.5)\n")
    commit(root, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=root, check=True)
    proc, url = _start_ui(root, "--allowed-host", "box.lan", "--allowed-host", "Runs.Example.")
    try:
        yield url, str(root)
    finally:
        stop_process(proc)


def _get(url: str, path: str, host: str) -> tuple[int, str]:
    import httpx

    r = httpx.get(url + path, headers={"Host": host}, timeout=30)
    return r.status_code, r.text


SERVED = [
    "127.0.0.1",
    "127.0.0.1:8765",
    "localhost:8765",
    "LOCALHOST.",
    "[::1]:8765",
    "192.168.1.20:8765",  # an IP address: no DNS name that could be rebound
    "box.lan:8765",  # --allowed-host
    "runs.example",  # --allowed-host, compared without case or trailing dot
]
REFUSED = [
    "evil.example",
    "evil.example:8765",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "box.lan.evil.example",
]


@pytest.mark.parametrize("path", ["/api/runs", "/", "/api/health", "/static/app.css"])
def test_only_this_machine_is_served(ui: tuple[str, str], path: str) -> None:
    url, _ = ui
    for host in SERVED:
        status, text = _get(url, path, host)
        assert status != 403, f"{host} {path}: {status} {text[:200]}"
    for host in REFUSED:
        status, text = _get(url, path, host)
        assert status == 403, f"{host} {path}: {status} {text[:200]}"
        assert "DNS rebinding" in text and "--allowed-host" in text


def test_runs_are_readable_from_localhost(ui: tuple[str, str]) -> None:
    import httpx

    url, _ = ui
    r = httpx.get(url + "/api/runs", headers={"Host": "localhost:1"}, timeout=30)
    assert r.status_code == 200 and len(r.json()["runs"]) == 1


def test_allowed_host_star_turns_the_check_off(ui: tuple[str, str]) -> None:
    _, root = ui
    proc, url = _start_ui(Path(root), "--allowed-host", "*")
    try:
        status, _ = _get(url, "/api/runs", "anything.example")
        assert status == 200
    finally:
        stop_process(proc)
