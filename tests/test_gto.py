"""GTO-compatible git tags (records/gto.py): what runbase writes with --git-tag is read
back by the real `gto` package from PyPI, and a registry made by the real `gto`
commands is imported.

The gto venv is built once with uv (the test extra) under ~/.cache/runbase-tests,
keyed by the gto version; a test that cannot build it FAILS."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT, commit, runbase_cmd, write
from runbase.errors import UsageError
from runbase.records import gto, registry
from runbase.store import Store

GTO = "1.10.1"
PY = sys.executable
TRAIN = """\
import sys
open("model.pkl", "w").write("weights " + sys.argv[1])
"""


# ---------------------------------------------------------------- the real gto


@pytest.fixture(scope="session")
def gto_bin() -> Path:
    """The `gto` command of gto==1.10.1 from PyPI, in a venv cached across sessions."""
    cache = Path(
        os.environ.get("RUNBASE_TEST_CACHE", Path.home() / ".cache" / "runbase-tests")
    )  # fmt: skip
    venv = cache / f"gto-{GTO}"
    done = venv / ".complete"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"gto-{GTO}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        usable = done.exists() and subprocess.run(
            [str(venv / "bin" / "gto"), "--version"], capture_output=True
        ).returncode == 0  # fmt: skip  # a venv of a Python since removed is built anew
        if not usable:
            shutil.rmtree(venv, ignore_errors=True)
            steps = [
                [PY, "-m", "uv", "venv", "-q", str(venv)],
                [PY, "-m", "uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                 f"gto=={GTO}"],
            ]  # fmt: skip
            for step in steps:
                proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    pytest.fail(f"cannot build the gto venv ({' '.join(step)}):\n{proc.stderr}")
            done.write_text(GTO)
    return venv / "bin" / "gto"


def gto_json(gto_bin: Path, repo: Path, *args: str) -> Any:
    proc = subprocess.run(
        [str(gto_bin), *args, "--json", "-r", str(repo)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def gto_cmd(gto_bin: Path, repo: Path, *args: str) -> None:
    _next_second()  # GTO orders tags by their time in seconds: one command per second
    proc = subprocess.run([str(gto_bin), *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _next_second() -> None:
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


# ---------------------------------------------------------------- helpers


def identity(root: Path) -> None:
    """The repository's own git identity: the tags are signed with it."""
    for key, value in (("user.name", "Test"), ("user.email", "test@example.com")):
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)


def tag_names(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(root), "tag", "--list"], capture_output=True, text=True, check=True
    ).stdout
    return sorted(out.split())


def train(root: Path, label: str, *, new_commit: bool = True) -> tuple[str, str]:
    """A real run writing model.pkl (after committing a change): its id and commit."""
    if new_commit:
        write(root, "notes.txt", f"training {label}\n")
        commit(root, f"train {label}")
    runbase_cmd("run", "--", PY, "train.py", label, cwd=root, check=True)
    runs = json.loads(runbase_cmd("ls", "--json", cwd=root, check=True).stdout)
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return runs[0]["id"], head


def tagged(
    root: Path, store: Store, change: Callable[[], list[registry.Event]], **check: Any
) -> list[str]:
    """One registry change with --git-tag, as the CLI makes it: check, change, tag."""
    gto.check_taggable(root, store, "churn", **check)
    return gto.tag_events(root, store, change())


@pytest.fixture
def repo(project: Path) -> Path:
    identity(project)
    write(project, ".gitignore", "*.log\nmodel.pkl\n")
    write(project, "train.py", TRAIN)
    commit(project, "train.py")
    return project


# ---------------------------------------------------------------- tags read by gto


def test_tags_read_back_by_gto(repo: Path, gto_bin: Path) -> None:
    run1, c1 = train(repo, "one")
    run2, c2 = train(repo, "two")
    store, actor = Store.open(repo / ".runbase"), registry.local_actor()

    def reg(run: str) -> list[registry.Event]:
        return registry.register(
            store, "churn", registry.source_of_run_path(store, run, "model.pkl"),
            message=f"from {run}", actor=actor,
        )  # fmt: skip

    src1 = registry.source_of_run_path(store, run1, "model.pkl")
    assert tagged(repo, store, lambda: reg(run1), action="register", commit=src1.git_commit) == [
        "churn@v0.0.1"
    ]
    assert tagged(repo, store, lambda: reg(run2), action="register", commit=c2) == ["churn@v0.0.2"]
    promote = registry.promote
    assert tagged(
        repo, store,
        lambda: promote(store, "churn", "v0.0.1", "prod", message="first", actor=actor),
        action="promote", version="v0.0.1", stage="prod",
    ) == ["churn#prod#1"]  # fmt: skip
    assert tagged(
        repo, store,
        lambda: promote(store, "churn", "v0.0.2", "prod", message="better", actor=actor),
        action="promote", version="v0.0.2", stage="prod",
    ) == ["churn#prod#2"]  # fmt: skip
    assert tagged(
        repo, store,
        lambda: promote(store, "churn", "v0.0.2", "staging", message=None, actor=actor),
        action="promote", version="v0.0.2", stage="staging",
    ) == ["churn#staging#3"]  # fmt: skip
    assert tagged(
        repo, store,
        lambda: registry.rollback(store, "churn", "prod", message="v0.0.2 broke", actor=actor),
        action="rollback", stage="prod",
    ) == ["churn#prod#4"]  # fmt: skip

    # after the rollback: GTO and runbase agree on every stage and version
    shown = gto_json(gto_bin, repo, "show")["churn"]
    assert shown["version"] == "v0.0.2"
    assert (
        shown["stage"]
        == registry.stages(store, "churn")
        == {
            "prod": "v0.0.1",
            "staging": "v0.0.2",
        }
    )
    versions = {v["version"]: v for v in gto_json(gto_bin, repo, "show", "churn")}
    here = {v.version: v for v in registry.versions(store, "churn")}
    assert set(versions) == set(here) == {"v0.0.1", "v0.0.2"}
    assert versions["v0.0.1"]["commit_hexsha"] == here["v0.0.1"].git_commit == c1
    assert versions["v0.0.2"]["commit_hexsha"] == here["v0.0.2"].git_commit == c2
    for v, item in versions.items():
        assert sorted(s["stage"] for s in item["stages"]) == sorted(here[v].stages)

    assert tagged(
        repo, store,
        lambda: registry.demote(store, "churn", "prod", message="retired", actor=actor),
        action="demote", stage="prod",
    ) == ["churn#prod!#5", "churn#prod!#6"]  # fmt: skip  # the older v0.0.2 first: GTO never shows it
    assert gto_json(gto_bin, repo, "show")["churn"]["stage"] == {"staging": "v0.0.2"}
    assert registry.stages(store, "churn") == {"staging": "v0.0.2"}

    # gto history is runbase's log, event by event, with its messages and times
    history = gto_json(gto_bin, repo, "history", "churn", "--ascending")
    got = [(e["event"], e["version"], e["stage"], e["message"], e["commit"]) for e in history]
    assert got == [
        ("registration", "v0.0.1", None, f"from {run1}", c1),
        ("registration", "v0.0.2", None, f"from {run2}", c2),
        ("assignment", "v0.0.1", "prod", "first", c1),
        ("assignment", "v0.0.2", "prod", "better", c2),
        ("assignment", "v0.0.2", "staging",
         "Assigning stage staging to artifact churn version v0.0.2", c2),
        ("assignment", "v0.0.1", "prod", "v0.0.2 broke", c1),
        ("unassignment", "v0.0.2", "prod", "retired", c2),
        ("unassignment", "v0.0.1", "prod", "retired", c1),
    ]  # fmt: skip
    log = registry.events(store, "churn")
    assert [e.action for e in log] == [
        "register", "register", "promote", "promote", "promote", "rollback", "demote",
    ]  # fmt: skip
    stamps = [e["timestamp"] for e in history]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    # a second import of what runbase wrote changes nothing
    before = len(registry.events(store))
    report = gto.import_gto(store, repo, actor)
    assert report["imported"] == []
    assert len(registry.events(store)) == before


# ---------------------------------------------------------------- refusals


def test_refusals_leave_no_tag(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run1, c1 = train(repo, "one")
    run2, _ = train(repo, "two", new_commit=False)  # the same commit, other bytes
    store, actor = Store.open(repo / ".runbase"), registry.local_actor()
    src1 = registry.source_of_run_path(store, run1, "model.pkl")
    src2 = registry.source_of_run_path(store, run2, "model.pkl")
    assert src1.git_commit == src2.git_commit == c1 and src1.oid != src2.oid
    events = registry.register(store, "churn", src1, actor=actor)
    assert gto.tag_events(repo, store, events) == ["churn@v0.0.1"]

    # another version on a commit that carries one: refused before the change...
    with pytest.raises(UsageError, match="already carries churn@v0.0.1"):
        gto.check_taggable(repo, store, "churn", "register", commit=src2.git_commit)
    # ... and by tag_events after it, writing nothing
    events = registry.register(store, "churn", src2, actor=actor)
    with pytest.raises(UsageError, match="one version of an artifact per commit"):
        gto.tag_events(repo, store, events)
    assert tag_names(repo) == ["churn@v0.0.1"]
    # promoting the untagged version would register it there first: refused too
    with pytest.raises(UsageError, match="already carries"):
        gto.check_taggable(repo, store, "churn", "promote", version="v0.0.2", stage="prod")
    assert tag_names(repo) == ["churn@v0.0.1"]

    # not a git repository
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="not in a git repository"):
        gto.check_taggable(plain, store, "churn", "promote", version="v0.0.1", stage="prod")
    with pytest.raises(UsageError, match="not in a git repository"):
        gto.tag_events(plain, store, registry.promote(
            store, "churn", "v0.0.1", "prod", message=None, actor=actor
        ))  # fmt: skip

    # a repository that lacks the version's commit
    other = tmp_path / "other"
    subprocess.run([*GIT, "init", "-q", str(other)], check=True)
    identity(other)
    write(other, "a.txt", "a\n")
    commit(other, "other")
    with pytest.raises(UsageError, match="does not have"):
        gto.check_taggable(other, store, "churn", "promote", version="v0.0.1", stage="staging")
    assert tag_names(other) == []
    assert tag_names(repo) == ["churn@v0.0.1"]

    # git has no identity to sign tags with (no user.name / user.email anywhere)
    subprocess.run(["git", "-C", str(repo), "config", "--unset", "user.email"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "--unset", "user.name"], check=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("EMAIL", "")
    for var in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UsageError, match="git has no identity"):
        gto.check_taggable(repo, store, "churn", "promote", version="v0.0.1", stage="staging")
    assert tag_names(repo) == ["churn@v0.0.1"]


def test_external_version_tagged_at_head(repo: Path) -> None:
    write(repo, "ext.bin", "outside bytes\n")
    store, actor = Store.open(repo / ".runbase", create=True), registry.local_actor()
    source = registry.source_of_file(store, str(repo / "ext.bin"), external=True)
    gto.check_taggable(repo, store, "churn", "register", commit=None)
    names = gto.tag_events(repo, store, registry.register(store, "churn", source, actor=actor))
    assert names == ["churn@v0.0.1"]
    (tag,) = gto.read_tags(repo)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tag.commit == head and "tagged at HEAD" in tag.message


# ---------------------------------------------------------------- import


def test_import_registry_made_by_gto(repo: Path, gto_bin: Path) -> None:
    # c1: the model is committed to git (no run made these bytes)
    write(repo, "artifacts.yaml", "churn:\n  type: model\n  path: model.pkl\n")
    write(repo, ".gitignore", "*.log\n")
    write(repo, "model.pkl", "weights in git\n")
    c1 = commit(repo, "model in git")
    gto_cmd(gto_bin, repo, "register", "churn", c1, "-m", "first by hand")
    gto_cmd(gto_bin, repo, "assign", "churn", "--version", "v0.0.1", "--stage", "staging")
    # c2: model.pkl is ignored by git; a runbase run at c2 wrote it
    (repo / "model.pkl").unlink()
    write(repo, ".gitignore", "*.log\nmodel.pkl\n")
    subprocess.run([*GIT, "-C", str(repo), "rm", "-q", "--cached", "model.pkl"], check=False)
    run2, c2 = train(repo, "two")
    gto_cmd(gto_bin, repo, "register", "churn", c2, "--bump-minor")
    gto_cmd(gto_bin, repo, "assign", "churn", "--version", "v0.1.0", "--stage", "prod")
    gto_cmd(gto_bin, repo, "assign", "churn", "--version", "v0.0.1", "--stage", "prod")
    gto_cmd(gto_bin, repo, "deprecate", "churn", "v0.0.1", "prod")
    # c3: a registered version whose bytes are nowhere: reported, not dropped
    write(repo, "notes.txt", "no model here\n")
    c3 = commit(repo, "nothing trained")
    gto_cmd(gto_bin, repo, "register", "churn", c3)
    # a tag GTO ignores: lightweight
    subprocess.run(["git", "-C", str(repo), "tag", "churn@v9.0.0", c1], check=True)

    store, actor = Store.open(repo / ".runbase"), registry.local_actor()
    report = gto.import_gto(store, repo, actor)
    versions = {v.version: v for v in registry.versions(store, "churn")}
    assert set(versions) == {"v0.0.1", "v0.1.0"}
    assert versions["v0.0.1"].external and versions["v0.0.1"].git_commit == c1
    assert versions["v0.0.1"].message == "first by hand"
    assert versions["v0.1.0"].run_id == run2 and versions["v0.1.0"].git_commit == c2
    shown = gto_json(gto_bin, repo, "show")["churn"]["stage"]
    assert registry.stages(store, "churn") == shown == {"staging": "v0.0.1", "prod": "v0.1.0"}
    log = [(e.action, e.stage, e.to_version) for e in registry.events(store, "churn")]
    assert log == [
        ("register", None, None),
        ("register", None, None),
        ("promote", "staging", "v0.0.1"),
        ("promote", "prod", "v0.1.0"),
        ("promote", "prod", "v0.0.1"),
        ("rollback", "prod", "v0.1.0"),
    ]
    imported = [(i["tag"], i["action"]) for i in report["imported"]]
    assert imported == [
        ("churn@v0.0.1", "register"),
        ("churn@v0.1.0", "register"),
        ("churn#staging#1", "assign"),
        ("churn#prod#2", "assign"),
        ("churn#prod#3", "assign"),
        ("churn#prod!#4", "unassign"),
    ]
    problems = {p["tag"]: p["detail"] for p in report["problems"]}
    assert set(problems) == {"churn@v0.1.1", "churn@v9.0.0"}
    assert "no run of this store" in problems["churn@v0.1.1"]
    assert "lightweight" in problems["churn@v9.0.0"]
    assert "external" in next(i for i in report["imported"] if i["tag"] == "churn@v0.0.1")["detail"]

    # a second import adds nothing
    before = len(registry.events(store))
    again = gto.import_gto(store, repo, actor)
    assert again["imported"] == []
    assert len(registry.events(store)) == before
    assert {s["tag"] for s in again["skipped"]} >= {"churn@v0.0.1", "churn@v0.1.0", "churn#prod!#4"}
    assert registry.verify(store).ok


# ---------------------------------------------------------------- the CLI


def test_cli_git_tag_and_import(repo: Path, gto_bin: Path) -> None:
    run1, c1 = train(repo, "one")
    run2, c2 = train(repo, "two")

    def model(*args: str) -> Any:
        proc = runbase_cmd("model", *args, "--json", cwd=repo, check=True)
        return json.loads(proc.stdout)

    assert model("register", "churn", f"{run1}:model.pkl", "-m", "one", "--git-tag")[
        "git_tags"
    ] == ["churn@v0.0.1"]
    model("register", "churn", f"{run2}:model.pkl", "-m", "two", "--git-tag")
    model("promote", "churn", "v0.0.1", "--to", "production", "-m", "go", "--git-tag")
    model("promote", "churn", "v0.0.2", "--to", "production", "-m", "better", "--git-tag")
    model("rollback", "churn", "production", "-m", "broke", "--git-tag")
    shown = model("show", "churn")
    assert shown["stages"] == {"production": "v0.0.1"}
    assert gto_json(gto_bin, repo, "show")["churn"]["stage"] == shown["stages"]
    gto_versions = {
        v["version"]: v["commit_hexsha"] for v in gto_json(gto_bin, repo, "show", "churn")
    }
    assert gto_versions == {v["version"]: v["git_commit"] for v in shown["versions"]}
    assert gto_versions == {"v0.0.1": c1, "v0.0.2": c2}
    model("demote", "churn", "--from", "production", "-m", "retired", "--git-tag")
    assert (
        gto_json(gto_bin, repo, "show")["churn"]["stage"] == model("show", "churn")["stages"] == {}
    )

    # gto history and runbase model log: the same changes, messages and order
    history = gto_json(gto_bin, repo, "history", "churn", "--ascending")
    log = model("log", "churn")["events"]
    assert [e["message"] for e in history] == [
        "one", "two", "go", "better", "broke", "retired", "retired",
    ]  # fmt: skip  # the demote unassigns both versions GTO still showed
    assert [e["message"] for e in log] == ["one", "two", "go", "better", "broke", "retired"]
    assert [(e["event"], e["version"]) for e in history][:5] == [
        ("registration", "v0.0.1"), ("registration", "v0.0.2"), ("assignment", "v0.0.1"),
        ("assignment", "v0.0.2"), ("assignment", "v0.0.1"),
    ]  # fmt: skip

    # refused before the change: another version on a commit that carries one
    run3, _ = train(repo, "three", new_commit=False)
    tags = tag_names(repo)
    proc = runbase_cmd(
        "model", "register", "churn", f"{run3}:model.pkl", "--git-tag", cwd=repo
    )  # fmt: skip
    assert proc.returncode != 0 and "already carries churn@v0.0.2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tag_names(repo) == tags
    assert [v["version"] for v in model("show", "churn")["versions"]] == ["v0.0.2", "v0.0.1"]

    # import-gto of the repository runbase tagged: nothing new
    report = model("import-gto")
    assert report["imported"] == [] and report["problems"] == []
    assert len(model("log", "churn")["events"]) == 6


def test_import_directory_deregistered_and_foreign_names(repo: Path, gto_bin: Path) -> None:
    write(repo, "artifacts.yaml", "net:\n  path: models/net\n")
    write(repo, "models/net/weights.bin", "w1\n")
    write(repo, "models/net/conf/layers.txt", "3\n")
    c1 = commit(repo, "net v1")
    write(repo, "models/net/weights.bin", "w2\n")
    c2 = commit(repo, "net v2")
    write(repo, "models/net/weights.bin", "w3\n")
    c3 = commit(repo, "net v3")
    t0 = int(time.time())

    def tag(name: str, rev: str, seconds: int) -> None:
        env = {**os.environ, "GIT_COMMITTER_DATE": f"{t0 + seconds} +0000"}
        subprocess.run(
            ["git", "-C", str(repo), "tag", "-a", name, "-m", name, rev], env=env, check=True
        )

    tag("net@v1.0.0", c1, 0)
    tag("net#production#1", c1, 1)
    tag("net@v1.1.0", c2, 2)
    tag("net@v1.1.0!", c2, 3)  # deregistered: GTO shows it no more
    tag("Net-Upper@v0.0.1", c1, 4)  # GTO allows capitals, runbase names do not
    tag("net@v2.0.0-rc.1", c3, 5)  # a pre-release: not a runbase version

    store, actor = Store.open(repo / ".runbase", create=True), registry.local_actor()
    report = gto.import_gto(store, repo, actor)
    (version,) = registry.versions(store, "net")
    assert (version.version, version.kind, version.external) == ("v1.0.0", "dir", True)
    assert version.path == "models/net" and version.git_commit == c1
    assert registry.stages(store, "net") == {"production": "v1.0.0"}
    shown = gto_json(gto_bin, repo, "show")
    assert shown["net"]["version"] == "v2.0.0-rc.1"  # runbase cannot hold it: a problem
    assert shown["net"]["stage"] == {"production": "v1.0.0"}
    problems = {p["tag"] for p in report["problems"]}
    assert problems == {"net@v1.1.0", "net@v1.1.0!", "Net-Upper@v0.0.1", "net@v2.0.0-rc.1"}

    # the directory's bytes are delivered exactly
    out = repo / "delivered"
    runbase_cmd("model", "get", "net@production", "-o", str(out), cwd=repo, check=True)
    assert (out / "weights.bin").read_text() == "w1\n"
    assert (out / "conf" / "layers.txt").read_text() == "3\n"


# ---------------------------------------------------------------- the grammar


NAMES = [
    "churn@v1.2.0", "churn@v1.2.0!", "churn#prod#3", "churn#prod!#4", "churn#prod",
    "churn@deprecated", "churn@v0.0.1#2", "models/net@v1.0.0", "dir=net@v1.0.0",
    "churn@v2.0.0-rc.1", "churn@v2.0.0+build.5", "my_model-2#stage_1#10",
    "churn@1.2.0", "churn@v1.2", "v1.0", "release-3", "churn#", "-churn@v1.0.0",
    "churn@v01.2.0", "churn@latest", "a@v0.0.1",
]  # fmt: skip


def test_tag_grammar_is_gtos(gto_bin: Path) -> None:
    """Our reader of GTO's tag names agrees with GTO's own on every shape."""
    script = (
        "import json, sys\n"
        "from gto.tag import parse_name\n"
        "out = {}\n"
        "for n in json.load(sys.stdin):\n"
        "    p = parse_name(n, raise_on_fail=False)\n"
        "    out[n] = None if not p else {\n"
        "        'artifact': p['name'], 'action': p['action'].value if 'action' in p else 'created',\n"
        "        'version': p.get('version'), 'stage': p.get('stage'), 'counter': p.get('counter')}\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(gto_bin.parent / "python"), "-c", script],
        input=json.dumps(NAMES), capture_output=True, text=True, check=True,
    )  # fmt: skip
    theirs = json.loads(proc.stdout)
    for name in NAMES:
        assert gto.parse_tag_name(name) == theirs[name], name


# ---------------------------------------------------------------- review 2: hostile input


def _annotated_tag(repo: Path, name: str, rev: str) -> None:
    subprocess.run(["git", "-C", str(repo), "tag", "-a", name, "-m", name, rev], check=True)


def test_a_message_starting_with_hash_is_kept(repo: Path, gto_bin: Path) -> None:
    """git's default cleanup drops lines starting with '#' from -m: tags are written
    verbatim, so GTO shows the message whole."""
    run1, c1 = train(repo, "one")
    store, actor = Store.open(repo / ".runbase"), registry.local_actor()
    source = registry.source_of_run_path(store, run1, "model.pkl")
    message = "#42 fixed drift\n# second line, a hash too"
    assert tagged(
        repo, store,
        lambda: registry.register(store, "churn", source, message=message, actor=actor),
        action="register", commit=c1,
    ) == ["churn@v0.0.1"]  # fmt: skip
    assert tagged(
        repo, store,
        lambda: registry.promote(store, "churn", "v0.0.1", "prod", message="#7", actor=actor),
        action="promote", version="v0.0.1", stage="prod",
    ) == ["churn#prod#1"]  # fmt: skip
    history = gto_json(gto_bin, repo, "history", "churn", "--ascending")
    assert [e["message"].strip() for e in history] == [message, "#7"]
    ours = {t.name: t.message for t in gto.read_tags(repo)}
    assert ours == {"churn@v0.0.1": message, "churn#prod#1": "#7"}


def test_import_of_deeply_nested_annotations_is_a_problem(repo: Path) -> None:
    """A hostile artifacts.yaml ('[' * 5000) makes PyYAML recurse past Python's limit
    (RecursionError, not a YAMLError): it is a reported problem, never a traceback."""
    write(repo, "artifacts.yaml", "[" * 5000)
    write(repo, "models/net.bin", "w1\n")
    c1 = commit(repo, "deep yaml")
    _annotated_tag(repo, "net@v1.0.0", c1)
    store, actor = Store.open(repo / ".runbase", create=True), registry.local_actor()
    report = gto.import_gto(store, repo, actor)
    assert report["imported"] == []
    [problem] = report["problems"]
    assert problem["tag"] == "net@v1.0.0"
    assert "artifacts.yaml" in problem["detail"] and "RecursionError" in problem["detail"]
    proc = runbase_cmd("model", "import-gto", "--json", cwd=repo)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert registry.list_models(store) == []


def test_import_of_a_missing_git_object_is_a_problem(repo: Path) -> None:
    """A tree naming a blob the repository lacks (a partial clone, damage): `cat-file
    --batch` answers '<sha> missing', reported as a problem of that version."""
    write(repo, "artifacts.yaml", "net:\n  path: models/net\n")
    write(repo, "models/net/weights.bin", "w1\n")
    write(repo, "models/net/conf.txt", "3\n")
    c1 = commit(repo, "net v1")
    write(repo, "models/net/weights.bin", "w2\n")
    c2 = commit(repo, "net v2")
    _annotated_tag(repo, "net@v1.0.0", c1)
    _annotated_tag(repo, "net@v1.1.0", c2)
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{c1}:models/net/weights.bin"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (repo / ".git" / "objects" / sha[:2] / sha[2:]).unlink()  # a loose object: just written
    store, actor = Store.open(repo / ".runbase", create=True), registry.local_actor()
    report = gto.import_gto(store, repo, actor)
    [problem] = report["problems"]
    assert problem["tag"] == "net@v1.0.0"
    assert f"git has no object {sha}" in problem["detail"], problem
    assert "models/net/weights.bin" in problem["detail"]
    # the other version is imported from its own, complete tree
    assert [v.version for v in registry.versions(store, "net")] == ["v1.1.0"]
    assert [i["tag"] for i in report["imported"]] == ["net@v1.1.0"]
    # nothing copied out of git is left behind in the store's tmp directory
    assert not list((repo / ".runbase" / "tmp").glob("runbase-gto-*"))


def test_import_refuses_files_past_the_cap(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes copied out of git are capped (per file, per import), on git's declared
    size before any is copied; the caps are lowered here to see them work."""
    write(repo, "artifacts.yaml", "big:\n  path: big.bin\nsmall:\n  path: small.bin\n")
    write(repo, "big.bin", "x" * 5000)
    write(repo, "small.bin", "y" * 3000)
    c1 = commit(repo, "two models")
    _annotated_tag(repo, "big@v1.0.0", c1)
    _annotated_tag(repo, "small@v1.0.0", c1)
    monkeypatch.setattr(gto, "MAX_GIT_FILE", 4000)
    monkeypatch.setattr(gto, "MAX_GIT_IMPORT", 2000)
    store, actor = Store.open(repo / ".runbase", create=True), registry.local_actor()
    report = gto.import_gto(store, repo, actor)
    details = {p["tag"]: p["detail"] for p in report["problems"]}
    assert "is 5000 bytes, over the 4000 bytes" in details["big@v1.0.0"]
    assert "would copy over 2000 bytes out of git in all" in details["small@v1.0.0"]
    assert report["imported"] == []
    monkeypatch.setattr(gto, "MAX_GIT_IMPORT", 4000)
    report = gto.import_gto(store, repo, actor)
    assert [i["tag"] for i in report["imported"]] == ["small@v1.0.0"]
