"""The MLflow client against runbase's MLflow API (issue 20) and against MLflow's own server.

The SAME unmodified client worker (``_workers/mlflow_compat_worker.py``, run with the
MLflow 3.17.2 venv's python) is pointed at

* **runbase**: ``runbase server`` (SQLite db + a local object directory, 1 worker), URI
  ``http://127.0.0.1:PORT/p/default/mlflow``, a writer's token as ``MLFLOW_TRACKING_TOKEN``;
* **mlflow**: ``mlflow server`` (SQLite backend, ``--serve-artifacts`` into a local
  directory, 1 worker),

both on free ports, in ``--rounds`` rounds that alternate which server goes first (so a
drift in machine load hits both alike). Each round measures (details in the worker):
per-call latency of ``create_run``+end, ``log_param``, ``log_metric`` (sync, one point),
``set_tag``; ``log_batch`` of 1,000 metrics x ``--batches``: points/s;
``get_metric_history`` of a ``--history-points`` series; ``search_runs`` over
``--search-runs`` runs with a filter + order_by (max_results 100; both servers must give
the same accuracies in the same order); ``log_artifact`` of ``--artifact-mib`` MiB and
``download_artifacts`` back (bytes compared): MB/s each way; ``mlflow.sklearn.log_model``
of a small LogisticRegression + ``load_model``.

The importer: an mlruns FILE store made by the client (``--import-runs`` runs x 3 metrics x
``--import-steps`` steps + params + one small artifact each; untimed), then
``runbase --store S import mlflow DIR --json`` into a fresh store (the whole command),
the same again (nothing new), and as anchor the bare read of the same data through
``MlflowClient`` in the MLflow venv (``search_runs`` + ``get_metric_history`` of every
key): the floor of any importer that reads through MLflow's client. ``--import-reps``
times each, interleaved.

    .venv/bin/python benchmarks/bench_mlflow_compat.py [--rounds 3] [--n-calls 200]
        [--batches 20] [--history-points 10000] [--search-runs 500] [--reps 10]
        [--artifact-mib 64] [--model-reps 3] [--import-runs 100] [--import-steps 1000]
        [--import-reps 3] [--skip-mlflow] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_server import free_ports, stop_proc, wait_http  # noqa: E402

MLFLOW_PIN = "mlflow==3.17.2"
WORKER = C.WORKERS_DIR / "mlflow_compat_worker.py"
PROJECT = "default"
PER_CALL = ("create_run_end", "log_param", "log_metric", "set_tag")
QUICK = {
    "rounds": 1, "n_calls": 10, "batches": 2, "history_points": 2000, "search_runs": 30,
    "reps": 2, "artifact_mib": 4, "model_reps": 1,
    "import_runs": 5, "import_steps": 100, "import_reps": 1,
}  # fmt: skip


class Server:
    """One server process on a free port, its output in a log file, stopped as a group."""

    def __init__(self, name: str, argv: list[str], health: str, env: dict[str, str], scratch: Path) -> None:  # fmt: skip
        self.name, self.scratch, self.env = name, scratch, env
        self.port = free_ports(1)[0]
        self.log_path = scratch / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=env, cwd=scratch, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_http(self.port, health, self.proc, timeout=240)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}; its log:\n{self.tail()}") from None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_proc(self.proc)
        self.log.close()


def start_runbase(scratch: Path) -> tuple[Server, dict[str, str]]:
    """``runbase server`` on SQLite + a directory, and the client's environment (a writer's token)."""
    base = scratch / "runbase-server"
    base.mkdir()
    db, objects = str(base / "server.db"), str(base / "objects")
    env = C.clean_env(RUNBASE_CONFIG=str(base / "config.json"))
    C.timed_run([C.RUNBASE_CLI, "server", "migrate", "--db", db, "--objects", objects], env=env)
    out = C.timed_run(
        [C.RUNBASE_CLI, "server", "users", "add", "bench", "--project-role", "writer", "--db", db],
        env=env,
    )[1].stdout.decode()
    token = next(w for w in out.split() if w.startswith("rbt_"))
    srv = Server("runbase", [C.RUNBASE_CLI, "server", "--db", db, "--objects", objects], "/readyz", env, base)  # fmt: skip
    uri = f"http://127.0.0.1:{srv.port}/p/{PROJECT}/mlflow"
    return srv, client_env(uri, MLFLOW_TRACKING_TOKEN=token)


def start_mlflow(bin_dir: Path, scratch: Path) -> tuple[Server, dict[str, str]]:
    base = scratch / "mlflow-server"
    base.mkdir()
    argv = [
        str(bin_dir / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(base / "artifacts"),
    ]  # fmt: skip
    srv = Server("mlflow", argv, "/health", C.clean_env(MLFLOW_DISABLE_TELEMETRY="true"), base)
    return srv, client_env(f"http://127.0.0.1:{srv.port}")


def client_env(uri: str, **extra: str) -> dict[str, str]:
    return C.clean_env(
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_HTTP_REQUEST_TIMEOUT="600",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",  # a failure shows, never a hidden retry in a time
        **extra,
    )


def worker(bin_dir: Path, env: dict[str, str], *args: str, timeout: float = 3600) -> dict[str, Any]:  # fmt: skip
    p = subprocess.run(
        [str(bin_dir / "python"), str(WORKER), *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=C.BENCH_DIR,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


# -- the client rounds ---------------------------------------------------------------------


def bench_client(bin_dir: Path, scratch: Path, args: Any) -> dict[str, Any]:
    servers: dict[str, tuple[Server, dict[str, str]]] = {"runbase": start_runbase(scratch)}
    if not args.skip_mlflow:
        servers["mlflow"] = start_mlflow(bin_dir, scratch)
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
    try:
        for name, (srv, env) in servers.items():
            try:
                worker(bin_dir, env, "warm")
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n{name} server log:\n{srv.tail()}") from None
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                srv, env = servers[name]
                cfg = {
                    "round": r,
                    "n_calls": args.n_calls,
                    "batches": args.batches,
                    "history_points": args.history_points,
                    "search_runs": args.search_runs,
                    "reps": args.reps,
                    "artifact_mib": args.artifact_mib,
                    "model_reps": args.model_reps,
                }
                try:
                    rounds[name].append(worker(bin_dir, env, "client", json.dumps(cfg)))
                except RuntimeError as e:
                    raise RuntimeError(f"{e}\n{name} server log:\n{srv.tail()}") from None
                print(f"  round {r + 1}/{args.rounds}: {name} done", flush=True)
    finally:
        for srv, _env in servers.values():
            srv.stop()
    return {name: aggregate(rs) for name, rs in rounds.items()}


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over every call of every round; rates per round, then their median."""
    flat = lambda f: [x for r in rounds for x in f(r)]  # noqa: E731
    out: dict[str, Any] = {"mlflow_client": rounds[0]["mlflow"], "rounds": len(rounds)}
    out["fixture_setup_s"] = rounds[0]["setup_s"]
    out["per_call"] = {k: C.summarize(flat(lambda r, k=k: r["per_call"][k])) for k in PER_CALL}
    lb = [r["log_batch"] for r in rounds]
    out["log_batch"] = {
        "points_per_round": lb[0]["points"],
        "points_per_s": C.summarize([b["points"] / sum(b["batch_s"]) for b in lb]),
        "batch_s": C.summarize(flat(lambda r: r["log_batch"]["batch_s"])),
        "all_stored": all(b["stored_k0"] == b["expected_k0"] for b in lb),
    }
    out["history"] = {"points": rounds[0]["history"]["points"], **C.summarize(flat(lambda r: r["history"]["s"]))}  # fmt: skip
    out["search"] = {
        **C.summarize(flat(lambda r: r["search"]["s"])),
        "found": rounds[-1]["search"]["found"],
        "accs": rounds[-1]["search"]["accs"],
    }
    arts = [r["artifact"] for r in rounds]
    out["artifact"] = {
        "bytes": arts[0]["bytes"],
        "upload_mb_s": C.summarize([a["bytes"] / 1e6 / a["upload_s"] for a in arts]),
        "download_mb_s": C.summarize([a["bytes"] / 1e6 / a["download_s"] for a in arts]),
        "equal": all(a["equal"] for a in arts),
    }
    out["model"] = {
        "log": C.summarize(flat(lambda r: r["model"]["log_s"])),
        "load": C.summarize(flat(lambda r: r["model"]["load_s"])),
    }
    return out


# -- the importer ----------------------------------------------------------------------------


def bench_import(bin_dir: Path, scratch: Path, args: Any) -> dict[str, Any]:
    base = scratch / "import"
    base.mkdir()
    mlruns = base / "mlruns"
    env_ml = C.clean_env(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_ALLOW_FILE_STORE="true")
    made = worker(bin_dir, env_ml, "make-mlruns", str(mlruns), str(args.import_runs), str(args.import_steps))  # fmt: skip
    env = C.clean_env(RUNBASE_NO_PROGRESS="1", MLFLOW_DISABLE_TELEMETRY="true")
    first, again, anchor_wall, anchor_read = [], [], [], []
    reports: list[dict[str, Any]] = []
    # untimed: bytecode of both importers cached, the mlruns files in the page cache
    C.timed_run([C.RUNBASE_CLI, "--store", str(base / "warm"), "import", "mlflow", str(mlruns)], env=env, timeout=3600)  # fmt: skip
    worker(bin_dir, env_ml, "read-mlruns", str(mlruns))
    C.rmtree(base / "warm")
    for i in range(args.import_reps):
        store = base / f"store-{i}"
        cmd = [C.RUNBASE_CLI, "--store", str(store), "import", "mlflow", str(mlruns), "--json"]
        dt, p = C.timed_run(cmd, env=env, cwd=base, timeout=3600)
        first.append(dt)
        reports.append(json.loads(p.stdout))
        dt, p = C.timed_run(cmd, env=env, cwd=base, timeout=3600)
        again.append(dt)
        reports.append(json.loads(p.stdout))
        t0 = time.perf_counter()
        read = worker(bin_dir, env_ml, "read-mlruns", str(mlruns))
        anchor_wall.append(time.perf_counter() - t0)
        anchor_read.append(read["read_s"])
        C.rmtree(store)
    created, unchanged = reports[0].get("created", []), reports[1].get("unchanged", [])
    return {
        "runs": made["runs"],
        "points": made["points"],
        "make_s": made["make_s"],
        "import": C.summarize(first),
        "reimport": C.summarize(again),
        "anchor_process": C.summarize(anchor_wall),
        "anchor_read": C.summarize(anchor_read),
        "anchor_points": read["points"],
        "first_created": len(created),
        "second_created": len(reports[1].get("created", [])),
        "second_unchanged": len(unchanged),
        "skipped": reports[0].get("skipped", []),
    }


# -- report --------------------------------------------------------------------------------


def med(d: dict[str, Any] | None, *path: str) -> float | None:
    for k in path:
        d = (d or {}).get(k)
    return d.get("median") if isinstance(d, dict) else None


def report(r: dict[str, Any]) -> None:
    cl = r["client"]
    rb, ml = cl["runbase"], cl.get("mlflow")
    rows = []
    for k, label in zip(PER_CALL, ("create_run + set_terminated", "log_param", "log_metric (sync, one point)", "set_tag"), strict=True):  # fmt: skip
        rows.append([label, C.ms(med(rb, "per_call", k)), C.ms(med(ml, "per_call", k))])
    lb = rb["log_batch"]["points_per_round"]
    rows.append(
        [f"log_batch, 1,000 metrics x {lb // 1000}: points/s",
         C.rate(med(rb, "log_batch", "points_per_s")), C.rate(med(ml, "log_batch", "points_per_s"))]
    )  # fmt: skip
    rows.append([f"get_metric_history, {rb['history']['points']:,} points", C.ms(med(rb, "history")), C.ms(med(ml, "history"))])  # fmt: skip
    rows.append(
        [f"search_runs, {r['args']['search_runs']} runs, filter + order_by ({rb['search']['found']} found)",
         C.ms(med(rb, "search")), C.ms(med(ml, "search"))]
    )  # fmt: skip
    mb = rb["artifact"]["bytes"] >> 20
    for k, label in (("upload_mb_s", "log_artifact"), ("download_mb_s", "download_artifacts")):
        rows.append(
            [f"{label}, {mb} MiB: MB/s",
             f"{med(rb, 'artifact', k):.0f}", f"{med(ml, 'artifact', k):.0f}" if ml else "-"]
        )  # fmt: skip
    rows.append(["sklearn log_model", C.ms(med(rb, "model", "log")), C.ms(med(ml, "model", "log"))])
    rows.append(["sklearn load_model", C.ms(med(rb, "model", "load")), C.ms(med(ml, "model", "load"))])  # fmt: skip
    C.print_table(
        ["MLflow client call (medians)", "runbase server", f"mlflow server {MLFLOW_PIN.split('==')[1]}"],
        rows,
        title=f"the MLflow client, {rb['rounds']} round(s), 1 server worker each, SQLite",
    )  # fmt: skip
    if ml and rb["search"]["accs"] != ml["search"]["accs"]:
        print("  !! search_runs: the two servers gave different results")
    im = r.get("import")
    if im:
        C.print_table(
            ["step", "time (median)"],
            [
                [f"runbase import mlflow, {im['runs']} runs, {im['points']:,} points (fresh store)", f"{med(im, 'import'):.2f} s"],
                ["  again (nothing new)", f"{med(im, 'reimport'):.2f} s"],
                ["  anchor: MlflowClient reads it all (whole process)", f"{med(im, 'anchor_process'):.2f} s"],
                ["  anchor: the reading alone (in process)", f"{med(im, 'anchor_read'):.2f} s"],
            ],
            title=f"importer (created {im['first_created']}, then {im['second_created']} created / {im['second_unchanged']} unchanged)",
        )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-calls", type=int, default=200)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--history-points", type=int, default=10_000)
    ap.add_argument("--search-runs", type=int, default=500)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--artifact-mib", type=int, default=64)
    ap.add_argument("--model-reps", type=int, default=3)
    ap.add_argument("--import-runs", type=int, default=100)
    ap.add_argument("--import-steps", type=int, default=1000)
    ap.add_argument("--import-reps", type=int, default=3)
    ap.add_argument("--skip-mlflow", action="store_true", help="runbase's server alone")
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for development")
    if ap.parse_args().quick:  # tiny defaults; a size given on the command line still wins
        ap.set_defaults(**QUICK)
        if not os.environ.get("RUNBASE_BENCH_RESULTS"):  # never over the real numbers
            C.RESULTS_DIR = C.BENCH_DIR / "results" / "quick"
    args = ap.parse_args()
    C.header("the MLflow client against runbase's server and mlflow server")
    bin_dir = C.ensure_venv("mlflow", MLFLOW_PIN, ["python", "-c", "import mlflow, sklearn"])
    if bin_dir is None:
        sys.exit("the MLflow venv could not be made")
    scratch = C.scratch_dir("mlflow-compat")
    result: dict[str, Any] = {"machine": C.machine_info(), "args": vars(args)}
    t0 = time.perf_counter()
    try:
        result["client"] = bench_client(bin_dir, scratch, args)
        if not args.skip_import:
            result["import"] = bench_import(bin_dir, scratch, args)
    finally:
        C.rmtree(scratch)
    result["total_s"] = round(time.perf_counter() - t0, 1)
    report(result)
    print(f"\nwrote {C.write_result('mlflow_compat', result)} (total {result['total_s']} s)")


if __name__ == "__main__":
    main()
