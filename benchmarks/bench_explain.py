"""What ``runbase explain`` costs beyond the hybrids' own run time: materializing a hybrid.

A 2,000-file git repository (``make_git_repo``) with 1 GiB of inputs (``data/``, eight
128 MiB files of random bytes), recorded by ``runbase run -i data``. Then, on each file
system given:

* ``runbase``: ``tracking.hybrid.Workspace`` materializes the run once from the store
  (``base``: the code tree and the inputs, verified), then ``Workspace.make`` clones it
  into one hybrid with one code file and one input file taken from "B" (what explain
  does per hybrid; ``remove`` afterwards);
* ``by hand``: ``git worktree add --detach`` of the commit, ``cp -a`` of the inputs into
  it (GNU cp: a reflink where the file system offers one), then ``cp`` of the same two
  files: the same hybrid set up the way one would without runbase.

Medians of ``--repeats`` (5) hybrids each. Target: <= 0.3 s per hybrid where the file system
has reflinks, no slower than ``cp`` elsewhere.

    .venv/bin/python benchmarks/bench_explain.py [--reflink-dir /mnt/xfs] [--data-mib 1024]

``--reflink-dir``: a directory on a file system with reflinks (XFS made with
``reflink=1``, Btrfs), e.g. a loop device: ``truncate -s 6G x.img; mkfs.xfs -m reflink=1
x.img; mount -o loop x.img /mnt/xfs``. The default scratch directory (``$RUNBASE_BENCH_TMP``
or /tmp) is measured always.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PYTHON,
    clean_env,
    git,
    header,
    make_git_repo,
    print_table,
    rmtree,
    target,
    write_result,
)

DATA_FILES = 8


def _fs_type(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True)
    lines = out.stdout.split()
    return lines[-1] if len(lines) > 1 else "?"


def _project(root: Path, files: int, data_mib: int) -> tuple[str, str]:
    """The repository and its recorded run; returns (run id, one code file's path)."""
    paths = make_git_repo(root, files)
    data = root / "data"
    data.mkdir()
    chunk = data_mib * (1 << 20) // DATA_FILES
    for i in range(DATA_FILES):
        with open(data / f"part{i}.bin", "wb") as f:
            for _ in range(chunk // (16 << 20) or 1):
                f.write(os.urandom(min(chunk, 16 << 20)))
    with open(root / ".gitignore", "a") as f:
        f.write("data/\n")
    git(root, "commit", "-q", "-am", "ignore data")
    cmd = [PYTHON, "-m", "runbase", "run", "-q", "-i", "data", "--", PYTHON, "-c", "pass"]
    subprocess.run(cmd, cwd=root, env=clean_env(), check=True, capture_output=True)
    show = [PYTHON, "-m", "runbase", "show", "latest", "--json", "--no-patch"]
    rec = json.loads(
        subprocess.run(show, cwd=root, env=clean_env(), check=True, capture_output=True).stdout
    )
    return rec["id"], paths[len(paths) // 2]


def _measure(root: Path, run: str, code_file: str, repeats: int) -> dict[str, Any]:
    """Both ways, interleaved (one hybrid each per round), each after a ``sync``: the
    writeback of one way's gigabyte must not slow the other's writes."""
    from runbase.store import Store
    from runbase.tracking.hybrid import Workspace

    store = Store.open(root / ".runbase")
    code_bytes, data_bytes = b"# B's version\nx = 2\n", os.urandom(1 << 20)
    b_code = {"type": "f", "oid": store.objects.put_bytes(code_bytes)}
    b_data = {"type": "f", "oid": store.objects.put_bytes(data_bytes)}
    (root.parent / "b_code.py").write_bytes(code_bytes)
    (root.parent / "b_part0.bin").write_bytes(data_bytes)
    os.sync()
    t0 = time.perf_counter()
    ws = Workspace(store, run, root.parent / "hybrids")
    base_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {"make": [], "remove": [], "hand": [], "hand_remove": []}
    for i in range(repeats):
        os.sync()
        t0 = time.perf_counter()
        h = ws.make(f"h{i}", {code_file: b_code}, {"data/part0.bin": b_data})
        times["make"].append(time.perf_counter() - t0)
        links = sum(
            p.stat().st_nlink > 1 for p in h.rglob("*") if p.is_file() and not p.is_symlink()
        )
        assert links == 0, f"{links} hard-linked files in a hybrid"
        t0 = time.perf_counter()
        ws.remove(f"h{i}")
        times["remove"].append(time.perf_counter() - t0)
        os.sync()
        times["hand"].append(_by_hand(root, root.parent / f"wt{i}", code_file))
        t0 = time.perf_counter()
        git(root, "worktree", "remove", "--force", str(root.parent / f"wt{i}"))
        times["hand_remove"].append(time.perf_counter() - t0)
    ours = {
        "base_s": base_s,
        # the first hybrid is a clone of the base; each later one re-uses the hybrid
        # given back before it, reset to the base (Workspace.make)
        "first_make_s": times["make"][0],
        "make_s": statistics.median(times["make"][1:] or times["make"]),
        "make_all_s": times["make"],
        "remove_s": statistics.median(times["remove"]),
        "reflinks": ws.reflinks,
        "not_restorable": len(ws.not_restorable),
    }
    theirs = {
        "make_s": statistics.median(times["hand"]),
        "make_all_s": times["hand"],
        "remove_s": statistics.median(times["hand_remove"]),
    }
    rmtree(ws.root)
    store.close()
    return {"runbase": ours, "by_hand": theirs}


def _by_hand(root: Path, wt: Path, code_file: str) -> float:
    """``git worktree add`` of the commit, the inputs copied in, B's two files over them."""
    t0 = time.perf_counter()
    git(root, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    subprocess.run(["cp", "-a", str(root / "data"), str(wt / "data")], check=True)
    subprocess.run(["cp", str(root.parent / "b_code.py"), str(wt / code_file)], check=True)
    subprocess.run(
        ["cp", str(root.parent / "b_part0.bin"), str(wt / "data" / "part0.bin")], check=True
    )
    return time.perf_counter() - t0


def _case(where: Path, files: int, data_mib: int, repeats: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rb-bench-explain-", dir=where))
    try:
        t0 = time.perf_counter()
        run, code_file = _project(work / "proj", files, data_mib)
        record_s = time.perf_counter() - t0
        subprocess.run(["sync"], check=False)
        both = _measure(work / "proj", run, code_file, repeats)
        return {
            "dir": str(where),
            "fs": _fs_type(work),
            "files": files,
            "data_mib": data_mib,
            "setup_and_record_s": record_s,
            **both,
        }
    finally:
        rmtree(work)


# -- the whole of explain, beside the same hybrids by hand ------------------------------

TRAIN = """
import argparse, runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
from helpers import scale
rows = [float(x) for x in open("data/train.csv").read().split()]
runbase.summary(acc=scale(sum(rows) / len(rows)), lr_seen=args.lr)
"""


def _rb(root: Path, *args: str) -> str:
    cmd = [PYTHON, "-m", "runbase", *args]
    return subprocess.run(
        cmd, cwd=root, env=clean_env(), check=True, capture_output=True, text=True
    ).stdout


def _last_id(root: Path) -> str:
    return str(json.loads(_rb(root, "ls", "--json", "--limit", "1"))[0]["id"])


def _three_factors(root: Path) -> tuple[str, str, list[str]]:
    """A and B differ by the data (decisive), a param, a code comment."""
    (root / "train.py").write_text(TRAIN)
    (root / "helpers.py").write_text("def scale(x):\n    return x / 10\n")
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("1 2 3 4\n")
    with open(root / ".gitignore", "a") as f:
        f.write("data/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "train")
    _rb(root, "run", "-q", "--", PYTHON, "train.py", "--lr", "0.1")
    a = _last_id(root)
    (root / "data" / "train.csv").write_text("1 2 3 4 10 10\n")
    (root / "helpers.py").write_text("def scale(x):\n    # divide by ten\n    return x / 10\n")
    _rb(root, "run", "-q", "--", PYTHON, "train.py", "--lr", "0.2")
    return a, _last_id(root), ["python", "train.py", "--lr", "0.1"]


def _forty_files(root: Path) -> tuple[str, str, list[str]]:
    """40 changed code files; one of them moves the metric."""
    n = 40
    for i in range(n):
        d = root / "abcd"[i % 4]
        d.mkdir(exist_ok=True)
        (d / f"mod{i:02d}.py").write_text(f"VALUE = {1.0 if i == 17 else 0.0}\n")
    imports = "\n".join(f"from {'abcd'[i % 4]} import mod{i:02d}" for i in range(n))
    total = " + ".join(f"mod{i:02d}.VALUE" for i in range(n))
    (root / "train.py").write_text(f"import runbase\n{imports}\nrunbase.summary(acc={total})\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "code")
    _rb(root, "run", "-q", "--", PYTHON, "train.py")
    a = _last_id(root)
    for i in range(n):
        value = 3.0 if i == 17 else 0.0
        (root / "abcd"[i % 4] / f"mod{i:02d}.py").write_text(f"# edited\nVALUE = {value}\n")
    _rb(root, "run", "-q", "--", PYTHON, "train.py")
    return a, _last_id(root), ["python", "train.py"]


def _total(where: Path, name: str, files: int, make: Any) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rb-bench-explain-total-", dir=where))
    try:
        root = work / "proj"
        make_git_repo(root, files)
        a, b, argv = make(root)
        t0 = time.perf_counter()
        report = json.loads(_rb(root, "explain", a, b, "--metric", "acc", "-j", "1", "--json"))
        explain_s = time.perf_counter() - t0
        n = report["hybrids"]["run"]
        # by hand: the same number of hybrids, each a worktree of A's commit, the inputs
        # copied in, one file taken from B, the command run as a tracked run
        commit = json.loads(_rb(root, "show", a, "--json", "--no-patch"))["code"]["commit"]
        store = str(root / ".runbase")
        t0 = time.perf_counter()
        for i in range(n):
            wt = work / f"wt{i}"
            git(root, "worktree", "add", "-q", "--detach", str(wt), commit)
            if (root / "data").is_dir():
                subprocess.run(["cp", "-a", str(root / "data"), str(wt / "data")], check=True)
            subprocess.run(["cp", str(root / "train.py"), str(wt / "train.py")], check=True)
            cmd = [PYTHON, "-m", "runbase", "--store", store, "run", "-q", "--no-code", "--"]
            subprocess.run(
                [*cmd, PYTHON, *argv[1:]], cwd=wt, env=clean_env(), check=False, capture_output=True
            )
            git(root, "worktree", "remove", "--force", str(wt))
        by_hand_s = time.perf_counter() - t0
        return {
            "case": name,
            "files": files,
            "hybrids": n,
            "factors": len(report["factors"]),
            "top": report["factors"][0]["name"] if report["factors"] else None,
            "method": report["search"]["method"],
            "explain_s": explain_s,
            "hybrid_runs_s": report["hybrids"]["seconds"],
            "by_hand_s": by_hand_s,
            "overhead_per_hybrid_s": (explain_s - by_hand_s) / n if n else None,
        }
    finally:
        rmtree(work)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--data-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reflink-dir", type=Path, help="a directory on XFS (reflink=1) or Btrfs")
    ap.add_argument("--no-totals", action="store_true", help="only the materializing")
    args = ap.parse_args()
    header(f"explain: one hybrid of {args.files} files + {args.data_mib} MiB of inputs")
    dirs = [Path(os.environ.get("RUNBASE_BENCH_TMP") or tempfile.gettempdir())]
    if args.reflink_dir:
        dirs.append(args.reflink_dir)
    cases = [_case(d, args.files, args.data_mib, args.repeats) for d in dirs]
    totals = []
    if not args.no_totals:
        for name, make in (("3 factors", _three_factors), ("40 files", _forty_files)):
            totals.append(_total(dirs[0], name, args.files, make))
    rows = []
    for c in cases:
        ours, theirs = c["runbase"], c["by_hand"]
        limit = 0.3 if ours["reflinks"] else theirs["make_s"]
        rows.append(
            [
                f"{c['fs']} ({c['dir']})",
                "reflink" if ours["reflinks"] else "copy",
                f"{ours['base_s']:.2f} s",
                f"{ours['first_make_s']:.3f} s",
                f"{ours['make_s']:.3f} s",
                f"{theirs['make_s']:.3f} s",
                f"{ours['remove_s']:.3f} s / {theirs['remove_s']:.3f} s",
                target(ours["make_s"], limit),
            ]
        )
    print_table(
        [
            "file system",
            "clone",
            "base (once)",
            "first hybrid",
            "each next hybrid",
            "worktree + cp",
            "remove (rb / by hand)",
            "target",
        ],
        rows,
    )
    if totals:
        print_table(
            [
                "case",
                "hybrids",
                "search",
                "top factor",
                "explain -j 1",
                "same hybrids by hand",
                "per hybrid",
            ],
            [
                [
                    t["case"],
                    t["hybrids"],
                    t["method"],
                    t["top"],
                    f"{t['explain_s']:.1f} s",
                    f"{t['by_hand_s']:.1f} s",
                    "-"
                    if t["overhead_per_hybrid_s"] is None
                    else f"{t['overhead_per_hybrid_s']:+.2f} s",
                ]
                for t in totals
            ],
            title=f"explain end to end ({args.files}-file repository, small inputs, {dirs[0]})",
        )
    write_result(
        "explain",
        {"files": args.files, "data_mib": args.data_mib, "cases": cases, "totals": totals},
    )


if __name__ == "__main__":
    main()
