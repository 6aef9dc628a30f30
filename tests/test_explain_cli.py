"""`runbase explain` at the command line: the text report, the CLI, `reproduce
--explain` and its hint, `runbase ls` hiding the hybrid runs (issue 17)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import documented_keys, fake_wheel, offline_installs, runbase_cmd, write
from runbase.errors import QueryError

PY = sys.executable

# A report of the shape docs/explain.md documents (version 1), as the producer
# (analysis.explain.build_report) writes it: NaN/inf as strings, like the run record.
SAMPLE: dict[str, Any] = {
    "explain_version": 1,
    "id": "x0123456789a",
    "a": "0mc191nz6p2tzg1q",
    "b": "0mc191r629k3a7d1",
    "metric": "acc",
    "a_value": 0.91,
    "b_value": 0.85,
    "total": -0.06,
    "measured": {"a": 0.91, "b": 0.85, "total": -0.06},
    "noise": {
        "repeats": 3,
        "a": [0.91, 0.91, 0.9101],
        "b": [0.85, 0.85, 0.85],
        "spread": 0.0001,
        "threshold": 0.0002,
        "a_reproduces": True,
        "b_reproduces": True,
    },
    "factors": [
        {
            "kind": "data",
            "name": "data/train.csv",
            "description": "data/train.csv 3f2a1c… → 9c1b0e…, 3,000 of 10,000 rows differ",
            "effect": -0.05,
            "effect_alone": -0.048,
            "effect_removed": -0.052,
            "share": 83.3,
            "significant": True,
            "breaks_run": False,
        },
        {
            "kind": "param",
            "name": "params.lr",
            "description": "params.lr 0.1 → 0.05",
            "effect": -0.0001,
            "effect_alone": -0.0001,
            "effect_removed": "NaN",
            "share": 0.2,
            "significant": False,
            "breaks_run": False,
        },
        {
            "kind": "code",
            "name": "src/features.py",
            "description": "src/features.py +12 −3",
            "effect": None,
            "effect_alone": None,
            "effect_removed": None,
            "share": None,
            "significant": False,
            "breaks_run": True,
        },
    ],
    "interactions": [{"factors": ["params.a", "params.b"], "effect": -0.04}],
    "untestable": [
        {
            "kind": "env",
            "name": "numpy",
            "reason": "package versions are tested only with --env venv",
        }
    ],
    "untried": [{"name": "src/util.py", "reason": "budget exhausted"}],
    "search": {
        "method": "one-at-a-time",
        "budget": 50,
        "used": 6,
        "notes": ["each factor was tried alone on A and removed from B"],
    },
    "hybrids": {
        "run": 8,
        "cached": 2,
        "failed": 1,
        "seconds": 12.3,
        "runs": [
            {
                "run": "0mc1aaaaaaaaaaaa",
                "role": "a",
                "factors": [],
                "value": 0.91,
                "status": "finished",
                "cached": False,
            },
            {
                "run": "0mc1bbbbbbbbbbbb",
                "role": "hybrid",
                "factors": ["params.lr", "src/features.py"],
                "value": None,
                "status": "failed",
                "cached": False,
            },
        ],
    },
    "unexplained": -0.01,
}


def _report(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            doc[section][sub] = value
        else:
            doc[section] = value
    return doc


def _render(doc: dict[str, Any], color: bool = False) -> str:
    from runbase.render.explain import render

    return render(doc, color)


# -- the text report ------------------------------------------------------------------


def test_report_reads_total_noise_factors_interactions_untestable_search_hybrids() -> None:
    text = _render(SAMPLE)
    lines = text.splitlines()
    assert lines[0] == "explain acc: 0.91 → 0.85 (-0.06) from A 0mc191nz6p to B 0mc191r629"
    assert "re-run 3×" in text and "effects within ±0.0002 are not significant" in text
    # the measured total equals the recorded one: no second line for it
    assert "measured on the re-runs" not in text
    sections = [
        "factors, largest effect first:",
        "interactions",
        "not tested:",
        "search: one-at-a-time, 6 of a budget of 50 hybrids",
        "hybrids: 8 run, 2 cached, 1 failed, 12.3 s",
    ]
    where = [next(i for i, line in enumerate(lines) if line.startswith(s)) for s in sections]
    assert where == sorted(where), "sections out of order"
    # the factors in the report's order (by |effect|), each with kind, change, share
    data = next(i for i, line in enumerate(lines) if "data/train.csv 3f2a1c…" in line)
    assert lines[data].split()[:4] == ["1", "-0.05", "83.3%", "data"]
    assert "alone -0.048, removed from B -0.052" in lines[data + 1]
    assert "not significant" not in lines[data + 1]
    lr = next(i for i, line in enumerate(lines) if "params.lr 0.1 → 0.05" in line)
    assert lr > data and lines[lr].split()[:4] == ["2", "-0.0001", "0.2%", "param"]
    assert "removed from B NaN" in lines[lr + 1] and "not significant" in lines[lr + 1]
    broken = next(i for i, line in enumerate(lines) if "src/features.py +12 −3" in line)
    assert broken > lr and lines[broken].split()[:3] == ["3", "—", "code"]
    assert "breaks the run" in lines[broken + 1]
    assert "  params.a + params.b: -0.04" in lines
    assert "  env  numpy: package versions are tested only with --env venv" in lines
    assert "  each factor was tried alone on A and removed from B" in lines
    assert "  not tried: src/util.py: budget exhausted" in lines
    assert "  unexplained by the factors above: -0.01" in lines
    # a hybrid that did not finish is named, with where to see why
    assert "  failed: params.lr + src/features.py - runbase logs 0mc1bbbbbb" in lines
    assert "runbase ls --all --where 'tags.explain == \"x0123456789a\"'" in text
    assert "\x1b[" not in text  # no colour unless asked
    assert "\x1b[31m" in _render(SAMPLE, color=True)  # a factor that breaks the run: red


def test_a_run_that_does_not_reproduce_is_said_first() -> None:
    doc = _report(
        noise__a_reproduces=False,
        noise__a=[0.88, 0.88, 0.88],
        measured={"a": 0.88, "b": 0.85, "total": -0.03},
    )
    lines = _render(doc).splitlines()
    assert lines[0] == (
        "A (0mc191nz6p) does not reproduce its recorded acc: recorded 0.91, "
        "re-runs gave 0.88, 0.88, 0.88"
    )
    assert not any(line.startswith("B (") for line in lines)
    assert "  measured on the re-runs: 0.88 → 0.85 (-0.03)" in lines
    both = _render(_report(noise__a_reproduces=False, noise__b_reproduces=False))
    assert both.splitlines()[1].startswith("B (0mc191r629) does not reproduce its recorded acc")


def test_report_edge_cases_none_nan_nothing_tested_and_hostile_names() -> None:
    doc = _report(
        factors=[],
        interactions=[],
        untried=[],
        unexplained=-2.8e-17,  # rounding, within the noise threshold: not shown
        b_value="-Infinity",
        total="-Infinity",
        noise__repeats=1,
        noise__spread=0.0,
        untestable=[{"kind": "data", "name": "evil\x1b[2Jname", "reason": "not stored\n"}],
    )
    text = _render(doc)
    assert text.splitlines()[0].startswith("explain acc: 0.91 → -inf (-inf)")
    assert "no factor could be tested" in text
    assert "interactions" not in text and "unexplained" not in text
    assert "re-run once (--repeats K measures the spread)" in text
    # names come from the records of A and B: control characters are not sent as-is
    assert "\x1b" not in text and "evil\\x1b[2Jname: not stored\\n" in text


# -- runbase ls hides hybrids ----------------------------------------------------------


def test_hide_explain_where() -> None:
    from runbase.records.read import hide_explain

    assert hide_explain(None, False) == "not tags.explain"
    assert hide_explain("params.lr < 1 or status == 'failed'", False) == (
        "(params.lr < 1 or status == 'failed') and not tags.explain"
    )
    assert hide_explain("params.lr < 1", True) == "params.lr < 1"
    assert hide_explain(None, True) is None
    # a mistake in the filter is reported in the user's own words
    with pytest.raises(QueryError, match="unexpected end") as e:
        hide_explain("params.lr <", False)
    assert "tags.explain" not in str(e.value)


def test_ls_hides_explain_runs_unless_all(project: Path) -> None:
    write(project, "t.py", "import runbase\nrunbase.summary(acc=0.5)\n")
    for tags in ([], ["--tag", "explain=x0123456789a"], ["--tag", "explain=x0123456789a"]):
        runbase_cmd("run", "-q", *tags, "--", PY, "t.py", cwd=project, check=True)
    listed = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    every = json.loads(runbase_cmd("ls", "--json", "--all", cwd=project, check=True).stdout)
    assert len(listed) == 1 and len(every) == 3
    assert "explain" not in listed[0]["tags"]

    table = runbase_cmd("ls", cwd=project, check=True)
    assert table.stdout.splitlines()[-1] == (
        "(2 hybrid runs of `runbase explain` not shown; --all shows them)"
    )
    assert "exists in no run" not in table.stderr
    shown = runbase_cmd("ls", "--all", cwd=project, check=True).stdout
    assert "hybrid" not in shown and len(shown.splitlines()) == 4  # header + 3 runs
    # a filter combines with the hiding; the note counts only the hybrids it matched
    some = runbase_cmd("ls", "--where", "metrics.acc > 0.4", cwd=project, check=True).stdout
    assert "(2 hybrid runs" in some
    none = runbase_cmd("ls", "--where", "metrics.acc > 0.9", cwd=project, check=True).stdout
    assert none.strip() == "no runs match"
    only = runbase_cmd("ls", "--all", "--where", "tags.explain", cwd=project, check=True)
    assert len(only.stdout.splitlines()) == 3


def test_ls_without_hybrids_has_no_note_and_no_warning(project: Path) -> None:
    write(project, "t.py", "import runbase\nrunbase.summary(acc=0.5)\n")
    runbase_cmd("run", "-q", "--", PY, "t.py", cwd=project, check=True)
    out = runbase_cmd("ls", cwd=project, check=True)
    assert "hybrid" not in out.stdout and out.stderr == ""


# -- reproduce: the hint ---------------------------------------------------------------

NOISY = """
import random
import runbase
runbase.summary(acc=random.random())
"""


def test_a_diverged_reproduce_ends_with_the_explain_hint(project: Path) -> None:
    write(project, "noisy.py", NOISY)
    runbase_cmd("run", "-q", "--", PY, "noisy.py", cwd=project, check=True)
    orig = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)[0]["id"]
    r = runbase_cmd("reproduce", orig, cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    new = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)[0]["id"]
    hint = f"explain the difference: runbase explain {orig} {new}"
    assert r.stdout.splitlines()[-1] == hint
    # --json: stdout is the JSON alone (no explain key unless asked), the hint on stderr
    r = runbase_cmd("reproduce", orig, "--json", cwd=project)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert "explain" not in doc
    assert (
        r.stderr.splitlines()[-1] == f"explain the difference: runbase explain {orig} {doc['run']}"
    )


# -- through the real command, on a tiny project ----------------------------------------

TRAIN = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
rows = [float(x) for x in open("data/points.txt").read().split()]
runbase.summary(acc=sum(rows) * 0.01 + args.lr * 0.01, other=args.lr)
"""


def _last_id(project: Path) -> str:
    return str(json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)[0]["id"])


def _two_runs(project: Path, prelude: str = "") -> tuple[str, str]:
    """A, then B with a large data change and a small param change."""
    write(project, "train.py", prelude + TRAIN)
    # data/ kept out of git (and so out of the code snapshot): a data factor alone
    write(project, ".gitignore", "data/\n")
    write(project, "data/points.txt", "1\n2\n3\n")
    runbase_cmd("run", "-q", "--", PY, "train.py", "--lr", "0.1", cwd=project, check=True)
    a = _last_id(project)
    write(project, "data/points.txt", "10\n20\n30\n")
    runbase_cmd("run", "-q", "--", PY, "train.py", "--lr", "0.2", cwd=project, check=True)
    return a, _last_id(project)


def _documented_keys(section: str | None) -> set[str]:
    """The keys docs/explain.md lists in the table of ``section`` (None: the top one)."""
    return documented_keys("explain.md", section, within="## The report (`--json`)")


def test_explain_ranks_the_data_change_first_and_a_second_explain_runs_nothing(
    project: Path,
) -> None:
    a, b = _two_runs(project)
    r = runbase_cmd("explain", a, b, "--metric", "acc", "-j", "2", "--json", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)  # stdout is the JSON alone: progress went to stderr
    assert "runbase: explain" in r.stderr
    # the document names every key it has, and docs/explain.md every key it writes
    assert set(doc) == _documented_keys(None)
    for section in ("measured", "noise", "search", "hybrids"):
        assert set(doc[section]) == _documented_keys(section), section
    assert set(doc["factors"][0]) == _documented_keys("factors[]")
    assert doc["a"] == a and doc["b"] == b and doc["metric"] == "acc"
    assert [f["name"] for f in doc["factors"]] == ["data/points.txt", "params.lr"]
    data, lr = doc["factors"]
    assert data["kind"] == "data" and lr["kind"] == "param"
    assert data["share"] > 80 and data["significant"] and not data["breaks_run"]
    assert lr["description"] == "params.lr 0.1 → 0.2"
    assert doc["noise"]["a_reproduces"] and doc["noise"]["b_reproduces"]
    first = doc["hybrids"]
    assert first["run"] >= 4 and first["cached"] == 0 and first["failed"] == 0

    # the hybrids are runs of their own, hidden from `runbase ls`
    listed = runbase_cmd("ls", cwd=project, check=True).stdout.splitlines()
    assert len(listed) == 1 + 2 + 1  # header, A and B, the note
    assert (
        listed[-1]
        == f"({first['run']} hybrid runs of `runbase explain` not shown; --all shows them)"
    )
    every = json.loads(runbase_cmd("ls", "--all", "--json", "-l", "0", cwd=project).stdout)
    hybrids = [row for row in every if row["tags"].get("explain") == doc["id"]]
    assert len(hybrids) == first["run"]
    assert all(row["tags"]["explain.a"] == a and row["tags"]["explain.b"] == b for row in hybrids)

    # a second explain: every hybrid is found again, none runs
    again = runbase_cmd("explain", a, b, "--metric", "acc", cwd=project)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith(f"explain acc: 0.061 → 0.602 (+0.541) from A {a[:10]} to B {b[:10]}")
    assert any("data/points.txt" in line and "data" in line.split() for line in lines)
    assert f"hybrids: 0 run, {first['run']} cached" in again.stdout
    # another metric: a hybrid measured every metric, so none runs either
    other = runbase_cmd("explain", a, b, "--metric", "other", "--json", cwd=project)
    assert other.returncode == 0, other.stdout + other.stderr
    odoc = json.loads(other.stdout)
    assert odoc["factors"][0]["name"] == "params.lr" and odoc["hybrids"]["run"] == 0
    assert len(
        json.loads(runbase_cmd("ls", "--all", "--json", "-l", "0", cwd=project).stdout)
    ) == len(every)


def test_explain_bad_input_exits_2_with_a_clear_message(project: Path) -> None:
    a, b = _two_runs(project)
    cases = [
        ([a, a], "same run"),
        ([a, b, "--metric", "nosuch"], "nosuch"),
        (["nosuchrun", b], "nosuchrun"),
        ([a, b, "--budget", "0"], "budget"),
        ([a, b, "--repeats", "0"], "repeats"),
    ]
    for args, words in cases:
        r = runbase_cmd("explain", *args, cwd=project)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stdout == ""


def test_reproduce_explain_says_why_it_cannot_explain_noise(project: Path) -> None:
    """Re-running an unseeded script diverges, but nothing recorded differs between the
    two runs: explain has nothing to test, says so, and the verdict stays exit 1."""
    write(project, "noisy.py", NOISY)
    runbase_cmd("run", "-q", "--", PY, "noisy.py", cwd=project, check=True)
    orig = _last_id(project)
    r = runbase_cmd("reproduce", orig, "--explain", "--json", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "diverged" and doc["explain"] is None
    assert "runbase: cannot explain the difference:" in r.stderr
    assert "explain the difference: runbase explain" not in r.stderr  # it was run, not offered


def test_explain_two_runs_pulled_from_a_team_server(project: Path, tmp_path: Path) -> None:
    """`runbase explain team:A team:B` on another machine: both runs are pulled with
    their data first, and the hybrids run from the pulled code and inputs."""
    import conftest

    conftest.require("fastapi")
    conftest.require("uvicorn")
    a, b = _two_runs(project)
    base = tmp_path / "srv"
    base.mkdir()
    db, objects = str(base / "server.db"), str(base / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, check=True)
    token = runbase_cmd(
        "server", "users", "add", "alice", "--role", "admin", "--db", db, check=True
    ).stdout.strip()
    server = conftest.start_server(db, objects, log_dir=base)
    try:
        runbase_cmd("login", server.url, "--token", token, cwd=project, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=project, check=True)
        runbase_cmd("push", a, b, cwd=project, check=True)
        other = tmp_path / "elsewhere"
        other.mkdir()
        env = {"RUNBASE_CONFIG": str(tmp_path / "other-config.json")}
        runbase_cmd("login", server.url, "--token", token, cwd=other, env=env, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=other, env=env, check=True)
        r = runbase_cmd(
            "explain", f"team:{a[:10]}", f"{server.url}/p/default/runs/{b}", "--json",
            cwd=other, env=env,
        )  # fmt: skip
    finally:
        server.kill()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pulling" in r.stderr
    doc = json.loads(r.stdout)
    assert (doc["a"], doc["b"]) == (a, b)
    assert [f["name"] for f in doc["factors"]] == ["data/points.txt", "params.lr"]
    assert doc["noise"]["a_reproduces"] and doc["noise"]["b_reproduces"]


# imported by the runs below: sleeps only under the explain of the test
SLOW = """
import os, time
flag = os.environ.get("SLOW_FLAG")
if flag:
    open(flag, "w").write(str(os.getpid()))
    time.sleep(600)
"""


def test_ctrl_c_stops_the_hybrids_and_exits_130(project: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from conftest import stop_process, wait_until

    write(project, "slow.py", SLOW)
    a, b = _two_runs(project, prelude="import slow\n")
    started = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env.update(RUNBASE_CONFIG=os.environ["RUNBASE_CONFIG"], SLOW_FLAG=str(started))
    # as a terminal's Ctrl-C finds it: a test run in the background (`.ci/run &`) has
    # SIGINT ignored, and a child inherits that, so Python would never see the SIGINT
    proc = subprocess.Popen(
        [PY, "-m", "runbase", "explain", a, b, "-j", "1"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        wait_until(lambda: started.is_file() and started.read_text(), what="a hybrid to start")
        pid = int(started.read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            stop_process(proc)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err and out == ""

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, what="the hybrid's script to be stopped")


def test_reproduce_explain_after_a_library_upgrade_names_the_package(
    project: Path, tmp_path: Path
) -> None:
    """The mission's scenario: the same script re-run after its library was upgraded
    diverges; the hint and `reproduce --explain` test the package versions (in
    virtualenvs built from the recorded ones), and the report names the upgrade."""
    import shutil
    import subprocess
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python*/site-packages")
    zipfile.ZipFile(fake_wheel(wheels, "rbfakex", "1.0", "VALUE = 1.0\n")).extractall(site)
    write(project, "train.py", "import rbfakex, runbase\nrunbase.summary(acc=1 / rbfakex.VALUE)\n")
    python = str(venv / "bin" / "python")
    runbase_cmd("run", "-q", "--", python, "train.py", cwd=project, check=True)
    orig = _last_id(project)
    # months later: the library was upgraded in place
    shutil.rmtree(site / "rbfakex")
    shutil.rmtree(site / "rbfakex-1.0.dist-info")
    zipfile.ZipFile(fake_wheel(wheels, "rbfakex", "2.0", "VALUE = 2.0\n")).extractall(site)
    offline = offline_installs(wheels)
    plain = runbase_cmd("reproduce", orig, cwd=project, env=offline)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    new = _last_id(project)
    assert plain.stdout.splitlines()[-1] == (
        f"explain the difference: runbase explain {orig} {new} --env venv"
    )
    r = runbase_cmd("reproduce", orig, "--explain", "--json", cwd=project, env=offline, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr  # the verdict's exit status
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "diverged"
    report = doc["explain"]
    assert report is not None, r.stderr
    assert (report["a"], report["b"], report["metric"]) == (orig, doc["run"], "acc")
    [factor] = report["factors"]
    assert (factor["kind"], factor["name"]) == ("env", "rbfakex")
    assert "1.0" in factor["description"] and "2.0" in factor["description"]
    assert abs(factor["effect"] + 0.5) < 1e-9 and factor["share"] == 100
    # as text: the verdict, the diff, then the report (the hint is not offered: it ran)
    text = runbase_cmd("reproduce", orig, "--explain", cwd=project, env=offline, timeout=600)
    assert text.returncode == 1, text.stdout + text.stderr
    assert text.stdout.startswith("diverged: run ")
    report_at = text.stdout.index("\nexplain acc: 1 → 0.5 (-0.5) from A")
    assert "rbfakex" in text.stdout[report_at:] and "explain the difference" not in text.stdout


def test_a_hybrid_that_crashes_is_reported_never_dropped(project: Path) -> None:
    """B's larger lr crashes the script on A's small data: the param "breaks the run",
    and the text names the failed hybrid with the command that shows why."""
    prelude = (
        "import sys\n"
        "if '0.2' in sys.argv and open('data/points.txt').read().startswith('1\\n'):\n"
        "    raise SystemExit('lr 0.2 diverges on the small data set')\n"
    )
    a, b = _two_runs(project, prelude=prelude)
    r = runbase_cmd("explain", a, b, cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    lr = next(i for i, line in enumerate(lines) if "params.lr 0.1 → 0.2" in line)
    assert "breaks the run" in lines[lr + 1]
    failed = [line for line in lines if line.startswith("  failed: params.lr - runbase logs ")]
    assert len(failed) == 1
    logs = runbase_cmd("logs", failed[0].rsplit(" ", 1)[1], cwd=project, check=True)
    assert "lr 0.2 diverges on the small data set" in logs.stdout + logs.stderr
