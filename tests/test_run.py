"""`runbase run`: zero-code capture of Python and non-Python commands."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from conftest import runbase_cmd, write

PY = sys.executable


def record(project: Path, ref: str = "latest") -> dict:
    return json.loads(runbase_cmd("show", ref, "--json", cwd=project, check=True).stdout)


def test_argparse_params_metrics_logs_and_code(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import argparse, sys
        import runbase
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.01)
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--model", default="resnet")
        p.add_argument("--augment", action="store_true")
        sub = p.add_subparsers(dest="cmd")
        fit = sub.add_parser("fit")
        fit.add_argument("--folds", type=int, default=5)
        args = p.parse_args()
        for i in range(args.epochs):
            runbase.log(loss=1.0 / (i + 1), step=i)
        print("to stdout")
        print("to stderr", file=sys.stderr)
    """,
    )
    proc = runbase_cmd(
        "run",
        "--name",
        "first",
        "--tag",
        "team=vision",
        "--",
        PY,
        "train.py",
        "--lr",
        "0.1",
        "fit",
        "--folds",
        "3",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    assert "to stdout" in proc.stdout and "to stderr" in proc.stderr  # tee'd through
    rec = record(project)
    assert rec["status"] == "finished" and rec["exit_code"] == 0 and rec["name"] == "first"
    assert rec["params"] == {
        "lr": 0.1,
        "epochs": 3,
        "model": "resnet",
        "augment": False,
        "cmd": "fit",
        "folds": 3,
    }
    assert set(rec["param_sources"].values()) == {"argparse"}
    assert rec["metrics"]["loss"]["count"] == 3 and rec["metrics"]["loss"]["last"] == 1 / 3
    assert rec["tags"] == {"team": "vision"}
    assert (
        rec["code"]["kind"] == "git" and rec["code"]["dirty"] and "train.py" in rec["code"]["patch"]
    )
    assert rec["env"]["python"]["executable"] == sys.executable
    names = {p["name"].lower() for p in rec["env"]["packages"]}
    assert {"runbase", "click", "blake3", "pytest"} <= names
    assert rec["env"]["cpu"]["cores_logical"] >= 1 and rec["env"]["memory_bytes"] > 0
    assert isinstance(rec["env"]["gpus"], list)
    assert rec["command"] == [PY, "train.py", "--lr", "0.1", "fit", "--folds", "3"]
    out = runbase_cmd("logs", cwd=project, check=True).stdout
    assert "to stdout" in out and "to stderr" in out
    err = runbase_cmd("logs", "--stderr", cwd=project, check=True).stdout
    assert "to stderr" in err and "to stdout" not in err


def test_python_m_and_nested_scripts_attach(project: Path) -> None:
    write(project, "pkg/__init__.py", "")
    write(
        project,
        "pkg/__main__.py",
        """
        import subprocess, sys
        import runbase
        runbase.log(outer=1.0)
        subprocess.run([sys.executable, "child.py"], check=True)
    """,
    )
    write(
        project,
        "child.py",
        "import runbase\nrunbase.log(inner=2.0)\nrunbase.param('from_child', 'yes')\n",
    )
    proc = runbase_cmd("run", "--", PY, "-m", "pkg", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["metrics"]["outer"]["last"] == 1.0 and rec["metrics"]["inner"]["last"] == 2.0
    assert rec["params"]["from_child"] == "yes"


def test_multiprocessing_workers_attach(project: Path) -> None:
    write(
        project,
        "mp.py",
        """
        import multiprocessing as mp, sys
        import runbase

        def work(i):
            for s in range(100):
                runbase.log(**{f"w{i}": float(s)}, step=s)
            return i

        if __name__ == "__main__":
            runbase.log(main=1.0)
            for method in ("fork", "spawn"):
                with mp.get_context(method).Pool(2) as pool:
                    assert sorted(pool.map(work, [0, 1] if method == "fork" else [2, 3])) is not None
    """,
    )
    proc = runbase_cmd("run", "--", PY, "mp.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    m = record(project)["metrics"]
    for k in ("w0", "w1", "w2", "w3"):
        assert m[k]["count"] == 100, (k, m.get(k))
    assert m["main"]["count"] == 1


def test_non_python_command(project: Path) -> None:
    proc = runbase_cmd(
        "run",
        "--",
        "bash",
        "-c",
        "echo from bash; exit 0",
        "--lr",
        "0.5",
        "epochs=3",
        "--fast",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["status"] == "finished"
    assert rec["params"] == {"lr": 0.5, "epochs": 3, "fast": True}
    assert set(rec["param_sources"].values()) == {"argv"}
    assert rec["env"]["python"] is None and rec["env"]["os"]["system"] == "Linux"
    assert "from bash" in runbase_cmd("logs", cwd=project, check=True).stdout


def test_exit_codes_and_signals(project: Path) -> None:
    assert (
        runbase_cmd("run", "--", PY, "-c", "import sys; sys.exit(3)", cwd=project).returncode == 3
    )
    rec = record(project)
    assert rec["status"] == "failed" and rec["exit_code"] == 3
    proc = runbase_cmd(
        "run",
        "--",
        PY,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
        cwd=project,
    )
    assert proc.returncode == 128 + 15
    rec = record(project)
    assert rec["status"] == "killed" and rec["exit_signal"] == 15 and rec["exit_code"] is None
    proc = runbase_cmd("run", "--", PY, "-c", "raise ValueError('boom')", cwd=project)
    assert proc.returncode == 1 and "boom" in proc.stderr
    assert record(project)["status"] == "failed"


def test_command_not_found_fails_before_start(project: Path) -> None:
    proc = runbase_cmd("run", "--", "definitely-not-a-command-xyz", cwd=project)
    assert proc.returncode != 0 and "command not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_child_sees_a_terminal_when_we_have_one(project: Path) -> None:
    """Colours survive: under a terminal the command's stdout is a terminal too."""
    write(
        project,
        "tty.py",
        "import sys\nprint('TTY' if sys.stdout.isatty() else 'PIPE', '\\x1b[31mred\\x1b[0m')\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.chdir(project)
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "runbase", "run", "--", sys.executable, "tty.py"],
            env,
        )
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"TTY" in out and b"\x1b[31mred" in out
    logs = runbase_cmd("logs", cwd=project, check=True).stdout
    assert "TTY" in logs and "\x1b[31mred" in logs and "\r\n" not in logs


def test_existing_sitecustomize_still_runs(project: Path, tmp_path: Path) -> None:
    own = tmp_path / "own_site"
    write(own, "sitecustomize.py", "import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = '1'\n")
    write(
        project,
        "check.py",
        "import os, runbase\nrunbase.param('ran', os.environ.get('USER_SITECUSTOMIZE_RAN', '0'))\n",
    )
    proc = runbase_cmd("run", "--", PY, "check.py", cwd=project, env={"PYTHONPATH": str(own)})
    assert proc.returncode == 0, proc.stderr
    assert record(project)["params"]["ran"] == "1"


def test_python_without_runbase_installed_attaches(project: Path, tmp_path: Path) -> None:
    """A Python from another venv (no runbase there) still reports to the run."""
    venv = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    write(
        project,
        "t.py",
        "import argparse, runbase\np = argparse.ArgumentParser(); p.add_argument('--k', default=7); p.parse_args()\nrunbase.log(x=1.0)\n",
    )
    proc = runbase_cmd("run", "--", str(py), "t.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["params"] == {"k": 7} and rec["metrics"]["x"]["count"] == 1
    assert rec["env"]["python"]["executable"] == str(py)
    assert not any(p["name"] == "click" for p in rec["env"]["packages"])  # that venv's packages


def test_nested_script_params_do_not_override_the_commands_own(project: Path) -> None:
    write(
        project,
        "main.py",
        """
        import argparse, subprocess, sys
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float, default=0.1); p.parse_args()
        subprocess.run([sys.executable, "evaluate.py", "--lr", "9.0", "--split", "test"], check=True)
    """,
    )
    write(
        project,
        "evaluate.py",
        """
        import argparse
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float); p.add_argument("--split"); p.parse_args()
    """,
    )
    proc = runbase_cmd("run", "--", PY, "main.py", "--lr", "0.5", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert record(project)["params"] == {"lr": 0.5, "split": "test"}


def test_launchers_and_workers_of_libraries_record_no_params(project: Path) -> None:
    """joblib's loky workers (``python -m joblib...popen_loky_posix --pipe N``) and
    launchers such as ``python -m torch.distributed.run`` parse their own options with
    argparse: those are not the run's params. (json.tool stands in: stdlib, argparse.)"""
    write(project, "in.json", '{"b": 1, "a": 2}')
    write(
        project,
        "main.py",
        """
        import argparse, subprocess, sys
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float, default=0.1); p.parse_args()
        subprocess.run([sys.executable, "-m", "json.tool", "--sort-keys", "in.json", "out.json"], check=True)
    """,
    )
    proc = runbase_cmd("run", "--", PY, "main.py", "--lr", "0.5", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "out.json").read_text().index('"a"') < (
        project / "out.json"
    ).read_text().index('"b"')
    assert record(project)["params"] == {"lr": 0.5}


QUIET = """
import pathlib, time
import runbase

runbase.log(loss=1.0)
while not pathlib.Path("done").exists():  # logs nothing more until the test is done
    time.sleep(0.1)
"""


def test_a_run_that_logs_nothing_for_a_while_is_not_stalled(project: Path) -> None:
    """Without system metrics (RUNBASE_SYSTEM_INTERVAL=0) nothing reaches the spool of a
    run that logs once a minute; its supervisor keeps its heartbeat all the same (every
    HEARTBEAT_EVERY_S), so the run page says live, not stalled, while it runs."""
    import time

    from runbase.records.lifecycle import HEARTBEAT_EVERY_S
    from runbase.render import views
    from runbase.render.views.run import STALL_AFTER_S
    from runbase.store import Store

    assert STALL_AFTER_S >= 3 * HEARTBEAT_EVERY_S  # three missed beats before "stalled"
    write(project, "quiet.py", QUIET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env["RUNBASE_SYSTEM_INTERVAL"] = "0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--", sys.executable, "quiet.py"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = None
    try:
        deadline = time.monotonic() + 120  # a bound on a hung test, not a timing
        while store is None or not store.db.query("SELECT 1 FROM metrics WHERE key = 'loss'"):
            assert proc.poll() is None and time.monotonic() < deadline, "no metric ingested"
            time.sleep(0.2)
            if store is None and (project / ".runbase" / "runbase.db").exists():
                store = Store.open(project / ".runbase")
        run_id, data_beat = store.db.query("SELECT id, heartbeat_at FROM runs")[0]
        # no data comes any more: the heartbeat moves on all the same
        while store.db.query("SELECT heartbeat_at FROM runs")[0][0] < data_beat + 5:
            assert proc.poll() is None and time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.2)
        assert store.db.query("SELECT count(*) FROM metrics")[0][0] == 1
        detail = views.run_detail(store, run_id)
        assert detail["status"] == "running" and detail["stalled"] is False
        assert detail["heartbeat_age_s"] < STALL_AFTER_S
    finally:
        (project / "done").touch()
        out, err = proc.communicate(timeout=120)
        if store is not None:
            store.close()
    assert proc.returncode == 0, err
