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

import pytest

from conftest import commit, require, runbase_cmd, write

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
