"""The model registry (issue 19) side by side with MLflow's model registry and GTO.

A temp git repository and one ``runbase run`` that writes ``--versions`` model files of
64 KiB (distinct bytes) and one ``--model-mib`` model (random bytes). Then:

* **library**: per version, ``records.registry.register`` (from ``RUN:PATH``) and
  ``promote`` to production, in process; MLflow 3.17.2 (SQLite, its own venv) doing
  the same with ``create_model_version`` + ``set_registered_model_alias`` (worker
  ``_workers/mlflow_registry_worker.py``; its runs and artifacts are set up untimed);
* **cli**: ``runbase model register`` / ``runbase model promote`` as processes, next to
  GTO 1.10.1's ``gto register`` / ``gto assign`` (one commit per version, as GTO needs,
  made untimed), the whole command each;
* **history**: ``runbase model log --json`` and ``runbase model verify`` on that
  registry, ``gto history --json`` on GTO's; ``registry.verify`` of a log of
  ``--events`` events (the hash chain recomputed and replayed against the state);
* **delivery**: ``runbase model get churn@production -o FILE`` of the large model next
  to ``cp`` of the same bytes and MLflow's ``download_artifacts("models:/…@production")``;
  the drift check ``runbase model status churn@production FILE`` (it reads and hashes
  every byte each time, by design) next to ``sha256sum`` of the file.

    .venv/bin/python benchmarks/bench_registry.py [--versions 100] [--cli-n 15] [--events 10000] [--model-mib 1024] [--skip-mlflow] [--skip-gto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RUNBASE_CLI,
    WORKERS_DIR,
    clean_env,
    ensure_venv,
    git,
    header,
    machine_info,
    ms,
    print_table,
    rmtree,
    scratch_dir,
    summarize,
    timed_run,
    write_result,
)

MLFLOW_PIN = "mlflow==3.17.2"
GTO_PIN = "gto==1.10.1"
SMALL = 64 * 1024

MAKE = """
import os, sys
n, big = int(sys.argv[1]), int(sys.argv[2])
os.makedirs("models", exist_ok=True)
for i in range(n):
    with open(f"models/m{i}.pkl", "wb") as f:
        f.write(os.urandom(SMALL))
with open("big.bin", "wb") as f:
    for _ in range(big):
        f.write(os.urandom(1 << 20))
""".replace("SMALL", str(SMALL))


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def make_project(root: Path, versions: int, big_mib: int, env: dict[str, str]) -> str:
    root.mkdir(parents=True)
    git(root, "init", "-q")
    (root / "make.py").write_text(MAKE)
    (root / ".gitignore").write_text("models/\nbig.bin\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    timed_run(
        [RUNBASE_CLI, "run", "--", sys.executable, "make.py", str(versions), str(big_mib)],
        cwd=root,
        env=env,
        timeout=1800,
    )
    p = subprocess.run(
        [RUNBASE_CLI, "ls", "--json"], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return str(json.loads(p.stdout)[0]["id"])


def bench_library(root: Path, run_id: str, versions: int) -> dict[str, Any]:
    from runbase.records import registry
    from runbase.store import Store

    store = Store.open(root / ".runbase")
    actor = registry.local_actor()
    reg, pro = [], []
    for i in range(versions):
        t0 = time.perf_counter()
        src = registry.source_of_run_path(store, run_id, f"models/m{i}.pkl")
        registry.register(store, "lib", src, actor=actor)
        t1 = time.perf_counter()
        registry.promote(store, "lib", f"v0.0.{i + 1}", "production", message="bench", actor=actor)
        t2 = time.perf_counter()
        reg.append(t1 - t0)
        pro.append(t2 - t1)
    t0 = time.perf_counter()
    registry.versions(store, "lib")
    t1 = time.perf_counter()
    registry.resolve_ref(store, "lib@production")
    t2 = time.perf_counter()
    store.close()
    return {
        "register": summarize(reg),
        "promote": summarize(pro),
        "list_versions": t1 - t0,
        "resolve": t2 - t1,
    }


def bench_mlflow(base: Path, versions: int, size: int) -> dict[str, Any] | None:
    bin_dir = ensure_venv("mlflow", MLFLOW_PIN, ["python", "-c", "import mlflow"])
    if bin_dir is None:
        return None
    base.mkdir(parents=True)
    p = subprocess.run(
        [
            str(bin_dir / "python"),
            str(WORKERS_DIR / "mlflow_registry_worker.py"),
            str(base),
            str(versions),
            str(size),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if p.returncode != 0:
        print(p.stderr[-3000:])
        return None
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["register"], out["alias"] = summarize(out["register"]), summarize(out["alias"])
    return out


def bench_cli(root: Path, run_id: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    reg, pro = [], []
    for i in range(n):
        dt, _ = timed_run(
            [RUNBASE_CLI, "model", "register", "cli", f"{run_id}:models/m{i}.pkl"],
            cwd=root,
            env=env,
        )
        reg.append(dt)
        dt, _ = timed_run(
            [
                RUNBASE_CLI,
                "model",
                "promote",
                "cli",
                f"v0.0.{i + 1}",
                "--to",
                "production",
                "-m",
                "bench",
            ],
            cwd=root,
            env=env,
        )
        pro.append(dt)
    log, _ = timed_run([RUNBASE_CLI, "model", "log", "cli", "--json"], cwd=root, env=env)
    ver, _ = timed_run([RUNBASE_CLI, "model", "verify"], cwd=root, env=env)
    return {"register": summarize(reg), "promote": summarize(pro), "log": log, "verify": ver}


def bench_gto(base: Path, n: int) -> dict[str, Any] | None:
    bin_dir = ensure_venv("gto", GTO_PIN, ["gto", "--version"])
    if bin_dir is None:
        return None
    gto = str(bin_dir / "gto")
    env = clean_env()
    base.mkdir(parents=True)
    git(base, "init", "-q")
    reg, assign = [], []
    for i in range(n):
        (base / "model.pkl").write_bytes(os.urandom(SMALL))
        git(base, "add", ".")
        git(base, "commit", "-qm", f"v{i}")
        dt, _ = timed_run([gto, "register", "churn"], cwd=base, env=env)
        reg.append(dt)
        dt, _ = timed_run(
            [gto, "assign", "churn", "--version", f"v0.0.{i + 1}", "--stage", "prod"],
            cwd=base,
            env=env,
        )
        assign.append(dt)
    hist, _ = timed_run([gto, "history", "churn", "--json"], cwd=base, env=env)
    show, _ = timed_run([gto, "show", "churn", "--json"], cwd=base, env=env)
    return {"register": summarize(reg), "assign": summarize(assign), "history": hist, "show": show}


def bench_verify(root: Path, events: int) -> dict[str, Any]:
    """A log of ``events`` events (two versions swapped in and out of staging)."""
    from runbase.records import registry
    from runbase.store import Store

    store = Store.open(root / ".runbase")
    actor = registry.local_actor()
    t0 = time.perf_counter()
    have = len(registry.events(store))
    for i in range(max(0, events - have)):
        registry.promote(
            store, "lib", "v0.0.1" if i % 2 else "v0.0.2", "staging", message=None, actor=actor
        )
    fill = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        report = registry.verify(store)
        times.append(time.perf_counter() - t0)
        assert report.ok, report.problems
    n = len(registry.events(store))
    store.close()
    return {
        "events": n,
        "append_per_event": fill / max(1, events - have),
        "verify": summarize(times),
    }


def bench_delivery(root: Path, run_id: str, env: dict[str, str], reps: int) -> dict[str, Any]:
    timed_run([RUNBASE_CLI, "model", "register", "big", f"{run_id}:big.bin"], cwd=root, env=env)
    timed_run(
        [RUNBASE_CLI, "model", "promote", "big", "v0.0.1", "--to", "production", "-m", "x"],
        cwd=root,
        env=env,
    )
    out, get, cp, sha, check = root / "deploy" / "big.bin", [], [], [], []
    out.parent.mkdir()
    for _ in range(reps):
        out.unlink(missing_ok=True)
        os.sync()  # each step starts with nothing left to write back: the disk's own
        # write-back of the previous GiB would otherwise land on whichever step is next
        dt, _ = timed_run(
            [RUNBASE_CLI, "model", "get", "big@production", "-o", str(out)], cwd=root, env=env
        )
        get.append(dt)
        copy = root / "deploy" / "copy.bin"
        os.sync()
        dt, _ = timed_run(["cp", str(root / "big.bin"), str(copy)])
        cp.append(dt)
        copy.unlink()
        os.sync()
        dt, _ = timed_run(["sha256sum", str(out)])
        sha.append(dt)
        # the drift check reads every byte each time (no cache of sizes and times: a
        # file rewritten in place with its size and mtime kept must not read "in sync")
        dt, _ = timed_run(
            [RUNBASE_CLI, "model", "status", "big@production", str(out)], cwd=root, env=env
        )
        check.append(dt)
    return {
        "get": summarize(get),
        "cp": summarize(cp),
        "sha256sum": summarize(sha),
        "status": summarize(check),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--cli-n", type=int, default=15)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--model-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--skip-gto", action="store_true")
    args = ap.parse_args()
    header("model registry: runbase vs MLflow's registry vs GTO")
    base = scratch_dir("registry")
    env = clean_env()
    result: dict[str, Any] = {"machine": machine_info(), "args": vars(args)}
    try:
        root = base / "project"
        run_id = make_project(root, max(args.versions, args.cli_n), args.model_mib, env)
        result["library"] = bench_library(root, run_id, args.versions)
        result["cli"] = bench_cli(root, run_id, args.cli_n, env)
        if not args.skip_mlflow:
            result["mlflow"] = bench_mlflow(base / "mlflow", args.versions, SMALL)
            big = bench_mlflow(base / "mlflow-big", 1, args.model_mib << 20)
            result["mlflow_download"] = big["download"] if big else None
        if not args.skip_gto:
            result["gto"] = bench_gto(base / "gto", args.cli_n)
        result["verify"] = bench_verify(root, args.events)
        result["delivery"] = bench_delivery(root, run_id, env, args.reps)
    finally:
        rmtree(base)
    report(result)
    write_result("registry", result)


def report(r: dict[str, Any]) -> None:
    lib, ml, cli, gto = r["library"], r.get("mlflow") or {}, r["cli"], r.get("gto") or {}

    def med(d: dict[str, Any] | None, key: str) -> str:
        v = (d or {}).get(key)
        return ms(v.get("median") if isinstance(v, dict) else v)

    print_table(
        ["operation (in process)", "runbase", "MLflow 3.17.2 (SQLite)"],
        [
            ["register a version", med(lib, "register"), med(ml, "register")],
            ["promote / set alias", med(lib, "promote"), med(ml, "alias")],
            ["list versions", ms(lib["list_versions"]), ms(ml.get("list_versions"))],
            ["resolve @production", ms(lib["resolve"]), ms(ml.get("resolve_alias"))],
        ],
        title=f"library, {r['args']['versions']} versions (medians per call)",
    )
    print_table(
        ["command (a process each)", "runbase", "GTO 1.10.1"],
        [
            ["register", med(cli, "register"), med(gto, "register")],
            ["promote / assign", med(cli, "promote"), med(gto, "assign")],
            ["history (--json)", ms(cli["log"]), ms(gto.get("history"))],
            ["verify the log", ms(cli["verify"]), "(no equivalent)"],
        ],
        title=f"CLI, {r['args']['cli_n']} versions",
    )
    v = r["verify"]
    print_table(
        ["log", "append per event", "verify (chain + replay)"],
        [[f"{v['events']:,} events", ms(v["append_per_event"]), med(v, "verify")]],
        title="audit chain",
    )
    d = r["delivery"]
    print_table(
        ["step", "runbase", "anchor"],
        [
            [
                "deliver the model",
                med(d, "get"),
                f"cp {med(d, 'cp')}; MLflow download {ms(r.get('mlflow_download'))}",
            ],
            ["drift check (every byte read)", med(d, "status"), f"sha256sum {med(d, 'sha256sum')}"],
        ],
        title=f"delivery of a {r['args']['model_mib']} MiB model",
    )


if __name__ == "__main__":
    main()
