"""`runbase diff --format markdown` and `runbase explain --format markdown`: the report a
CI job posts as a pull-request comment (docs/ci.md), made from real runs in a real git
repo, read back with a real Markdown parser (markdown-it-py) to check that its tables
are tables and that nothing a run recorded becomes HTML."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from conftest import commit, require, runbase_cmd, write
from runbase.analysis.metrickinds import metric_direction

PY = sys.executable
HOSTILE = "a|b\nsecond line <img src=x onerror=alert(1)> `tick` <script>x</script> **bold**"

TRAIN = """
import argparse, os
import runbase

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
runbase.param("note", os.environ.get("NOTE", "plain"))
for i in range(int(os.environ.get("EXTRA_PARAMS", "0"))):
    runbase.param(f"p{i:02d}", i)
rows = open("data/train.csv").read().split()
good = sum(1 for r in rows if r == "1")
runbase.summary(
    acc=good / len(rows), loss=1 - good / len(rows), epoch_time=1 + args.lr * 5, score=10 + good
)
with open("model.bin", "wb") as f:
    f.write(bytes(good))
"""


def _last_id(project: Path) -> str:
    out = runbase_cmd("ls", "--json", "--limit", "1", cwd=project, check=True).stdout
    return str(json.loads(out)[0]["id"])


def _site(tmp_path: Path, packages: dict[str, str]) -> str:
    """A folder with the dist-info of each package: on PYTHONPATH, the run records them."""
    site = tmp_path / ("site-" + "-".join(f"{n}{v}" for n, v in packages.items()))
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return str(site)


def _two_runs(project: Path, tmp_path: Path) -> tuple[str, str]:
    """A; then B with every section changed: params (a hostile value and 20 new ones),
    metrics, code (a diff of 300+ lines, a new file), data, packages, exit status."""
    write(project, ".gitignore", "data/\nmodel.bin\n")
    write(project, "train.py", TRAIN)
    commit(project, "train")
    write(project, "data/train.csv", "1\n0\n0\n0\n")
    env_a = {"PYTHONPATH": _site(tmp_path, {"fakepkg": "1.0", "olddep": "0.5", "pinned": "3.0"})}
    runbase_cmd(
        "run", "-q", "-n", "main-run", "--", PY, "train.py", cwd=project, env=env_a, check=True
    )
    a = _last_id(project)
    padding = "".join(f"# line {i}\n" for i in range(300))
    write(project, "train.py", TRAIN + padding)
    write(project, "util.py", "X = 1\n")
    commit(project, "longer")
    write(project, "data/train.csv", "1\n1\n1\n0\n")
    env_b = {
        "PYTHONPATH": _site(tmp_path, {"fakepkg": "2.0", "newdep": "1.0", "pinned": "2.5"}),
        "NOTE": HOSTILE,
        "EXTRA_PARAMS": "20",
    }
    runbase_cmd(
        "run", "-q", "-n", "pr|<b>x</b>", "--", PY, "train.py", "--lr", "0.2",
        cwd=project, env=env_b, check=True,
    )  # fmt: skip
    return a, _last_id(project)


def _md(project: Path, *args: str) -> str:
    return runbase_cmd(*args, "--format", "markdown", cwd=project, check=True).stdout


def _parse(markdown: str) -> list[Any]:
    """The tokens of the comment as GitHub's parser reads it: CommonMark with GFM tables
    and raw HTML allowed (so an injected tag would show as an html token)."""
    markdown_it = require("markdown_it")
    return list(markdown_it.MarkdownIt("commonmark").enable("table").parse(markdown))


def _tables(markdown: str) -> list[list[list[str]]]:
    """Each table of the comment as rows of cell texts (header first), as rendered."""
    markdown_it = require("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    out = []
    for body in re.findall(r"<table>(.*?)</table>", html, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
        out.append([re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows])
    return out


def _html_tags(markdown: str) -> set[str]:
    """The HTML tags the comment carries itself (html_block / html_inline tokens)."""
    tags: set[str] = set()
    for tok in _parse(markdown):
        found = [tok] + list(tok.children or [])
        for t in found:
            if t.type in ("html_block", "html_inline"):
                tags.update(re.findall(r"</?([a-zA-Z]+)", t.content))
    return tags


def _blake3(data: bytes) -> str:
    return str(require("blake3").blake3(data).hexdigest())


def test_diff_markdown_tables_escaping_and_truncation(project: Path, tmp_path: Path) -> None:
    a, b = _two_runs(project, tmp_path)
    md = _md(project, "diff", a, b)
    lines = md.splitlines()
    # the verdict: A vs B (B's name escaped), the metrics that moved most with their
    # direction when the name tells it, how many more, and the other sections
    assert lines[0] == (
        f"**runbase diff** A `{a[:10]}` (main-run) → B `{b[:10]}` (pr\\|&lt;b&gt;x&lt;/b&gt;): "
        "**acc** +200.0% (better), **loss** -66.7% (better), **epoch\\_time** +33.3%, "
        "and 1 more; params, code, data, environment, command and exit status changed"
    )
    assert "*unchanged:" not in md  # every section changed

    def section(title: str) -> list[str]:
        start = lines.index(f"#### {title}")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#### ")), None)
        return lines[start + 2 : end]

    # metrics: A, B, delta, %, and better/worse where the direction is known
    assert section("Metrics")[:6] == [
        "| metric | A | B | Δ | % |  |",
        "| --- | --: | --: | --: | --: | --- |",
        "| acc ↑ | 0.25 | 0.75 | +0.5 | +200.0% | better |",
        "| loss ↓ | 0.75 | 0.25 | -0.5 | -66.7% | better |",
        "| epoch\\_time (timing) | 1.5 | 2 | +0.5 | +33.3% |  |",
        "| score | 11 | 13 | +2 | +18.2% |  |",
    ]
    # params: the hostile value stays in its cell, every character escaped; 22 rows
    # (2 changed, 20 added) capped at 15 with the count of the rest
    params = section("Params")
    assert params[:4] == [
        "| param | A | B |",
        "| --- | --- | --- |",
        "| lr | 0.1 | 0.2 |",
        "| note | plain | a\\|b<br>second line &lt;img src=x onerror=alert(1)&gt; \\`tick\\` "
        "&lt;script&gt;x&lt;/script&gt; \\*\\*bold\\*\\* |",
    ]
    assert params[4:17] == [f"| p{i:02d} | — | {i} |" for i in range(13)]
    assert params[17:19] == ["", "*and 7 more*"]
    # code: the commits, the files with their line counts, the diff folded and cut
    code = section("Code")
    head_a, head_b = (
        json.loads(runbase_cmd("show", r, "--json", cwd=project, check=True).stdout)["code"]
        for r in (a, b)
    )
    assert code[0] == (
        f"A `{head_a['commit'][:10]}` on `main` → B `{head_b['commit'][:10]}` on `main` · "
        "2 files changed"
    )
    assert code[2:6] == [
        "| file | change | lines |",
        "| --- | --- | --: |",
        "| train.py | changed | +300 −0 |",
        "| util.py | added | +1 −0 |",
    ]
    fold = code.index("<details><summary>the diff (310 lines)</summary>")
    assert code[fold + 2 : fold + 4] == ["```diff", "--- a/train.py"]
    close = code.index("```", fold + 3)
    assert close - (fold + 3) == 200  # MAX_DIFF_LINES shown
    assert code[close + 2] == (
        f"*110 more lines not shown* (`runbase diff {a} {b} --code` shows them)"
    )
    # data: inputs and outputs with short hashes, sizes and what changed inside
    csv_a, csv_b = _blake3(b"1\n0\n0\n0\n")[:12], _blake3(b"1\n1\n1\n0\n")[:12]
    bin_a, bin_b = _blake3(bytes(1))[:12], _blake3(bytes(3))[:12]
    assert section("Data")[:4] == [
        "|  | path | A | B | change |",
        "| --- | --- | --- | --- | --- |",
        f"| input | data/train.csv | `{csv_a}` 8 B | `{csv_b}` 8 B | 2 of 3 rows differ |",
        f"| output | model.bin | `{bin_a}` 1 B | `{bin_b}` 3 B | other bytes |",
    ]
    assert section("Environment")[:6] == [
        "| package | A | B | change |",
        "| --- | --- | --- | --- |",
        "| fakepkg | 1.0 | 2.0 | ↑ upgraded |",
        "| pinned | 3.0 | 2.5 | ↓ downgraded |",
        "| newdep | — | 1.0 | added |",
        "| olddep | 0.5 | — | removed |",
    ]
    assert lines[-1] == f"<sub>`runbase diff {a} {b}` shows the whole report</sub>"

    # read as GitHub reads it: six tables, the hostile value one cell, shown as text
    tables = _tables(md)
    assert [t[0] for t in tables] == [
        ["metric", "A", "B", "Δ", "%", ""],
        ["param", "A", "B"],
        ["file", "change", "lines"],
        ["", "path", "A", "B", "change"],
        ["package", "A", "B", "change"],
        ["", "A", "B"],
    ]
    assert tables[1][2] == [
        "note",
        "plain",
        "a|b<br>second line &lt;img src=x onerror=alert(1)&gt; `tick` "
        "&lt;script&gt;x&lt;/script&gt; **bold**",
    ]
    assert all(len(row) == len(t[0]) for t in tables for row in t)
    # the only HTML is the report's own: no tag a run recorded
    assert _html_tags(md) == {"details", "summary", "br", "sub"}


def test_json_alias_and_conflicting_formats(project: Path, tmp_path: Path) -> None:
    a, b = _two_runs(project, tmp_path)
    as_json = runbase_cmd("diff", a, b, "--json", cwd=project, check=True).stdout
    as_format = runbase_cmd("diff", a, b, "--format", "json", cwd=project, check=True).stdout
    assert as_json == as_format and json.loads(as_json)["b"]["id"] == b
    text = runbase_cmd("diff", a, b, cwd=project, check=True).stdout
    assert runbase_cmd("diff", a, b, "--format", "text", cwd=project, check=True).stdout == text
    bad = runbase_cmd("diff", a, b, "--json", "--format", "markdown", cwd=project)
    assert bad.returncode == 2
    assert "--json and --format markdown ask for different formats" in bad.stderr
    unknown = runbase_cmd("diff", a, b, "--format", "html", cwd=project)
    assert unknown.returncode == 2 and "'html' is not one of" in unknown.stderr


EXPLAIN_TRAIN = """
import argparse
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
rows = [float(x) for x in open("data/points.txt").read().split()]
runbase.summary(acc=sum(rows) * 0.01 + args.lr * 0.01)
"""


def test_explain_markdown(project: Path) -> None:
    write(project, "train.py", EXPLAIN_TRAIN)
    write(project, ".gitignore", "data/\n")
    commit(project, "train")
    write(project, "data/points.txt", "1\n2\n3\n")
    runbase_cmd("run", "-q", "--", PY, "train.py", "--lr", "0.1", cwd=project, check=True)
    a = _last_id(project)
    write(project, "data/points.txt", "10\n20\n30\n")
    runbase_cmd("run", "-q", "--", PY, "train.py", "--lr", "0.2", cwd=project, check=True)
    b = _last_id(project)
    r = runbase_cmd("explain", a, b, "-j", "2", "--format", "markdown", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    md = r.stdout
    lines = md.splitlines()
    assert lines[0] == (
        f"**runbase explain** acc: 0.061 → 0.602 (+0.541, better) from A `{a[:10]}` to B "
        f"`{b[:10]}`; mostly data/points.txt (+0.54, 99.8% of it)"
    )
    assert lines[2] == (
        "noise: A and B each re-run once (`--repeats K` measures the spread); "
        "effects within ±1e-09 are not significant"
    )
    old, new = _blake3(b"1\n2\n3\n")[:6], _blake3(b"10\n20\n30\n")[:6]
    start = lines.index("**Factors**, largest effect first")
    assert lines[start + 2 : start + 6] == [
        "| # | effect | share | kind | change | alone / removed from B |  |",
        "| --: | --: | --: | --- | --- | --: | --- |",
        f"| 1 | **+0.54** | 99.8% | data | data/points.txt {old}… → {new}…, +3 −3 lines "
        "(of 3 → 3) | +0.54 / +0.54 |  |",
        "| 2 | **+0.001** | 0.2% | param | params.lr 0.1 → 0.2 | +0.001 / +0.001 |  |",
    ]
    fold = next(i for i, line in enumerate(lines) if line.startswith("<details>"))
    assert lines[fold].startswith(
        "<details><summary>search: one-at-a-time, 2 of a budget of 50 hybrids; "
        "hybrids: 4 run, 0 cached, "
    )
    assert lines[-1] == (
        f"<sub>`runbase explain {a} {b}` with the same options shows the text report</sub>"
    )
    tables = _tables(md)
    assert len(tables) == 1 and [row[0] for row in tables[0]] == ["#", "1", "2"]
    assert _html_tags(md) == {"details", "summary", "sub"}

    # every hybrid is cached now: --json and --format json print the same report
    # (but the seconds each call took)
    def doc(*fmt: str) -> dict[str, Any]:
        out = runbase_cmd("explain", a, b, *fmt, cwd=project, check=True).stdout
        report = json.loads(out)
        del report["hybrids"]["seconds"]
        return dict(report)

    assert doc("--json") == doc("--format", "json")
    bad = runbase_cmd("explain", a, b, "--json", "--format", "text", cwd=project)
    assert bad.returncode == 2 and "ask for different formats" in bad.stderr


def test_params_only_diff_and_one_run_head(project: Path) -> None:
    write(project, "train.py", EXPLAIN_TRAIN.replace("runbase.summary(", "0 and runbase.summary("))
    write(project, ".gitignore", "data/\n")
    write(project, "data/points.txt", "1\n")
    commit(project, "train")
    runbase_cmd(
        "run", "-q", "-n", "a", "--", PY, "train.py", "--lr", "0.1", cwd=project, check=True
    )
    a = _last_id(project)
    runbase_cmd(
        "run", "-q", "-n", "b", "--", PY, "train.py", "--lr", "0.2", cwd=project, check=True
    )
    b = _last_id(project)
    md = _md(project, "diff", a, b)
    assert md.splitlines()[:3] == [
        f"**runbase diff** A `{a[:10]}` (a) → B `{b[:10]}` (b): no metric changed; params changed",
        "",
        "*unchanged: metrics, code, data, environment, command and exit status*",
    ]
    assert "#### Params\n\n| param | A | B |\n| --- | --- | --- |\n| lr | 0.1 | 0.2 |\n\n" in md
    assert "#### Metrics" not in md and "<details>" not in md
    same = _md(project, "diff", a, a)
    assert (
        same.splitlines()[0]
        == f"**runbase diff** A `{a[:10]}` (a) → B `{a[:10]}` (a): no difference"
    )

    # one run: its uncommitted change against its commit, folded
    write(project, "train.py", EXPLAIN_TRAIN + "print('```')\n")  # now logs acc
    runbase_cmd("run", "-q", "-n", "c", "--", PY, "train.py", cwd=project, check=True)
    c = _last_id(project)
    commit_id = json.loads(runbase_cmd("show", c, "--json", cwd=project, check=True).stdout)[
        "code"
    ]["commit"]
    md = _md(project, "diff", c)
    lines = md.splitlines()
    assert lines[0] == (
        f"**runbase diff** `{c[:10]}` (c): uncommitted changes against `{commit_id[:10]}` on `main`"
    )
    assert lines[2].startswith("<details><summary>the diff (")
    # the change holds three backticks: the fence is longer, so the diff cannot close it
    assert lines[4] == "````diff" and "+print('```')" in lines
    fences = [t for t in _parse(md) if t.type == "fence"]
    assert len(fences) == 1 and fences[0].info == "diff" and "+print('```')" in fences[0].content


def test_generic_helpers() -> None:
    from runbase.render import markdown as m

    assert m.escape("- item") == "\\- item" and m.escape("-0.5") == "-0.5"
    assert m.escape("1. x") == "1\\. x" and m.escape("1.5") == "1.5"
    assert m.escape("---") == "\\---" and m.escape("# h") == "\\# h"
    assert m.escape("a\r\nb\rc\nd") == "a<br>b<br>c<br>d"
    assert m.escape("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert m.escape("\x1b[31m") == "\\\\x1b\\[31m"  # shown as its escape, not sent
    assert m.escape("x" * 100, limit=10) == "x" * 9 + "…"
    # a recorded value notifies no one: no mention of a user or team, an address stays
    assert m.escape("@octocat, (@org/team) a@b.com") == "@\u2060octocat, (@\u2060org/team) a@b.com"
    bold = m.Markdown("**kept**")
    assert m.escape(bold) is bold
    assert m.code("0mc3eqcv2z") == "`0mc3eqcv2z`" and m.code("a|`b`") == "a\\|\\`b\\`"
    assert m.details("<b>x</b>\n **y**", "body") == (
        "<details><summary>&lt;b&gt;x&lt;/b&gt; **y**</summary>\n\nbody\n\n</details>"
    )
    assert metric_direction("val/top1_acc") == "higher"
    assert metric_direction("eval_loss") == "lower"
    assert metric_direction("train_runtime") is None  # timing: not judged
    assert metric_direction("loss_acc") is None and metric_direction("score") is None

    # a table cut to max_rows, the count of the rest after a blank line (or it would
    # be read as a row); cells escaped, numbers formatted, None empty, Markdown kept
    text = m.table(["k", "v"], [["a|b", 1.5], ["c", None], [bold, 3]], max_rows=2, align="lr")
    assert text == ("| k | v |\n| --- | --: |\n| a\\|b | 1.5 |\n| c |  |\n\n*and 1 more*")
    tables = _tables(text)
    assert tables == [[["k", "v"], ["a|b", "1.5"], ["c", ""]]]

    # a code block cut by lines, then by characters; the note says how many are left
    block = m.code_block("\n".join(f"l{i}" for i in range(10)), "diff", max_lines=3)
    assert block == "```diff\nl0\nl1\nl2\n```\n\n*7 more lines not shown*"
    block = m.code_block("aaaa\nbbbb\ncccc", "", max_chars=10, more="see `x`")
    assert block == "```\naaaa\nbbbb\n```\n\n*1 more line not shown* (see `x`)"
    assert m.code_block("x", "diff\n<script>") == "```\nx\n```"  # no info string from input


def test_diff_of_runs_on_a_team_server_as_ci_does(project: Path, tmp_path: Path) -> None:
    """docs/ci.md: in a fresh checkout with the token in $RUNBASE_TOKEN, `runbase diff
    team:RUN URL --format markdown` pulls both runs (without their data files) first."""
    import conftest

    conftest.require("fastapi")
    conftest.require("uvicorn")
    a, b = _two_runs(project, tmp_path)
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
        ci = tmp_path / "ci"
        ci.mkdir()
        env = {"RUNBASE_CONFIG": str(tmp_path / "ci-config.json"), "RUNBASE_TOKEN": token}
        runbase_cmd("remote", "add", "team", server.url, cwd=ci, env=env, check=True)
        r = runbase_cmd(
            "diff", "team:main-run", f"{server.url}/p/default/runs/{b}", "--format", "markdown",
            cwd=ci, env=env,
        )  # fmt: skip
    finally:
        server.kill()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pulling main-run from {server.url} (project default)" in r.stderr
    # the same report as on the machine that ran them, but for the content of the data
    # file whose bytes stayed on the server
    here = _md(project, "diff", a, b).splitlines()
    there = r.stdout.splitlines()
    assert len(here) == len(there)
    differ = [(x, y) for x, y in zip(here, there, strict=True) if x != y]
    assert len(differ) == 1
    csv_a, csv_b = _blake3(b"1\n0\n0\n0\n")[:12], _blake3(b"1\n1\n1\n0\n")[:12]
    assert differ[0][1] == (
        f"| input | data/train.csv | `{csv_a}` 8 B | `{csv_b}` 8 B | contents not compared: "
        f"the bytes of blake3:{csv_a}… are not stored |"
    )


def test_explain_markdown_of_every_part_and_hostile_names() -> None:
    """A report of the documented shape (docs/explain.md) with every part present: a run
    that does not reproduce, NaN as the JSON writes it, a factor that breaks the run,
    interactions, untestable and untried items, failed hybrids, and names with markup."""
    from runbase.render.markdown import explain_markdown

    doc: dict[str, Any] = {
        "explain_version": 1,
        "id": "x0123456789a",
        "a": "0mc191nz6p2tzg1q",
        "b": "0mc191r629k3a7d1",
        "metric": "val_loss",
        "a_value": 0.5,
        "b_value": 0.75,
        "total": 0.25,
        "measured": {"a": 0.55, "b": 0.75, "total": 0.2},
        "noise": {
            "repeats": 2,
            "a": [0.55, 0.55],
            "b": [0.75, 0.75],
            "spread": 0.001,
            "threshold": 0.001,
            "a_reproduces": False,
            "b_reproduces": True,
        },
        "factors": [
            {
                "kind": "code",
                "name": "src/a|b.py",
                "description": "src/a|b.py +1 −1 <img src=x onerror=alert(1)>",
                "effect": 0.15,
                "effect_alone": 0.15,
                "effect_removed": "NaN",
                "share": 75.0,
                "significant": True,
                "breaks_run": False,
            },
            {
                "kind": "param",
                "name": "params.x",
                "description": "params.x 1 → 2\nsecond line",
                "effect": 0.0005,
                "effect_alone": 0.0005,
                "effect_removed": 0.0004,
                "share": 0.25,
                "significant": False,
                "breaks_run": False,
            },
            {
                "kind": "data",
                "name": "data/`x`.csv",
                "description": "data/`x`.csv",
                "effect": None,
                "effect_alone": None,
                "effect_removed": None,
                "share": None,
                "significant": False,
                "breaks_run": True,
            },
        ],
        "interactions": [{"factors": ["params.x", "src/a|b.py"], "effect": 0.05}],
        "untestable": [{"kind": "env", "name": "<script>", "reason": "needs --env venv"}],
        "untried": [{"name": "src/z.py", "reason": "budget exhausted"}],
        "search": {"method": "shapley", "budget": 10, "used": 10, "notes": ["*all* tried"]},
        "hybrids": {
            "run": 12,
            "cached": 0,
            "failed": 1,
            "seconds": 3.25,
            "runs": [
                {
                    "run": "0mc1bbbbbbbbbbbb",
                    "role": "hybrid",
                    "factors": ["data/`x`.csv"],
                    "value": None,
                    "status": "failed",
                    "cached": False,
                }
            ],
        },
        "unexplained": 0.05,
    }
    md = explain_markdown(doc)
    lines = md.splitlines()
    assert lines[0] == (
        "**runbase explain** val\\_loss: 0.5 → 0.75 (+0.25, worse) from A `0mc191nz6p` to "
        "B `0mc191r629`; mostly src/a\\|b.py (+0.15, 75.0% of it)"
    )
    assert lines[2:5] == [
        "> **A (`0mc191nz6p`) does not reproduce its recorded val\\_loss**: recorded 0.5, "
        "re-runs gave 0.55, 0.55",
        ">",
        "> the effects below are measured on the re-runs, not the recorded values",
    ]
    assert lines[6:8] == [
        "measured on the re-runs: 0.55 → 0.75 (+0.2)<br>",
        "noise: A and B each re-run 2×, spread 0.001; effects within ±0.001 are not significant",
    ]
    start = lines.index("**Factors**, largest effect first")
    assert lines[start + 4 : start + 7] == [
        "| 1 | **+0.15** | 75.0% | code | src/a\\|b.py +1 −1 &lt;img src=x onerror=alert(1)&gt; "
        "| +0.15 / NaN |  |",
        "| 2 | +0.0005 | 0.2% | param | params.x 1 → 2<br>second line | +0.0005 / +0.0004 "
        "| not significant |",
        "| 3 | — |  | data | data/\\`x\\`.csv | — / — | **breaks the run** |",
    ]
    assert "| params.x + src/a\\|b.py | +0.05 |" in lines
    assert "| env | &lt;script&gt; | needs --env venv |" in lines
    fold = lines.index(
        "<details><summary>search: shapley, 10 of a budget of 10 hybrids; "
        "hybrids: 12 run, 0 cached, 1 failed, 3.2 s</summary>"
    )
    assert lines[fold + 2 : fold + 6] == [
        "- \\*all\\* tried",
        "- not tried: src/z.py: budget exhausted",
        "- unexplained by the factors above: +0.05",
        "- failed: data/\\`x\\`.csv: `runbase logs 0mc1bbbbbb`",
    ]
    tables = _tables(md)
    assert [len(t) for t in tables] == [4, 2, 2]  # factors, interactions, not tested
    assert all(len(row) == len(t[0]) for t in tables for row in t)
    assert _html_tags(md) == {"details", "summary", "br", "sub"}


def test_the_ci_jobs_of_docs_ci_use_commands_and_options_that_exist() -> None:
    """docs/ci.md's workflows are YAML, and each `runbase` command they run (but the
    registry's `model`, specified in docs/models.md) names options the CLI has."""
    import shlex

    import click
    import yaml

    from runbase.cli import main

    text = (Path(__file__).parent.parent / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    for block in blocks:
        assert yaml.safe_load(block)
    calls = [
        shlex.split(m.split(";")[0].split(">")[0].split("||")[0].split(")")[0])
        for m in re.findall(r"\brunbase (?:[a-z]+)[^\n]*", "\n".join(blocks))
    ]
    seen = set()
    ctx = click.Context(main)
    for call in calls:
        name = call[1]
        if name == "model":
            continue
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            name, cmd = call[2], cmd.get_command(ctx, call[2])
        assert cmd is not None, call
        known = {opt for p in cmd.params for opt in p.opts}
        own = call[: call.index("--")] if "--" in call else call  # not the command's
        used = {arg.split("=")[0] for arg in own if arg.startswith("-")}
        assert used <= known, (call, used - known)
        seen.add(name)
    assert {"run", "push", "pull", "diff", "explain", "add"} <= seen
