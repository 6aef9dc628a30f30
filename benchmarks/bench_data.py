"""Data snapshot (hash + store into the object store) vs ``dvc add``.

Two data sets of 1 GiB of random bytes: ``many`` = 10,000 files of 105 KiB in 100
sub-directories, ``one`` = a single 1 GiB file. Each lives twice (one copy for runbase,
one for DVC, so neither tool's links or state touch the other's files), and every
mtime is set 10 minutes into the past first (runbase never caches files modified
within the last 2 s). Cases, for both tools:

* first (store on disk): an empty store / a fresh ``dvc init`` with an empty DVC site
  cache (where its hash state lives), on the file system of the data: every byte
  hashed and copied into the store. The "cp floor" is ``cp -r data DEST`` on the same
  file system: what copying the bytes costs at all on this machine;
* first, store on tmpfs: the same with the runbase store, the DVC cache (``dvc cache
  dir``) and the cp destination under /dev/shm: the CPU and system-call part, without
  the disk's write-back (very noisy on this VM);
* first, hash only: ``policy="hash-only"`` vs ``dvc add --no-commit`` (nothing copied);
* unchanged: the store of the last "first" again, nothing changed (stat cache / DVC
  state);
* one changed: 4 KiB overwritten in one file (of the 10,000, or in the 1 GiB file), its
  mtime set to a different past time; a different file (offset) each repetition.

"first" rounds run runbase, DVC and cp one after the other in an order that rotates
with each repetition. runbase is timed in a fresh process per measurement (``python
-c``): ``Store.open(path)`` then ``runbase.capture.files.snapshot_path(store,
"data")``, the call timed in-process, and the whole process's wall time; DVC as the
wall time of ``dvc add data`` (analytics off). Peak RSS is the process's VmHWM
(runbase: read by the worker at its end; DVC: sampled every 5 ms from /proc).
``os.sync()`` runs before every timed command so the write-back of an earlier
measurement does not land in the next one; the page cache stays warm (the data was
just written, as after a download or a preprocessing step). Neither tool fsyncs.

Also: peak RSS of a first and an unchanged snapshot of 1,000 / 10,000 / 50,000 files
of 1 KiB (is memory flat in the number of files?) and, end to end, ``runbase run
--input data -- true`` vs ``runbase run -- true`` in a git project holding the
(unchanged, git-ignored) data.

    .venv/bin/python benchmarks/bench_data.py [--reps 3] [--skip-dvc] [--no-tmpfs] [--quick]

~9 min on 2 cores. DVC is installed into ``benchmarks/.venvs/dvc`` on first use
(``pip install dvc==3.67.1``). Scratch data (about 10 GiB at most: two copies of the
data, the runbase store and the DVC cache holding up to 4 versions of the 1 GiB file)
goes to ``$RUNBASE_BENCH_TMP`` or the system temp dir and is deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DVC_PIN = "dvc==3.67.1"
GIB = 1 << 30
CHANGE_BYTES = 4096

# The measured process: imports, Store.open, snapshot_path, close; one JSON line out.
WORKER = r"""
import time
t0 = time.perf_counter()
import json, sys
from runbase.store import Store
from runbase.capture.files import snapshot_path
t1 = time.perf_counter()
def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
rss0 = hwm()
store = Store.open(sys.argv[1])
t2 = time.perf_counter()
oid, size = snapshot_path(store, sys.argv[2], policy=sys.argv[3])
t3 = time.perf_counter()
store.close()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "snap_s": t3 - t2,
                  "close_s": t4 - t3, "inproc_s": t4 - t1, "oid": oid, "size": size,
                  "maxrss_before_kib": rss0,
                  "maxrss_kib": hwm()}))
"""


# -- processes -------------------------------------------------------------------------


with open("/proc/self/cmdline", "rb") as _f:
    _MY_CMDLINE = _f.read()


def measured(
    argv: list[str], *, env: dict[str, str], cwd: Path | str | None = None
) -> dict[str, Any]:
    """Run ``argv`` after ``os.sync()``; wall time, peak RSS (sampled VmHWM), stdout."""
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        # Peak RSS: the child's own VmHWM, sampled by a thread until it exits (wait4's
        # ru_maxrss would not do: Linux carries the parent's RSS at fork into the child's).
        hwm = [0]
        done = threading.Event()

        def sample() -> None:
            execd = False  # before exec, /proc/PID shows this process's (v)forked memory
            while not done.is_set():
                if not execd:
                    try:
                        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                            execd = f.read() != _MY_CMDLINE
                    except OSError:
                        pass
                if execd:
                    hwm[0] = max(hwm[0], C.proc_status_kib(p.pid, "VmHWM") or 0)
                done.wait(0.005)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            _pid, status = os.waitpid(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        finally:
            done.set()
        wall = time.perf_counter() - t0
        th.join()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(
            f"command failed ({p.returncode}): {' '.join(argv)}\n{stdout[-2000:]}\n{stderr[-4000:]}"
        )
    return {"wall_s": wall, "maxrss_kib": hwm[0], "stdout": stdout}


def runbase_snap(store: Path, data: Path, policy: str = "store") -> dict[str, Any]:
    r = measured([C.PYTHON, "-c", WORKER, str(store), str(data), policy], env=C.clean_env())
    info = json.loads(r["stdout"].strip().splitlines()[-1])
    info["wall_s"] = r["wall_s"]  # maxrss_kib: the worker's own VmHWM at its end
    return info


def new_store(path: Path) -> None:
    from runbase.store import Store

    C.rmtree(path)
    Store.open(path, create=True).close()


def dvc_env(site_cache: Path) -> dict[str, str]:
    return C.clean_env(DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(site_cache))


def dvc_bin() -> str | None:
    bin_dir = C.ensure_venv("dvc", DVC_PIN, ["dvc", "--version"])
    return str(bin_dir / "dvc") if bin_dir else None


def dvc_reset(dvc: str, repo: Path, site_cache: Path, cache_dir: Path | None = None) -> None:
    """Back to a fresh ``dvc init``: no cache, no state, no .dvc file; the cache in
    ``cache_dir`` if given (else .dvc/cache)."""
    env = dvc_env(site_cache)
    for p in (repo / ".dvc", site_cache):
        C.rmtree(p)
    for f in (repo / ".dvcignore", repo / "data.dvc", repo / ".gitignore"):
        if f.exists():
            f.unlink()
    subprocess.run([dvc, "init", "-q"], cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(
        [dvc, "config", "core.analytics", "false"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    if cache_dir is not None:
        C.rmtree(cache_dir)
        subprocess.run(
            [dvc, "cache", "dir", str(cache_dir)],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
        )


def dvc_add(dvc: str, repo: Path, site_cache: Path, no_commit: bool = False) -> dict[str, Any]:
    argv = [dvc, "add", "-q", *(["--no-commit"] if no_commit else []), "data"]
    return measured(argv, env=dvc_env(site_cache), cwd=repo)


# -- data ---------------------------------------------------------------------------------


def write_many(dirs: list[Path], n_files: int, size: int, n_sub: int = 100) -> None:
    for d in dirs:
        for s in range(n_sub):
            (d / f"part{s:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        body = os.urandom(size)
        rel = f"part{i % n_sub:03d}/f{i:06d}.bin"
        for d in dirs:
            with open(d / rel, "wb") as f:
                f.write(body)


def many_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def write_one(paths: list[Path], size: int) -> None:
    with contextlib.ExitStack() as stack:
        fs = [stack.enter_context(open(p, "wb")) for p in paths]
        left = size
        while left:
            body = os.urandom(min(4 << 20, left))
            for f in fs:
                f.write(body)
            left -= len(body)


def backdate_tree(root: Path, when: float) -> None:
    if root.is_file():
        os.utime(root, (when, when))
        return
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (when, when))


def change_one(paths: list[Path], offset: int, when: float) -> None:
    """Overwrite CHANGE_BYTES at ``offset`` of each path (the same new bytes), mtime ``when``."""
    body = os.urandom(CHANGE_BYTES)
    for p in paths:
        with open(p, "r+b") as f:
            f.seek(offset)
            f.write(body)
        os.utime(p, (when, when))


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _d, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


# -- the cases ------------------------------------------------------------------------------


GOALS = {"first": 1.5, "first_tmpfs": 1.5, "unchanged": 0.1, "one_changed": 0.15}
CASES = ("first", "first_tmpfs", "first_hash_only", "unchanged", "one_changed")
CASE_LABEL = {
    "first": "first (store on disk)",
    "first_tmpfs": "first, store on tmpfs",
    "first_hash_only": "first, hash only",
    "unchanged": "unchanged",
    "one_changed": "one changed",
}


def bench_dataset(
    kind: str,
    tmp: Path,
    shm: Path | None,
    dvc: str | None,
    reps: int,
    reps_unchanged: int,
    n_files: int,
    total: int = GIB,
) -> dict[str, Any]:
    """``kind`` = "many" (n_files files, ``total`` bytes in all) or "one" (one file)."""
    rb_proj, dvc_repo = tmp / f"rb-{kind}", tmp / f"dvc-{kind}"
    rb_proj.mkdir()
    dvc_repo.mkdir()
    rb_data, dvc_data = rb_proj / "data", dvc_repo / "data"
    t0 = time.perf_counter()
    if kind == "many":
        write_many([rb_data, dvc_data], n_files, total // n_files)
        rb_files, dvc_files = many_files(rb_data), many_files(dvc_data)
    else:
        write_one([rb_data, dvc_data], total)
        rb_files, dvc_files = [rb_data], [dvc_data]
    past = time.time() - 600
    backdate_tree(rb_data, past)
    backdate_tree(dvc_data, past)
    C.git(dvc_repo, "init", "-q", "-b", "main")
    print(
        f"[{kind}] wrote 2 x {len(rb_files)} file(s), {du(rb_data) / GIB:.2f} GiB each, "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    store = rb_proj / ".runbase"
    site = tmp / f"dvc-site-{kind}"
    res: dict[str, Any] = {"files": len(rb_files), "bytes": du(rb_data)}
    rb: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    dv: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    cp: dict[str, list[dict[str, Any]]] = {"first": [], "first_tmpfs": []}
    cp_argv = ["cp", "-r"] if kind == "many" else ["cp"]

    def first_round(k: int, case: str, where: Path) -> None:
        """One first snapshot each of runbase and DVC, and the copy floor, in an order
        that rotates with ``k`` (a fresh store / dvc init / empty destination each)."""
        rb_store = store if case != "first_tmpfs" else where / "rb-store"
        cp_dest = where / "cp-floor"
        dvc_cache = None if case != "first_tmpfs" else where / "dvc-cache"
        policy = "hash-only" if case == "first_hash_only" else "store"
        steps: list[tuple[str, Any]] = [("runbase", None)]
        if dvc:
            steps.append(("dvc", None))
        if case in cp:
            steps.append(("cp", None))
        steps = steps[k % len(steps) :] + steps[: k % len(steps)]
        line = []
        for who, _ in steps:
            if who == "runbase":
                new_store(rb_store)
                r = runbase_snap(rb_store, rb_data, policy)
                rb[case].append(r)
                line.append(f"runbase {r['snap_s']:.2f} s ({r['wall_s']:.2f} s process)")
                if rb_store != store:
                    C.rmtree(rb_store)
            elif who == "dvc":
                assert dvc
                dvc_reset(dvc, dvc_repo, site, dvc_cache)
                d = dvc_add(dvc, dvc_repo, site, no_commit=case == "first_hash_only")
                dv[case].append(d)
                line.append(f"dvc add {d['wall_s']:.2f} s")
                if dvc_cache:
                    C.rmtree(dvc_cache)
            else:
                C.rmtree(cp_dest)
                c = measured([*cp_argv, str(rb_data), str(cp_dest)], env=C.clean_env())
                cp[case].append(c)
                line.append(f"cp {c['wall_s']:.2f} s")
                C.rmtree(cp_dest)
        print(f"[{kind}] {CASE_LABEL[case]} #{k + 1}: " + ", ".join(line), flush=True)

    for k in range(reps):
        first_round(k, "first_hash_only", tmp)
    if shm:
        for k in range(reps):
            first_round(k, "first_tmpfs", shm)
    for k in range(reps):  # last: leaves the stores that the next cases use
        first_round(k, "first", tmp)
    res["store_bytes_after_first"] = du(store / "objects")
    if dvc:
        res["dvc_cache_bytes_after_first"] = du(dvc_repo / ".dvc" / "cache")
    # unchanged
    for _ in range(reps_unchanged):
        rb["unchanged"].append(runbase_snap(store, rb_data))
        if dvc:
            dv["unchanged"].append(dvc_add(dvc, dvc_repo, site))
    oids_unchanged = {r["oid"] for r in rb["unchanged"]} | {rb["first"][-1]["oid"]}
    # one changed: a different file (or offset) and a different past mtime each time
    oids_changed = set()
    for k in range(reps):
        if kind == "many":
            i = (k * 3371 + 17) % len(rb_files)
            targets, offset = [rb_files[i], dvc_files[i]], 0
        else:
            targets, offset = [rb_files[0], dvc_files[0]], (k + 1) * (total // (reps + 2))
        change_one(targets, offset, past - 60 * (k + 1))
        r = runbase_snap(store, rb_data)
        rb["one_changed"].append(r)
        oids_changed.add(r["oid"])
        if dvc:
            dv["one_changed"].append(dvc_add(dvc, dvc_repo, site))
    print(
        f"[{kind}] unchanged: runbase {C.summarize([r['snap_s'] for r in rb['unchanged']])['median']:.3f} s; "
        f"one changed: runbase {C.summarize([r['snap_s'] for r in rb['one_changed']])['median']:.3f} s",
        flush=True,
    )
    res["checks"] = {
        "unchanged_same_oid": len(oids_unchanged) == 1,
        "each_change_new_oid": len(oids_changed) == reps and not (oids_changed & oids_unchanged),
        "hash_only_same_oid_as_store": {r["oid"] for r in rb["first_hash_only"]}
        == {r["oid"] for r in rb["first"]},
    }
    res["runbase"] = {case: _summ(rows) for case, rows in rb.items()}
    res["dvc"] = {case: _summ(rows) for case, rows in dv.items()} if dvc else None
    res["copy_floor"] = {case: _summ(rows) for case, rows in cp.items()}
    res["samples"] = {"runbase": rb, "dvc": dv, "copy_floor": cp}
    res["_paths"] = {"rb_proj": str(rb_proj), "dvc_repo": str(dvc_repo)}
    return res


def _summ(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    out = {"wall": C.summarize([r["wall_s"] for r in rows])}
    out["maxrss_kib_max"] = max(r["maxrss_kib"] for r in rows)
    if "snap_s" in rows[0]:
        out["snap"] = C.summarize([r["snap_s"] for r in rows])
        out["open"] = C.summarize([r["open_s"] for r in rows])
        out["import"] = C.summarize([r["import_s"] for r in rows])
        out["maxrss_before_kib_max"] = max(r["maxrss_before_kib"] for r in rows)
    return out


def bench_rss_scaling(
    tmp: Path, counts: list[int], size: int, dvc: str | None
) -> list[dict[str, Any]]:
    """Peak RSS of a first snapshot (and of an unchanged one) vs the number of files."""
    out = []
    for n in counts:
        root = tmp / f"scale-{n}"
        rb_data, dvc_data = root / "rb" / "data", root / "dvc" / "data"
        write_many([rb_data, dvc_data], n, size, n_sub=max(1, n // 100))
        past = time.time() - 600
        backdate_tree(rb_data, past)
        backdate_tree(dvc_data, past)
        store = root / "rb" / ".runbase"
        new_store(store)
        first = runbase_snap(store, rb_data)
        again = runbase_snap(store, rb_data)
        row: dict[str, Any] = {
            "files": n,
            "file_bytes": size,
            "runbase_first_snap_s": first["snap_s"],
            "runbase_first_wall_s": first["wall_s"],
            "runbase_first_maxrss_kib": first["maxrss_kib"],
            "runbase_maxrss_after_import_kib": first["maxrss_before_kib"],
            "runbase_unchanged_snap_s": again["snap_s"],
            "runbase_unchanged_maxrss_kib": again["maxrss_kib"],
        }
        if dvc:
            repo = root / "dvc"
            C.git(repo, "init", "-q", "-b", "main")
            site = root / "dvc-site"
            dvc_reset(dvc, repo, site)
            d1 = dvc_add(dvc, repo, site)
            d2 = dvc_add(dvc, repo, site)
            row.update(
                dvc_first_wall_s=d1["wall_s"],
                dvc_first_maxrss_kib=d1["maxrss_kib"],
                dvc_unchanged_wall_s=d2["wall_s"],
                dvc_unchanged_maxrss_kib=d2["maxrss_kib"],
            )
        print(
            f"[rss] {n} files: runbase first {first['snap_s']:.2f} s, peak {first['maxrss_kib'] / 1024:.1f} MiB"
            + (
                f"; dvc first {row['dvc_first_wall_s']:.2f} s, peak {row['dvc_first_maxrss_kib'] / 1024:.1f} MiB"
                if dvc
                else ""
            ),
            flush=True,
        )
        out.append(row)
        C.rmtree(root)
    return out


def bench_end_to_end(proj: Path, n: int) -> dict[str, Any]:
    """``runbase run --input data -- true`` vs ``runbase run -- true`` (data unchanged,
    stat cache warm from the snapshots above) in a git project that ignores data/."""
    if not (proj / ".git").exists():
        C.git(proj, "init", "-q", "-b", "main")
        (proj / ".gitignore").write_text("data/\n.runbase/\n")
        (proj / "train.py").write_text("print('hi')\n")
        C.git(proj, "add", "-A")
        C.git(proj, "commit", "-q", "-m", "init")
        C.backdate(proj, 300)
    env = C.clean_env()
    cmds = {
        "runbase run -- true": [C.RUNBASE_CLI, "run", "--", "true"],
        "runbase run --input data -- true": [C.RUNBASE_CLI, "run", "--input", "data", "--", "true"],
        "runbase run --no-code --input data -- true": [
            C.RUNBASE_CLI,
            "run",
            "--no-code",
            "--input",
            "data",
            "--",
            "true",
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, list[int]] = {k: [] for k in cmds}
    for argv in cmds.values():  # warm-up (first run in the store creates the env record)
        measured(argv, env=env, cwd=proj)
    for _ in range(n):
        for name, argv in cmds.items():
            r = measured(argv, env=env, cwd=proj)
            times[name].append(r["wall_s"])
            rss[name].append(r["maxrss_kib"])
    out = {
        name: {**C.summarize(ts), "maxrss_kib_max": max(rss[name])} for name, ts in times.items()
    }
    base = out["runbase run -- true"]["median"]
    for name in out:
        out[name]["extra_vs_plain_run_s"] = out[name]["median"] - base
    return out


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3, help="first / one-changed repetitions")
    ap.add_argument("--reps-unchanged", type=int, default=5)
    ap.add_argument("--files", type=int, default=10_000, help="files of the 'many' data set")
    ap.add_argument("--scale", default="1000,10000,50000", help="file counts for the RSS series")
    ap.add_argument("--e2e", type=int, default=5, help="end-to-end repetitions (0: skip)")
    ap.add_argument("--mib", type=int, default=1024, help="size of each data set (MiB)")
    ap.add_argument("--skip-dvc", action="store_true")
    ap.add_argument("--no-tmpfs", action="store_true", help="skip the store-on-/dev/shm case")
    ap.add_argument("--only", default="many,one", help="data sets: many,one")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:  # a smoke test: 128 MiB in 1,000 files, one sample of each
        args.reps, args.reps_unchanged, args.e2e = 1, 2, 2
        args.scale, args.mib, args.files = "1000,5000", 128, 1000

    C.header(f"bench_data: data snapshot (hash + store) vs dvc add, {args.mib} MiB")
    os.environ.update(C.GIT_IDENTITY)
    dvc = None if args.skip_dvc else dvc_bin()
    dvc_version = None
    if dvc:
        dvc_version = subprocess.run(
            [dvc, "--version"], capture_output=True, text=True
        ).stdout.strip()
    tmp = C.scratch_dir("data")
    free = shutil.disk_usage(tmp).free
    fs_type = subprocess.run(
        ["stat", "-f", "-c", "%T", str(tmp)], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"scratch {tmp} ({fs_type}, {free / GIB:.0f} GiB free); dvc {dvc_version or 'skipped'}",
        flush=True,
    )
    if free < 12 * (args.mib << 20):
        sys.exit(f"need ~{12 * args.mib / 1024:.1f} GiB free in {tmp}; set RUNBASE_BENCH_TMP")
    shm = None
    if (
        not args.no_tmpfs
        and os.access("/dev/shm", os.W_OK)
        and shutil.disk_usage("/dev/shm").free > 3 * (args.mib << 20)
    ):
        shm = Path(tempfile.mkdtemp(prefix="rb-bench-data-", dir="/dev/shm"))
    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    e2e: dict[str, Any] = {}
    try:
        for kind in [k for k in args.only.split(",") if k]:
            results[kind] = bench_dataset(
                kind, tmp, shm, dvc, args.reps, args.reps_unchanged, args.files, args.mib << 20
            )
            if args.e2e:
                proj = Path(results[kind]["_paths"]["rb_proj"])
                e2e[kind] = bench_end_to_end(proj, args.e2e)
            for p in results[kind].pop("_paths").values():
                C.rmtree(Path(p))
            C.rmtree(tmp / f"dvc-site-{kind}")
        scale = [int(x) for x in args.scale.split(",") if x]
        rss_rows = bench_rss_scaling(tmp, scale, 1024, dvc) if scale else []
    finally:
        C.rmtree(tmp)
        if shm:
            C.rmtree(shm)
    total_s = time.perf_counter() - t_start

    # -- tables ----------------------------------------------------------------------
    rows = []
    for kind, r in results.items():
        label = f"{r['files']} files" if kind == "many" else "1 file"
        for case in CASES:
            rbc, dvc_c = r["runbase"][case], (r["dvc"] or {}).get(case) or {}
            if not rbc:
                continue
            snap, wall = rbc["snap"]["median"], rbc["wall"]["median"]
            dwall = dvc_c.get("wall", {}).get("median")
            floor = (r["copy_floor"].get(case) or {}).get("wall", {}).get("median")
            goal = GOALS.get(case) if (kind == "many" or case != "one_changed") else None
            rows.append(
                [
                    f"{label}: {CASE_LABEL[case]}",
                    rbc["snap"]["n"],
                    C.ms(snap),
                    f"{C.ms(rbc['snap']['min'])}..{C.ms(rbc['snap']['max'])}",
                    C.ms(wall),
                    C.mib(rbc["maxrss_kib_max"] * 1024),
                    C.ms(dwall),
                    f"{C.ms(dvc_c['wall']['min'])}..{C.ms(dvc_c['wall']['max'])}" if dvc_c else "-",
                    C.mib(dvc_c["maxrss_kib_max"] * 1024) if dvc_c else "-",
                    f"{dwall / wall:.1f}x" if dwall else "-",
                    C.ms(floor),
                    f"<= {goal * 1000:.0f} ms: {C.target(snap, goal)}" if goal else "-",
                ]
            )
    C.print_table(
        [
            "case",
            "n",
            "runbase in-proc",
            "min..max",
            "runbase process",
            "rb peak RSS",
            "dvc add",
            "min..max",
            "dvc peak RSS",
            "dvc/rb (process)",
            "cp floor",
            "goal (in-proc)",
        ],
        rows,
        title=f"data snapshot, {args.mib} MiB of random bytes (medians; in-proc = the snapshot_path "
        "call; process = the whole python process; dvc: whole `dvc add` process; cp floor: cp (-r) of the data, same target)",
    )
    if rss_rows:
        C.print_table(
            [
                "files (1 KiB)",
                "rb first",
                "rb peak RSS first",
                "rb after import",
                "rb unchanged",
                "rb peak RSS unchanged",
                "dvc first",
                "dvc peak RSS first",
                "dvc unchanged",
            ],
            [
                [
                    r["files"],
                    C.ms(r["runbase_first_snap_s"]),
                    C.mib(r["runbase_first_maxrss_kib"] * 1024),
                    C.mib(r["runbase_maxrss_after_import_kib"] * 1024),
                    C.ms(r["runbase_unchanged_snap_s"]),
                    C.mib(r["runbase_unchanged_maxrss_kib"] * 1024),
                    C.ms(r.get("dvc_first_wall_s")),
                    C.mib(r["dvc_first_maxrss_kib"] * 1024) if "dvc_first_maxrss_kib" in r else "-",
                    C.ms(r.get("dvc_unchanged_wall_s")),
                ]
                for r in rss_rows
            ],
            title="peak RSS vs number of files (one sample each)",
        )
    if e2e:
        C.print_table(
            ["data", "command", "n", "median", "min", "max", "extra vs run -- true", "peak RSS"],
            [
                [
                    kind,
                    name,
                    s["n"],
                    C.ms(s["median"]),
                    C.ms(s["min"]),
                    C.ms(s["max"]),
                    C.ms(s["extra_vs_plain_run_s"]),
                    C.mib(s["maxrss_kib_max"] * 1024),
                ]
                for kind, cmds in e2e.items()
                for name, s in cmds.items()
            ],
            title="end to end, data unchanged (peak RSS: the runbase CLI process)",
        )
    checks = {k: r["checks"] for k, r in results.items()}
    print(f"\nchecks: {checks}; bench time {total_s:.0f} s")
    path = C.write_result(
        "data",
        {
            "benchmark": "data",
            "machine": C.machine_info(),
            "dvc_version": dvc_version,
            "scratch_fs": fs_type,
            "bench_seconds": round(total_s, 1),
            "goals_s": GOALS,
            "datasets": results,
            "rss_scaling": rss_rows,
            "end_to_end": e2e,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
