"""Run every runbase benchmark, then print (and save) one summary table.

    .venv/bin/python benchmarks/run_all.py            # full suite, ~30 min on 2 cores
    .venv/bin/python benchmarks/run_all.py --skip data,server  # without the two longest (~9 min)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke test, ~8 min, into results/quick/
    .venv/bin/python benchmarks/run_all.py --only log,startup

Each benchmark runs as its own process and writes benchmarks/results/<name>.json;
this script then writes results/summary.json and results/summary.md. No timing is
asserted: the "target" column only says whether the median met the goal on this run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BENCHES = {
    "startup": "bench_startup.py",
    "snapshot": "bench_snapshot.py",
    "ls_show": "bench_ls_show.py",
    "log": "bench_log.py",
    "compare": "bench_compare.py",
    "data": "bench_data.py",
    "ui": "bench_ui.py",
    "integrations": "bench_integrations.py",
    "server": "bench_server.py",
    "registry": "bench_registry.py",
    "mlflow_compat": "bench_mlflow_compat.py",
    "scale": "bench_scale.py",
    "ray": "bench_ray.py",
}


def load(name: str) -> dict[str, Any] | None:
    p = C.RESULTS_DIR / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def summary_rows() -> list[list[str]]:
    rows: list[list[str]] = []
    log = load("log")
    if log:
        for s in log["summary"]:
            if s["mode"] == "noop":
                rows.append(
                    [
                        f"log loop, no-op function (ceiling), {s['points'] / 1e6:g}M points",
                        C.rate(s["rate_median"]),
                        "-",
                        "-",
                    ]
                )
                continue
            how = "runbase.init()" if s["mode"] == "init" else "runbase run"
            rows.append(
                [
                    f"runbase.log() rate, {how}, {s['points'] / 1e6:g}M points (n={s['reps']})",
                    C.rate(s["rate_median"]),
                    ">= 1 M/s",
                    C.target(s["rate_median"], 1e6, True),
                ]
            )
            rows.append(
                [
                    "  RSS start / max 1st half / max 2nd half of loop",
                    f"{C.mib(s['rss_before_loop_max'])} / {C.mib(s['rss_max_first_half'])} / {C.mib(s['rss_max_second_half'])}",
                    "flat",
                    "ok"
                    if s["rss_max_second_half"] <= s["rss_max_first_half"] * 1.5 + 32 * 2**20
                    else "GROWS",
                ]
            )
            rows.append(
                [
                    "  peak RSS (VmHWM) training process / ingester",
                    f"{C.mib(s['vmhwm_kib_max'] * 1024)} / "
                    f"{C.mib((s['ingester_peak_rss_kib_max'] or 0) * 1024)}",
                    "-",
                    "-",
                ]
            )
            rows.append(
                [
                    f"  ingest time after the loop ({'finish()' if s['mode'] == 'init' else 'until runbase run exits'})",
                    f"{s['ingest_s_median']:.2f} s",
                    "-",
                    "all stored" if s["stored_ok"] else "POINTS MISSING",
                ]
            )
    st = load("startup")
    if st:
        imp = st["import"]
        rows.append(
            [
                "import runbase (fresh interpreter minus python -c pass)",
                C.ms(imp["import_overhead_s"]),
                "<= 30 ms",
                C.target(imp["import_overhead_s"], 0.030),
            ]
        )
        if "import_api_overhead_s" in imp:
            rows.append(
                [
                    "import runbase + first use of runbase.init/log (lazy API loaded)",
                    C.ms(imp["import_api_overhead_s"]),
                    "<= 30 ms",
                    C.target(imp["import_api_overhead_s"], 0.030),
                ]
            )
        cmds = st["tracked_noop"]["commands"]
        for name, tgt in (
            ("runbase run -- python noop.py", 0.150),
            ("runbase run --no-code -- python noop.py", None),
            ("python noop_init.py (runbase.init/finish)", None),
            ("python noop.py, attached by the bootstrap", None),
            ("runbase --help (CLI start-up floor)", None),
        ):
            if name in cmds:
                rows.append(
                    [
                        f"{name}: extra vs python noop.py",
                        C.ms(cmds[name]["overhead_s"]),
                        "<= 150 ms" if tgt else "-",
                        C.target(cmds[name]["overhead_s"], tgt) if tgt else "-",
                    ]
                )
    sn = load("snapshot")
    if sn:
        files = sn["cold_snapshot"]["files"] if sn.get("cold_snapshot") else "?"
        rows.append(
            [
                f"code snapshot, {files} files, 3 modified + 2 untracked: cold (fresh store)",
                C.ms(sn["cold"]["median"]),
                "<= 100 ms",
                C.target(sn["cold"]["median"], 0.1),
            ]
        )
        if sn.get("cold_store_on_tmpfs", {}).get("n"):
            rows.append(
                [
                    "code snapshot: cold, store on tmpfs (CPU part of cold)",
                    C.ms(sn["cold_store_on_tmpfs"]["median"]),
                    "<= 100 ms",
                    C.target(sn["cold_store_on_tmpfs"]["median"], 0.1),
                ]
            )
        rows.append(
            [
                "code snapshot: warm (stat cache)",
                C.ms(sn["warm"]["median"]),
                "<= 100 ms",
                C.target(sn["warm"]["median"], 0.1),
            ]
        )
        rows.append(
            ["  git commands alone (floor)", C.ms(sn["git_commands_floor"]["median"]), "-", "-"]
        )
    ls = load("ls_show")
    if ls:
        for name, s in ls["commands"].items():
            tgt = name.startswith(("runbase ls", "runbase show")) and "--limit 0" not in name
            rows.append(
                [
                    f"{name} ({ls['runs']} runs)",
                    C.ms(s["median"]),
                    "<= 300 ms" if tgt else "-",
                    C.target(s["median"], 0.3) if tgt else "-",
                ]
            )
    cmp_ = load("compare")
    if cmp_:
        for r in cmp_.get("throughput") or []:
            rows.append(
                [
                    f"throughput: {r['label']} (effective, incl. finish+exit)",
                    C.rate(r["effective_rate_median"]),
                    "-",
                    "-",
                ]
            )
        stp = (cmp_.get("startup") or {}).get("commands", {})
        for name, s in stp.items():
            if "overhead_s" in s and "noop" not in name:
                rows.append(
                    [f"start-up: {name}: extra vs bare python", C.ms(s["overhead_s"]), "-", "-"]
                )
    data = load("data")
    if data:
        goals = data.get("goals_s", {})
        for kind, ds in data["datasets"].items():
            what = f"{ds['files']} files" if kind == "many" else "1 file"
            for case, label in (
                ("first", "first (store on disk)"),
                ("first_tmpfs", "first, store on tmpfs"),
                ("unchanged", "nothing changed"),
                ("one_changed", "one file changed"),
            ):
                rb = ds["runbase"].get(case)
                if not rb:
                    continue
                snap = rb["snap"]["median"]
                dvc = ((ds.get("dvc") or {}).get(case) or {}).get("wall", {}).get("median")
                floor = ((ds.get("copy_floor") or {}).get(case) or {}).get("wall", {}).get("median")
                extra = []
                if dvc:
                    extra.append(f"dvc add {C.ms(dvc)}, {dvc / rb['wall']['median']:.1f}x")
                if floor:
                    extra.append(f"cp {C.ms(floor)}")
                goal = goals.get(case) if (kind == "many" or case != "one_changed") else None
                rows.append(
                    [
                        f"data snapshot, {ds['bytes'] / 2**30:.3g} GiB in {what}: {label} (n={rb['snap']['n']})",
                        C.ms(snap) + (f" ({'; '.join(extra)})" if extra else ""),
                        f"<= {goal * 1000:.0f} ms" if goal else "-",
                        C.target(snap, goal) if goal else "-",
                    ]
                )
        for r in data.get("rss_scaling") or []:
            rows.append(
                [
                    f"  data snapshot peak RSS, {r['files']} files (first / unchanged)",
                    f"{C.mib(r['runbase_first_maxrss_kib'] * 1024)} / "
                    f"{C.mib(r['runbase_unchanged_maxrss_kib'] * 1024)}",
                    "flat",
                    "-",
                ]
            )
    ui = load("ui")
    if ui:
        for rb in ui.get("runbase") or []:
            for name, r in rb["requests"].items():
                goal = (
                    0.2
                    if ("filtered by param" in name and "string" not in name) or "series" in name
                    else None
                )
                rows.append(
                    [
                        f"web API, {rb['label']}: {name} ({r['bytes'] / 1024:.0f} KiB)",
                        C.ms(r["median"]),
                        "<= 200 ms" if goal else "-",
                        C.target(r["median"], goal) if goal else "-",
                    ]
                )
        ml = ui.get("mlflow")
        for name, r in ((ml or {}).get("requests") or {}).items():
            rows.append(
                [
                    f"mlflow server, {ml['runs']:,} runs: {name} ({r['bytes'] / 1024:.0f} KiB)",
                    C.ms(r["median"]),
                    "-",
                    "-",
                ]
            )
    integ = load("integrations")
    if integ:
        for fw, r in integ["results"].items():
            loop = r["modes"]["none"]["loop_s"]["median"]
            rows.append(
                [
                    f"{fw} training loop ({loop:.2f} s): runbase's mirroring"
                    + ("" if "integration_ab_pct" in r else " (whole runbase run)"),
                    f"{r.get('integration_ab_pct', r['runbase_overhead_pct']):+.1f}%",
                    "<= 5%",
                    r["target"],
                ]
            )
            rows.append(
                [
                    f"{fw} training loop: whole runbase run (automatic integration) vs alone",
                    f"{r['runbase_overhead_pct']:+.1f}%",
                    "-",
                    "-",
                ]
            )
            if r.get("wandb_overhead_pct") is not None:
                rows.append(
                    [
                        f"{fw} training loop: + W&B integration (offline)",
                        f"{r['wandb_overhead_pct']:+.1f}%",
                        "-",
                        "-",
                    ]
                )
    rows += server_rows()
    rows += registry_rows()
    rows += mlflow_compat_rows()
    rows += scale_rows()
    rows += ray_rows()
    return rows


def scale_rows() -> list[list[str]]:
    """Simulated sweep trials publishing live (issue 21) and the limits drawn from them."""
    rows: list[list[str]] = []
    sc = load("scale")
    if not sc:
        return rows
    for b in sc.get("live") or []:
        for r in b.get("levels") or []:
            rows.append(
                [
                    f"team server live ingest ({r['backend']}, {r['workers']} worker(s)), "
                    f"{r['trials']} trials"
                    + (f" over {r['projects']} projects" if r.get("projects", 1) > 1 else "")
                    + " x 10 metrics at 1 point/s: points/s acked "
                    "(p50 / p95 latency; server CPU per request)",
                    f"{C.rate(r['points_per_s'])} of {C.rate(r['offered_points_per_s'])} "
                    f"({C.ms(r['latency_p50_s'])} / {C.ms(r['latency_p95_s'])}; "
                    f"{r['server_cpu_ms_per_request'] or 0:.1f} ms)",
                    "-",
                    "all stored" if r["all_points_arrived"] else "POINTS MISSING",
                ]
            )
    trials = (sc.get("objects") or {}).get("trials") or []
    for t in trials:
        rows.append(
            [
                f"runbase run --publish, trial {t['trial'] + 1} of a project: S3 requests "
                "(server requests)",
                f"{t['s3_total']} ({t['server_total']})",
                "-",
                "-",
            ]
        )
    lim = sc.get("limits") or {}
    for n in ("1000", "10000"):
        r = lim.get(n)
        if r:
            rows.append(
                [
                    f"extrapolated: {int(n):,} concurrent trials: server cores, "
                    "workers (4-worker replicas)",
                    f"{r['server_cores']:.1f} cores, {r['server_workers_at_70pct']} "
                    f"({r['replicas_4_workers']})",
                    "-",
                    "-",
                ]
            )
    return rows


def ray_rows() -> list[list[str]]:
    """The executor's cost a trial and a 32-trial sweep on Ray vs Ray Tune (issue 21)."""
    rows: list[list[str]] = []
    ray = load("ray")
    if not ray:
        return rows
    ov = ray.get("overhead") or {}
    for on in ("local", "ray"):
        r = ov.get(on) or {}
        if "steady" in r:
            rows.append(
                [
                    f"runbase run -- python -c pass through the {on} executor: a trial "
                    "(extra vs the command alone)",
                    f"{C.ms(r['steady']['median'])} ({r['overhead_s'] * 1000:+.0f} ms)",
                    "-",
                    "-",
                ]
            )
    sw = ray.get("sweep") or {}
    for name, c in (sw.get("cases") or {}).items():
        if c.get("n"):
            rows.append(
                [
                    f"{sw['trials']}-trial sweep on a {sw['cpus']}-CPU local Ray node: {name}",
                    f"{c['median']:.1f} s",
                    "-",
                    "-",
                ]
            )
    return rows


def mlflow_compat_rows() -> list[list[str]]:
    """The MLflow client against runbase's MLflow API and mlflow server (issue 20)."""
    r = load("mlflow_compat")
    if not r:
        return []
    med = lambda d, *ks: functools.reduce(lambda x, k: (x or {}).get(k), ks, d)  # noqa: E731
    rb, ml, im = r["client"]["runbase"], r["client"].get("mlflow"), r.get("import")
    vs = lambda fmt, *ks: f" (mlflow server {fmt(med(ml, *ks, 'median'))})" if ml else ""  # noqa: E731
    rows = [
        [f"MLflow client -> runbase server: {label}", fmt(med(rb, *ks, "median")) + vs(fmt, *ks), "-", "-"]
        for label, fmt, ks in (
            ("create_run + end", C.ms, ("per_call", "create_run_end")),
            ("log_metric (sync, one point)", C.ms, ("per_call", "log_metric")),
            ("log_batch of 1,000 metrics: points/s", C.rate, ("log_batch", "points_per_s")),
            (f"get_metric_history, {rb['history']['points']:,} points", C.ms, ("history",)),
            (f"search_runs, {r['args']['search_runs']} runs, filter + order_by", C.ms, ("search",)),
            (f"log_artifact {rb['artifact']['bytes'] >> 20} MiB, MB/s", lambda x: f"{x:.0f}", ("artifact", "upload_mb_s")),
            (f"download_artifacts {rb['artifact']['bytes'] >> 20} MiB, MB/s", lambda x: f"{x:.0f}", ("artifact", "download_mb_s")),
            ("sklearn log_model", C.ms, ("model", "log")),
            ("sklearn load_model", C.ms, ("model", "load")),
        )
    ]  # fmt: skip
    if im:
        rows.append(
            [f"runbase import mlflow, {im['runs']} runs, {im['points']:,} points / again (MlflowClient reading it: {med(im, 'anchor_process', 'median'):.2f} s)",
             f"{med(im, 'import', 'median'):.2f} s / {med(im, 'reimport', 'median'):.2f} s", "-", "-"]
        )  # fmt: skip
    return rows


def registry_rows() -> list[list[str]]:
    """The model registry (issue 19) beside MLflow's registry and GTO."""
    reg = load("registry")
    if not reg:
        return []
    med = lambda d, k: (d or {}).get(k, {}).get("median")  # noqa: E731
    lib, ml, cli, gto = reg["library"], reg.get("mlflow"), reg["cli"], reg.get("gto")
    d, v = reg["delivery"], reg["verify"]
    return [
        [f"model register + promote, in process (MLflow {C.ms(med(ml, 'register'))} + {C.ms(med(ml, 'alias'))})",
         f"{C.ms(med(lib, 'register'))} + {C.ms(med(lib, 'promote'))}", "-", "-"],
        [f"runbase model register / promote, a process each (gto {C.ms(med(gto, 'register'))} / {C.ms(med(gto, 'assign'))})",
         f"{C.ms(med(cli, 'register'))} / {C.ms(med(cli, 'promote'))}", "-", "-"],
        [f"model verify, {v['events']:,} events", C.ms(med(v, "verify")), "<= 1 s", C.target(med(v, "verify"), 1.0)],
        [f"model get, {reg['args']['model_mib']} MiB, verified (cp {C.ms(med(d, 'cp'))}; MLflow download {C.ms(reg.get('mlflow_download'))})",
         C.ms(med(d, "get")), "-", "-"],
        [f"model status, {reg['args']['model_mib']} MiB, every byte (sha256sum {C.ms(med(d, 'sha256sum'))})",
         C.ms(med(d, "status")), "-", "-"],
    ]  # fmt: skip


def server_rows() -> list[list[str]]:
    rows: list[list[str]] = []
    srv = load("server")
    if not srv:
        return rows
    for r in srv.get("live") or []:
        if "error" in r:
            continue
        load_ = f"every {r['interval_s']:g} s" if r.get("interval_s") else "back to back (capacity)"
        rows.append(
            [
                f"team server live streaming, {r['clients']} clients, {r['tool']}, "
                f"{r['workers']} worker(s), {load_}: points/s (p50 / p99 latency)",
                f"{C.rate(r['points_per_s'])} ({C.ms(r['latency_p50_s'])} / "
                f"{C.ms(r['latency_p99_s'])})",
                "-",
                "all stored" if r["all_points_arrived"] else "POINTS MISSING",
            ]
        )
    push = srv.get("push") or {}
    for p in push.get("pushes") or []:
        rows.append(
            [
                f"team server push, {push['store']['runs']} runs sharing "
                f"{push['store']['bytes'] / 2**30:.3g} GiB to SeaweedFS: {p['label']}",
                f"{p['push_s']:.2f} s, {C.mib(p['bytes_sent'])} sent",
                "-" if p["label"].startswith("first") else "~0 bytes",
                "-"
                if p["label"].startswith("first")
                else ("ok" if p["bytes_sent"] < 2**20 else "MISSED"),
            ]
        )
    page = srv.get("runs_page") or {}
    for name, r in (page.get("requests") or {}).items():
        goal = "filtered by param" in name
        rows.append(
            [
                f"team server runs page, {page['runs']:,} runs of 20 users (PostgreSQL): {name}",
                C.ms(r["median"]) + f" (p95 {C.ms(r['p95'])})",
                "<= 200 ms" if goal else "-",
                C.target(r["median"], 0.2) if goal else "-",
            ]
        )
    ml = srv.get("mlflow_search") or {}
    for name, r in (ml.get("requests") or {}).items():
        rows.append(
            [
                f"mlflow server (PostgreSQL), {ml['runs']:,} runs: {name}",
                C.ms(r["median"]) + f" (p95 {C.ms(r['p95'])})",
                "-",
                "-",
            ]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default="", help=f"comma list of {','.join(BENCHES)}")
    ap.add_argument("--skip", default="", help="comma list of benchmarks to skip")
    ap.add_argument(
        "--summary-only", action="store_true", help="only print the summary of existing results"
    )
    args = ap.parse_args()
    only = [x for x in args.only.split(",") if x] or list(BENCHES)
    skip = {x for x in args.skip.split(",") if x}
    if args.quick and not os.environ.get("RUNBASE_BENCH_RESULTS"):
        # smoke-test numbers must not overwrite the real ones
        os.environ["RUNBASE_BENCH_RESULTS"] = str(C.BENCH_DIR / "results" / "quick")
        C.RESULTS_DIR = Path(os.environ["RUNBASE_BENCH_RESULTS"])
    timings = {}
    failed = []
    if not args.summary_only:
        for name in only:
            if name in skip:
                continue
            cmd = [sys.executable, str(C.BENCH_DIR / BENCHES[name])] + (
                ["--quick"] if args.quick else []
            )
            print(f"\n######## {name}: {' '.join(cmd)}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, env=C.clean_env()).returncode
            timings[name] = round(time.perf_counter() - t0, 1)
            print(
                f"######## {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {timings[name]} s",
                flush=True,
            )
            if rc != 0:
                failed.append(name)

    rows = summary_rows()
    C.print_table(
        ["measurement", "result (median)", "target", "met?"],
        rows,
        title="runbase benchmark summary",
    )
    info = C.machine_info()
    md = [
        f"Measured {info['date_utc']} on {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"{info['os']}, Python {info['python']}, runbase {info['runbase_version']} ({info['runbase_commit']}).",
        "",
        "| measurement | result (median) | target | met? |",
        "|---|---|---|---|",
    ]
    md += [f"| {r[0].strip()} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    (C.RESULTS_DIR / "summary.md").write_text("\n".join(md) + "\n")
    C.write_result(
        "summary",
        {
            "machine": info,
            "bench_seconds": timings,
            "failed": failed,
            "rows": [
                dict(zip(["measurement", "result", "target", "met"], r, strict=True)) for r in rows
            ],
        },
    )
    if timings:
        print(f"\nbenchmark wall times: {timings} (total {sum(timings.values()):.0f} s)")
    print(f"wrote {C.RESULTS_DIR / 'summary.json'} and {C.RESULTS_DIR / 'summary.md'}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
