"""`runbase diff`: two real runs that differ in one dimension show exactly that one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import blake3

from conftest import commit, runbase_cmd, write

PY = sys.executable
SECTIONS = {"params", "metrics", "code", "data", "env", "run"}


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    runbase_cmd("run", "--", PY, *args, cwd=project, env=env, check=True)
    return json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]


def diff_json(project: Path, *args: str) -> dict[str, Any]:
    return json.loads(runbase_cmd("diff", *args, "--json", cwd=project, check=True).stdout)


def diff_text(project: Path, *args: str) -> str:
    return runbase_cmd("diff", *args, cwd=project, check=True).stdout


def changed_sections(report: dict[str, Any]) -> set[str]:
    return {name for name in SECTIONS if not report[name]["unchanged"]}


def test_only_a_param_differs(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--epochs", type=int, default=3)
        p.parse_args()
    """,
    )
    commit(project, "train")
    a = run(project, "train.py", "--lr", "0.1")
    b = run(project, "train.py", "--lr", "0.2")
    report = diff_json(project, a, b)
    # the value came from the command line: the command differs only by it, which the
    # params section already reports; nothing else changed
    assert changed_sections(report) == {"params"}
    assert report["run"]["command"]["explained_by_params"] is True
    assert report["params"]["changed"] == [
        {"key": "lr", "old": 0.1, "new": 0.2, "old_source": "argparse", "new_source": "argparse"}
    ]
    assert report["params"]["added"] == report["params"]["removed"] == []
    assert report["run"]["status"] is None and report["run"]["exit_code"] is None
    assert report["run"]["command"]["new"][-2:] == ["--lr", "0.2"]
    text = diff_text(project, a, b)
    assert "  ~ lr: 0.1 → 0.2  [argparse]" in text
    for name in ("metrics", "code", "data", "env"):
        assert f"\n{name}: unchanged" in text, text
    assert "command and exit status: unchanged (the command differs only by" in text


def test_only_a_data_input_differs(project: Path) -> None:
    write(project, "train.py", "rows = open('data.csv').read().splitlines()\nprint(len(rows))\n")
    commit(project, "train")
    (project / "data.csv").write_text("x,y\n1,2\n")
    a = run(project, "train.py")
    (project / "data.csv").write_text("x,y\n1,3\n")
    b = run(project, "train.py")
    report = diff_json(project, a, b)
    assert changed_sections(report) == {"data"}
    inputs = report["data"]["inputs"]
    assert inputs["added"] == inputs["removed"] == []
    b3 = "blake3:" + blake3.blake3(b"x,y\n1,3\n").hexdigest()
    [change] = inputs["changed"]
    assert change["path"] == "data.csv" and change["new_hash"] == b3
    assert change["old_hash"] != b3 and change["old_size"] == change["new_size"] == 8
    # data files are not code: the (untracked) csv is never diffed as source
    assert report["code"]["files"] == [] and report["code"]["not_diffed"] == ["data.csv"]
    text = diff_text(project, a, b)
    assert "  inputs:\n    ~ data.csv  " in text and b3[7:19] in text
    assert "  outputs: unchanged" in text and "code: unchanged" in text


def test_only_a_code_line_differs(project: Path) -> None:
    write(project, "train.py", "x = 1\ny = 2\nprint(x + y)\n")
    head = commit(project, "train")
    a = run(project, "train.py")
    write(project, "train.py", "x = 10\ny = 2\nprint(x + y)\n")  # uncommitted
    b = run(project, "train.py")
    report = diff_json(project, a, b)
    assert changed_sections(report) == {"code"}
    code = report["code"]
    assert code["a"]["commit"] == code["b"]["commit"] == head
    assert not code["a"]["dirty"] and code["b"]["dirty"] and code["b"]["patch_id"]
    [f] = code["files"]
    assert (f["path"], f["status"], f["binary"], f["mode"]) == ("train.py", "changed", False, None)
    assert f["diff"].startswith("--- a/train.py\n+++ b/train.py\n@@ ")
    assert "\n-x = 1\n+x = 10\n y = 2\n" in f["diff"]
    text = diff_text(project, a, b)
    assert "  A: commit " + head[:10] + " on main, clean" in text
    assert "  B: commit " + head[:10] + " on main, uncommitted changes" in text
    assert "  changed: train.py\n" in text and "\n-x = 1\n+x = 10\n" in text
    # one run alone: the uncommitted change it ran with, from the stored patch
    alone = diff_text(project, b)
    assert "uncommitted changes against commit " + head[:10] in alone
    assert "\n-x = 1\n+x = 10\n" in alone
    assert diff_json(project, b)["head"]["patch"].count("+x = 10") == 1
    assert "no uncommitted changes" in diff_text(project, a)


def test_only_a_package_version_differs(project: Path, tmp_path: Path) -> None:
    sites = {}
    for version in ("1.0", "2.0"):
        info = tmp_path / f"site-{version}" / f"fakepkg-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n"
        )
        sites[version] = str(info.parent)
    write(project, "train.py", "print('ok')\n")
    commit(project, "train")
    a = run(project, "train.py", env={"PYTHONPATH": sites["1.0"]})
    b = run(project, "train.py", env={"PYTHONPATH": sites["2.0"]})
    report = diff_json(project, a, b)
    assert changed_sections(report) == {"env"}
    packages = report["env"]["packages"]
    assert packages["upgraded"] == [{"name": "fakepkg", "old": "1.0", "new": "2.0"}]
    assert not any(packages[k] for k in ("added", "removed", "downgraded", "changed"))
    assert all(report["env"][k] is None for k in ("python", "os", "cpu", "gpus", "container"))
    assert "  packages: 1 upgraded\n    ↑ fakepkg 1.0 → 2.0" in diff_text(project, a, b)
    backwards = diff_json(project, b, a, "--env")["env"]["packages"]
    assert backwards["downgraded"] == [{"name": "fakepkg", "old": "2.0", "new": "1.0"}]


def test_metric_deltas_sorted_by_size_of_change(project: Path) -> None:
    write(
        project,
        "t.py",
        """
        import json, sys, runbase
        runbase.summary(**json.loads(sys.argv[1]))
    """,
    )
    commit(project, "t")
    a = run(project, "t.py", json.dumps({"c": 0, "a": 1, "b": 10, "x": 1, "y": 10, "d": 5}))
    b = run(
        project, "t.py", json.dumps({"c": 1, "a": 1.5, "b": 10.5, "x": 2, "y": 20, "d": 5, "e": 3})
    )
    metrics = diff_json(project, a, b, "--metrics")["metrics"]
    # from 0 first (infinitely large relatively), then +100% (larger absolute first), +50%, +5%
    assert [m["key"] for m in metrics["changed"]] == ["c", "y", "x", "a", "b"]
    by_key = {m["key"]: m for m in metrics["changed"]}
    assert by_key["a"]["delta"] == 0.5 and by_key["a"]["relative"] == 0.5
    assert by_key["c"]["relative"] is None and by_key["c"]["delta"] == 1
    assert metrics["added"] == [{"key": "e", "value": 3}] and metrics["removed"] == []
    text = diff_text(project, a, b, "--metrics")
    assert "  ~ a: 1 → 1.5  (+0.5, +50.0%)" in text and "  ~ c: 0 → 1  (+1, from 0)" in text
    assert text.index("~ c:") < text.index("~ y:") < text.index("~ x:") < text.index("~ a:")


def test_json_shape_and_section_flags(project: Path) -> None:
    write(project, "t.py", "import runbase\nrunbase.summary(acc=0.5)\n")
    commit(project, "t")
    a, b = run(project, "t.py"), run(project, "t.py")
    full = diff_json(project, a, b)
    assert set(full) == {"diff_version", "a", "b"} | SECTIONS and full["diff_version"] == 1
    assert (full["a"]["id"], full["b"]["id"]) == (a, b)
    assert changed_sections(full) == set()
    assert diff_text(project, a, b).splitlines()[2:] == [
        "params: unchanged",
        "metrics: unchanged",
        "code: unchanged",
        "data: unchanged",
        "env: unchanged",
        "command and exit status: unchanged",
    ]
    both = diff_json(project, a[:12], b, "--params", "--metrics")  # prefixes resolve
    assert set(both) == {"diff_version", "a", "b", "params", "metrics"}
    assert set(diff_json(project, a, b, "--code")) == {"diff_version", "a", "b", "code"}
    assert diff_text(project, a, b, "--env").splitlines()[2:] == ["env: unchanged"]


def test_failed_run_status_and_unknown_runs(project: Path) -> None:
    write(project, "t.py", "import sys\nsys.exit(int(sys.argv[1]))\n")
    commit(project, "t")
    a = run(project, "t.py", "0")
    runbase_cmd("run", "--", PY, "t.py", "3", cwd=project)
    report = diff_json(project, a, "latest")
    assert report["run"]["status"] == {"old": "finished", "new": "failed"}
    assert report["run"]["exit_code"] == {"old": 0, "new": 3}
    # errors as every command reports them: one line, exit 1, no traceback
    for args, message in [
        (["nope", a], "no run matches 'nope'"),
        ([a, "nope"], "no run matches 'nope'"),
        (["nope"], "no run matches 'nope'"),
        ([a, "--params"], "give two runs"),
    ]:
        proc = runbase_cmd("diff", *args, cwd=project)
        assert proc.returncode == 1 and proc.stderr.startswith("Error: "), proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_diff_alone_outside_git(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("print(1)\n")
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}  # never find an enclosing repo
    runbase_cmd("run", "--", PY, "t.py", cwd=tmp_path, env=env, check=True)
    proc = runbase_cmd("diff", "latest", cwd=tmp_path, env=env, check=True)
    assert "outside a git repository: there is no commit to compare with" in proc.stdout
    head = json.loads(runbase_cmd("diff", "latest", "--json", cwd=tmp_path, env=env).stdout)
    assert head["b"] is None and head["head"]["kind"] == "dir" and head["head"]["patch"] is None


def test_binary_and_added_files(project: Path) -> None:
    write(project, "t.py", "pass\n")
    (project / "blob.dat").write_bytes(b"\0\1\2")
    commit(project, "t")
    a = run(project, "t.py")
    (project / "blob.dat").write_bytes(b"\0\1\3")
    write(project, "helper.py", "X = 1\n")
    os.remove(project / "t.py")
    write(project, "t2.py", "pass\n")
    b = run(project, "t2.py")
    files = {f["path"]: f for f in diff_json(project, a, b, "--code")["code"]["files"]}
    assert set(files) == {"blob.dat", "helper.py", "t.py", "t2.py"}
    assert files["blob.dat"]["binary"] and files["blob.dat"]["diff"] is None
    assert files["helper.py"]["status"] == "added" and files["t.py"]["status"] == "removed"
    assert files["helper.py"]["diff"].startswith("--- /dev/null\n+++ b/helper.py\n")
    text = diff_text(project, a, b, "--code")
    assert "  changed: blob.dat (binary files differ)" in text
    assert "binary files differ" in diff_text(project, b)  # the git binary patch, summarized
