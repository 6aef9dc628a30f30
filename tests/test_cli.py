"""The CLI: thin commands over the library, clear errors, documented help."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import runbase_cmd, wait_until, write
from runbase.cli import COMMANDS, main


@pytest.fixture
def three_runs(project: Path) -> Path:
    write(
        project,
        "t.py",
        """
        import argparse, runbase
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float); a = p.parse_args()
        for i in range(5):
            runbase.log(loss=a.lr * (5 - i), step=i)
        runbase.summary(acc=1 - a.lr)
    """,
    )
    for lr in ("0.1", "0.01", "0.5"):
        runbase_cmd("run", "--", sys.executable, "t.py", "--lr", lr, cwd=project, check=True)
    return project


def test_ls_table_where_sort_json(three_runs: Path) -> None:
    out = runbase_cmd("ls", cwd=three_runs, check=True).stdout
    header = out.splitlines()[0].split()
    assert (
        header[:5] == ["id", "name", "status", "started", "duration"]
        and "lr" in header
        and "acc" in header
    )
    assert len(out.strip().splitlines()) == 4
    rows = json.loads(
        runbase_cmd(
            "ls",
            "--json",
            "--where",
            "params.lr < 0.2",
            "--sort",
            "-metrics.acc",
            cwd=three_runs,
            check=True,
        ).stdout
    )
    assert [r["params"]["lr"] for r in rows] == [0.01, 0.1]
    assert rows[0]["metrics"]["acc"]["value"] == 0.99
    limited = runbase_cmd("ls", "--limit", "2", cwd=three_runs, check=True).stdout
    assert "(2 of 3 runs" in limited


def test_show_logs_metrics_and_prefixes(three_runs: Path) -> None:
    rows = json.loads(runbase_cmd("ls", "--json", cwd=three_runs, check=True).stdout)
    rid = rows[0]["id"]
    rec = json.loads(runbase_cmd("show", rid[:12], "--json", cwd=three_runs, check=True).stdout)
    for key in (
        "id",
        "name",
        "status",
        "exit_code",
        "started_at",
        "ended_at",
        "command",
        "cwd",
        "params",
        "metrics",
        "code",
        "env",
        "tags",
    ):
        assert key in rec
    for key in ("commit", "branch", "dirty", "patch", "tree"):
        assert key in rec["code"]
    for key in ("python", "packages", "os", "cpu", "memory_bytes", "gpus", "container", "vars"):
        assert key in rec["env"]
    assert set(rec["metrics"]["loss"]) >= {"last", "min", "max", "count"}
    assert rec["id"] == rid
    by_name = json.loads(
        runbase_cmd("show", rec["name"], "--json", "--no-patch", cwd=three_runs, check=True).stdout
    )
    assert by_name["id"] == rid and by_name["code"]["patch"] is None
    text = runbase_cmd("show", cwd=three_runs, check=True).stdout
    assert (
        rid in text and "params:" in text and "metrics:" in text and "uncommitted changes" in text
    )
    m = json.loads(runbase_cmd("metrics", rid, "loss", "--json", cwd=three_runs, check=True).stdout)
    assert m["steps"] == [0, 1, 2, 3, 4] and len(m["values"]) == 5
    assert "loss" in runbase_cmd("metrics", rid, cwd=three_runs, check=True).stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["show", "zzzzzz"], "no run matches"),
        (["show", "0"], "matches several runs"),
        (["ls", "--where", "params.lr <"], "unexpected end"),
        (["ls", "--where", "nonsense == 1"], "unknown field"),
        (["metrics", "latest", "nope"], "no metric"),
        (["run", "--", "no-such-binary-xyz"], "command not found"),
    ],
)
def test_clear_errors_without_tracebacks(three_runs: Path, args: list[str], message: str) -> None:
    proc = runbase_cmd(*args, cwd=three_runs)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_no_store_yet(tmp_path: Path) -> None:
    proc = runbase_cmd("ls", cwd=tmp_path)
    assert proc.returncode == 1 and "runbase init" in proc.stderr
    assert runbase_cmd("init", cwd=tmp_path, check=True).stdout.startswith("runbase store at")
    assert "no runs yet" in runbase_cmd("ls", cwd=tmp_path, check=True).stdout


def test_store_option_and_env(tmp_path: Path) -> None:
    store = tmp_path / "custom-store"
    runbase_cmd(
        "--store", str(store), "run", "--", sys.executable, "-c", "pass", cwd=tmp_path, check=True
    )
    assert (store / "FORMAT").is_file()
    out = runbase_cmd(
        "ls", "--json", cwd=tmp_path, env={"RUNBASE_DIR": str(store)}, check=True
    ).stdout
    assert len(json.loads(out)) == 1


def test_every_command_has_help_and_is_documented() -> None:
    runner = CliRunner()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    # the group loads its commands lazily (cli.COMMANDS): main.commands is empty
    assert len(COMMANDS) > 20
    ctx = click.Context(main)
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        assert cmd is not None, name
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, name
        assert cmd.help, name
        assert f"runbase {name}" in readme, f"`runbase {name}` is not in the README"


def test_demo(tmp_path: Path) -> None:
    proc = runbase_cmd("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "demo-" in line and "finished" in line]
    assert len(lines) == 3
    rec = json.loads(runbase_cmd("show", "--json", cwd=tmp_path / "demo", check=True).stdout)
    assert rec["code"]["dirty"] and "warm start" in rec["code"]["patch"]
    assert rec["params"] == {"lr": 0.05, "epochs": 40, "data": "data.csv"}


def test_logs_follow_a_live_run(project: Path) -> None:
    """`logs --follow` prints what the run writes AFTER it started (the program writes
    its second line only once follow has printed the first), and exits when the run
    ends."""
    import os
    import subprocess
    import threading

    write(
        project,
        "slow.py",
        """
        import os, time
        def wait_for(name):  # the deadline only stops a hang
            deadline = time.time() + 60
            while not os.path.exists(name) and time.time() < deadline:
                time.sleep(0.05)
        print("before follow", flush=True)
        wait_for("ignored/go")
        print("after follow started", flush=True)
        wait_for("ignored/stop")
        print("last line", flush=True)
    """,
    )
    (project / "ignored").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    sup = subprocess.Popen(
        [sys.executable, "-m", "runbase", "run", "--", sys.executable, "slow.py"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    follow: subprocess.Popen[str] | None = None
    lines: list[str] = []
    try:

        def running() -> bool:
            rows = json.loads(runbase_cmd("ls", "--json", cwd=project).stdout or "[]")
            return bool(rows) and rows[0]["status"] == "running"

        wait_until(running, what="the run to start")
        follow = subprocess.Popen(
            [sys.executable, "-m", "runbase", "logs", "--follow"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        out = follow.stdout
        assert out is not None

        def read() -> None:  # line by line, as follow prints them
            for line in out:
                lines.append(line)

        reader = threading.Thread(target=read)
        reader.start()
        wait_until(lambda: "before follow\n" in lines, what="follow to print the log so far")
        (project / "ignored" / "go").touch()
        wait_until(
            lambda: "after follow started\n" in lines, what="follow to print a line written later"
        )
        assert follow.poll() is None  # still following: the run is running
        (project / "ignored" / "stop").touch()
        assert sup.wait(timeout=60) == 0
        assert follow.wait(timeout=30) == 0  # the run ended: so does follow
        reader.join(timeout=30)
    finally:
        (project / "ignored" / "stop").touch()
        for proc in (follow, sup):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert lines == ["before follow\n", "after follow started\n", "last line\n"]


def test_run_ends_with_one_line_on_stderr_unless_quiet(project: Path) -> None:
    write(project, "ok.py", "print('out')\n")
    proc = runbase_cmd("run", "--name", "first", "--", sys.executable, "ok.py", cwd=project)
    assert proc.stdout == "out\n"  # stdout stays the command's own
    last = proc.stderr.strip().splitlines()[-1]
    rid = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)[0]["id"]
    assert last == f"runbase: run {rid[:10]} first finished (exit 0) - runbase show {rid[:10]}"
    failed = runbase_cmd("run", "--", sys.executable, "-c", "raise SystemExit(3)", cwd=project)
    assert failed.returncode == 3 and "failed (exit 3)" in failed.stderr.splitlines()[-1]
    quiet = runbase_cmd("run", "-q", "--", sys.executable, "ok.py", cwd=project)
    assert quiet.returncode == 0 and "runbase show" not in quiet.stderr
    env_quiet = runbase_cmd(
        "run", "--", sys.executable, "ok.py", cwd=project, env={"RUNBASE_QUIET": "1"}
    )
    assert env_quiet.returncode == 0 and "runbase show" not in env_quiet.stderr


def test_where_with_a_misspelled_key_says_so(three_runs: Path) -> None:
    proc = runbase_cmd("ls", "--where", "params.lrr < 0.2", cwd=three_runs, check=True)
    assert "no runs match" in proc.stdout
    assert "params.lrr exists in no run (did you mean params.lr?)" in proc.stderr
    ok = runbase_cmd("ls", "--where", "params.lr < 0.2", cwd=three_runs, check=True)
    assert ok.stderr == ""


def test_metrics_show_summary_only_values_and_readable_times(three_runs: Path) -> None:
    import re

    rid = json.loads(runbase_cmd("ls", "--json", cwd=three_runs, check=True).stdout)[0]["id"]
    summary = runbase_cmd("metrics", rid, cwd=three_runs, check=True).stdout.splitlines()
    acc = next(line.split() for line in summary if line.startswith("acc"))
    loss = next(line.split() for line in summary if line.startswith("loss"))
    assert acc[-1] == "summary" and loss[-1] == "5"  # acc was only runbase.summary'd
    shown = runbase_cmd("show", rid, cwd=three_runs, check=True).stdout
    assert re.search(r"^\s+acc\s.*\ssummary$", shown, re.M), shown
    points = runbase_cmd("metrics", rid, "loss", cwd=three_runs, check=True).stdout.splitlines()
    assert points[0].split() == ["step", "loss", "since", "start", "time", "(UTC)"]
    for line in points[1:]:
        _step, _value, since, clock = line.split()
        assert re.fullmatch(r"\d+\.\d{3}s", since) and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", clock)


def test_ls_shows_the_params_that_differ_and_chosen_columns(three_runs: Path) -> None:
    # runs with a param of the same value in each (as frameworks log ~20): not a column
    write(
        three_runs,
        "c.py",
        """
        import argparse, runbase
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float)
        p.add_argument("--seed", type=int, default=7); a = p.parse_args()
        runbase.log(loss=a.lr, step=0); runbase.summary(acc=1 - a.lr)
    """,
    )
    for lr in ("0.2", "0.3"):
        runbase_cmd("run", "--", sys.executable, "c.py", "--lr", lr, cwd=three_runs, check=True)
    out = runbase_cmd("ls", "--where", "params.seed == 7", cwd=three_runs, check=True).stdout
    header = out.splitlines()[0].split()
    assert "lr" in header and "acc" in header and "loss" in header and "seed" not in header
    assert "(1 params with the same value in every listed run not shown" in out
    every = runbase_cmd("ls", "-c", "name,params.*", cwd=three_runs, check=True).stdout
    assert every.splitlines()[0].split() == ["name", "lr", "seed"]
    assert "not shown" not in every
    chosen = runbase_cmd("ls", "--columns", "id,metrics.a*,tags.x", cwd=three_runs, check=True)
    assert chosen.stdout.splitlines()[0].split() == ["id", "acc", "x"]
    bad = runbase_cmd("ls", "--columns", "nope", cwd=three_runs)
    assert bad.returncode == 2 and "unknown column 'nope'" in bad.stderr
