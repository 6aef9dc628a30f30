"""runbase on a Ray cluster (issue 21): what the executor costs a trial, and a 32-trial
sweep on a local cluster vs the same trials under Ray Tune alone.

Starts its own small Ray cluster (``ray start --head --block`` on 127.0.0.1, ``--cpus``
CPUs, object store capped at 75 MiB, no dashboard, no usage stats, its own temp dir, in
its own process group) and stops exactly that cluster at the end (its process group,
then any process still naming its temp dir; never ``ray stop``, which would stop every
cluster on the machine). Two parts:

1. scheduling overhead per trial: ``--n`` trials of ``runbase run --no-code -- python -c
   pass`` one after another (1 slot): the command alone (a fresh process each time, the
   floor), through the local executor and through the Ray executor
   (``tracking.executor.make_executor``, in ``_workers/ray_overhead.py``). Overhead =
   median time per trial minus the floor; the Ray executor's first trial (worker start)
   is reported apart. Also (unless ``--skip own``) through the Ray executor onto a node
   with its OWN store (docs/ray.md): a second one-node cluster whose raylet sets
   ``RUNBASE_WORKER_STORE``, a real team server (``runbase server``, SQLite, objects in
   a directory) the driver is logged in to, and each trial run as a sweep runs it there
   (its code tree by hash, ``--publish team``; this script's ``--own-worker`` mode).
   Each round a new project of ``--code-files`` files (salted: new to the server and
   the node), so its first trial uploads and fetches the whole tree; that first-trial
   cost is reported apart from the steady cost a trial (the run pulled back from the
   server), with the upload and each pull timed in the driver.
2. a ``--trials`` (32) trial sweep, each trial ``--steps`` (10) busy steps logging a
   loss: ``runbase sweep --grid x=0..31 --on ray`` (every trial a tracked run) and
   ``runbase sweep -j CPUS`` locally, vs Ray Tune alone (``_workers/ray_tune_alone.py``:
   a function trainable doing the same work, ``tune.report`` per step, 1 CPU a trial) on
   the same cluster. Wall time of each whole command (a fresh process), ``--rounds``
   rounds alternating which goes first.

    .venv/bin/python benchmarks/bench_ray.py [--cpus 2] [--n 12] [--trials 32]
        [--steps 10] [--rounds 1] [--code-files 50] [--skip overhead,own,sweep]
        [--merge] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

# token authentication off for this cluster and its drivers: a shared ~/.ray/auth_token
# another cluster writes must not decide whether this one can be reached
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}

TRAIN = """\
import argparse, runbase
p = argparse.ArgumentParser()
p.add_argument("--x", type=int, default=0)
p.add_argument("--steps", type=int, default={steps})
p.add_argument("--work", type=int, default={work})
a = p.parse_args()
for step in range(a.steps):
    acc = 0
    for i in range(a.work):
        acc += i % 7
    runbase.log(loss=(a.x - 10) ** 2 / (step + 1) + acc * 1e-12, step=step)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRay:
    """A one-node Ray cluster of this benchmark's own, stopped by process group."""

    def __init__(self, cpus: int, node_env: dict[str, str] | None = None) -> None:
        self.cpus = cpus
        self.node_env = dict(node_env or {})  # the raylet's, so its workers' too
        # short: Ray's unix socket paths under it must stay below 108 bytes
        self.temp = tempfile.mkdtemp(prefix="rbr-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ray = str(Path(C.PYTHON).parent / "ray")
        self.log = open(Path(self.temp) / "start.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={self.port}", f"--num-cpus={self.cpus}", "--num-gpus=0",
             "--object-store-memory=78643200", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={self.temp}",
             f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}",
             f"--object-manager-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}"],
            env=C.clean_env(**RAY_ENV, **self.node_env), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 60
        probe = "import ray; ray.init(address='auto', logging_level='ERROR'); ray.shutdown()"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.tail()}")
            p = subprocess.run(
                [C.PYTHON, "-c", probe], env=self.env(), capture_output=True, timeout=120
            )
            if p.returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(
                    f"the Ray cluster did not start: {self.tail()}\n{p.stderr[-2000:]!r}"
                )
            time.sleep(1)

    def env(self, **extra: str) -> dict[str, str]:
        return C.clean_env(**RAY_ENV, RAY_ADDRESS=self.address, **extra)

    def tail(self) -> str:
        return (Path(self.temp) / "start.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        import psutil

        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self.log.close()
        # processes of this cluster that left the group (Ray daemonizes some): those
        # naming our temp dir, and nothing else
        for p in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(self.temp in a for a in p.info["cmdline"] or []):
                    p.kill()
        C.rmtree(Path(self.temp))


# -- 1. overhead -------------------------------------------------------------------------------


class OwnStoreSetup:
    """The node-with-its-own-store mode: a second Ray node whose raylet sets
    ``RUNBASE_WORKER_STORE`` (its workers keep that store, as on a machine without a
    shared file system), a real team server (SQLite, objects in a directory) and the
    driver's login to it (remote ``team``, in a config file of this benchmark's own)."""

    def __init__(self, scratch: Path, cpus: int) -> None:
        self.base = scratch / "own"
        self.base.mkdir()
        self.node_store = self.base / "node-store"
        self.ray = LocalRay(cpus, {"RUNBASE_WORKER_STORE": str(self.node_store)})
        self.config = str(self.base / "client-config.json")
        self.server: Any = None

    def start(self) -> None:
        import bench_server as S  # its server wrapper (a process group on a free port)

        db, objects = str(self.base / "server.db"), str(self.base / "objects")
        env = C.clean_env(RUNBASE_CONFIG=str(self.base / "server-config.json"))
        self.server = S.RunbaseServer(db, objects, env, self.base)
        self.server.cli("server", "migrate", "--db", db, "--objects", objects)
        token = next(
            w
            for w in self.server.cli("server", "users", "add", "bench", "--db", db).split()
            if w.startswith("rbt_")
        )
        self.server.start(1)
        url = f"http://127.0.0.1:{self.server.port}"
        for argv in (["login", url, "--token", token], ["remote", "add", "team", url]):
            C.timed_run([C.RUNBASE_CLI, *argv], env=self.env(), cwd=self.base)
        # the node's store exists before the first round: no round pays for making it
        C.timed_run([C.RUNBASE_CLI, "--store", str(self.node_store), "init"], env=self.env(),
                    cwd=self.base, check=False)  # fmt: skip
        self.ray.start()

    def env(self) -> dict[str, str]:
        return self.ray.env(RUNBASE_CONFIG=self.config)

    def project(self, rnd: int, n_files: int) -> Path:
        """A project whose every file is new to the server and the node's store (salted
        by round): its round's first trial uploads and fetches the whole tree."""
        proj = self.base / f"proj-{rnd}"
        paths = C.make_git_repo(proj, n_files=n_files, seed=rnd)
        for rel in paths:
            f = proj / rel
            f.write_text(f"# round {rnd} {os.getpid()} {time.time()}\n" + f.read_text())
        C.git(proj, "commit", "-qam", f"round {rnd}")
        return proj

    def stop(self) -> None:
        try:
            self.ray.stop()
        finally:
            if self.server is not None:
                self.server.stop()


def bench_overhead(
    ray: LocalRay, own: OwnStoreSetup | None, scratch: Path, args: Any
) -> dict[str, Any]:
    proj = scratch / "overhead"
    proj.mkdir()
    store = str(scratch / "overhead-store")
    own_store = str(scratch / "own-driver-store")  # the driver's, where runs are pulled to
    env = ray.env()
    C.timed_run([C.RUNBASE_CLI, "--store", store, "init"], env=env, cwd=proj, check=False)
    # the argv the executors run (tracking.executor.runbase_run_argv), here run directly
    argv = [C.PYTHON, "-m", "runbase", "--store", store, "run", "--quiet", "--no-code", "--",
            C.PYTHON, "-c", "pass"]  # fmt: skip
    for _ in range(2):  # warm the page cache and bytecode
        C.timed_run(argv, env=env, cwd=proj)
    if own is not None:
        C.timed_run([C.RUNBASE_CLI, "--store", own_store, "init"], env=own.env(), cwd=proj,
                    check=False)  # fmt: skip
    floor: list[float] = []
    cases = ["floor", "local", "ray"] + (["own"] if own is not None else [])
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases if c != "floor"}
    for rnd in range(2):  # alternating order: a drifting load hits all alike
        for case in cases if rnd % 2 == 0 else cases[::-1]:
            if case == "floor":
                floor += [C.timed_run(argv, env=env, cwd=proj)[0] for _ in range(args.n)]
                continue
            if case == "own":
                assert own is not None
                cmd = [C.PYTHON, str(Path(__file__).resolve()), "--own-worker", own_store,
                       str(own.project(rnd, args.code_files)), str(args.n)]  # fmt: skip
                case_env = own.env()
            else:
                cmd = [C.PYTHON, str(C.WORKERS_DIR / "ray_overhead.py"), store, str(proj),
                       str(args.n), case]  # fmt: skip
                case_env = env
            p = subprocess.run(cmd, env=case_env, capture_output=True, text=True, timeout=600)
            if p.returncode:
                runs[case].append({"error": p.stderr[-3000:]})
                print(f"overhead {case}: FAILED\n{p.stderr[-1500:]}", flush=True)
                continue
            runs[case].append(json.loads(p.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"n": args.n, "rounds": 2, "floor": C.summarize(floor)}
    floor_med = out["floor"]["median"]
    for case, rs in runs.items():
        good = [r for r in rs if "error" not in r]
        if not good:
            out[case] = {"error": rs[0]["error"] if rs else "not run"}
            continue
        steady = C.summarize([t for r in good for t in r["trial_s"][1:]])
        out[case] = r = {
            "runs": rs,
            "check_s": C.summarize([r["check_s"] for r in good])["median"],
            "first_s": C.summarize([r["trial_s"][0] for r in good])["median"],
            "steady": steady,
            "overhead_s": steady["median"] - floor_med,
            "all_ok": all(c == 0 for r in good for c in r["returncodes"]),
            "nodes": sorted({str(w) for r in good for w in r["where"]}),
        }
        if case == "own":
            _own_summary(r, good)
        print(
            f"overhead {case}: check {C.ms(r['check_s'])}, first trial {C.ms(r['first_s'])}, "
            f"then {C.ms(steady['median'])} a trial (floor {C.ms(floor_med)}: "
            f"{r['overhead_s'] * 1000:+.1f} ms), all exit 0: {r['all_ok']}",
            flush=True,
        )
    if "steady" in out.get("own", {}) and "steady" in out.get("ray", {}):
        o, r = out["own"], out["ray"]
        # the first trial's extra over the shared store's first trial (both start a Ray
        # worker and probe the node): the tree's upload and the node's fetch
        o["first_extra_vs_ray_s"] = o["first_s"] - r["first_s"]
        o["steady_extra_vs_ray_s"] = o["steady"]["median"] - r["steady"]["median"]
        # what the first trial costs beyond a steady one, over the shared store's same
        # difference (Ray's worker start), less the upload: the node's fetch
        o["fetch_est_s"] = o["first_extra_vs_ray_s"] - o["steady_extra_vs_ray_s"] - o["upload_s"]
    return out


def _own_summary(r: dict[str, Any], good: list[dict[str, Any]]) -> None:
    """What the own-store worker timed in the driver: the tree's upload (its first
    trial's send), each trial's pull back, the snapshot; and whether every run came back."""
    r["upload_s"] = C.summarize([g["send_s"][0] for g in good])["median"]
    r["pull"] = C.summarize([t for g in good for t in g["pull_s"][1:]])
    r["first_pull_s"] = C.summarize([g["pull_s"][0] for g in good])["median"]
    r["snapshot_s"] = C.summarize([g["snapshot_s"] for g in good])["median"]
    r["tree"] = good[0]["tree"]
    r["pulled_finished"] = all(g["pulled_finished"] == g["n"] for g in good)
    r["all_ok"] = r["all_ok"] and r["pulled_finished"]
    print(
        f"overhead own: snapshot {C.ms(r['snapshot_s'])}, upload {C.ms(r['upload_s'])} "
        f"({r['tree']}), pull back {C.ms(r['pull']['median'])} a trial, every run finished "
        f"in the driver's store: {r['pulled_finished']}",
        flush=True,
    )


def own_worker(store: str, project: str, n: int) -> None:
    """``--own-worker``: like ``_workers/ray_overhead.py`` but as a sweep on nodes with
    their own store runs a trial: the project's code snapshotted once into the driver's
    store (timed apart), each job carries it as its tree and publishes to remote
    ``team``. ``RayExecutor._send_tree`` (the upload) and ``_pull`` (the run back from
    the server) are wrapped with a clock; nothing else is changed. One JSON line."""
    from runbase.capture.code import snapshot
    from runbase.records.read import run_status
    from runbase.store import Store
    from runbase.tracking import rayexec
    from runbase.tracking.executor import SPEC_TOKEN, Job, make_executor, runbase_run_argv

    spent: dict[str, list[float]] = {"_send_tree": [], "_pull": []}
    for name in spent:
        setattr(
            rayexec.RayExecutor, name, _clocked(getattr(rayexec.RayExecutor, name), spent[name])
        )
    t0 = time.perf_counter()
    s = Store.open(store)
    try:
        code = dict(snapshot(s, Path(project), (), ()).as_dict())
    finally:
        s.close()
    snapshot_s = time.perf_counter() - t0
    options = ["--no-code", "--spec", SPEC_TOKEN, "--publish", "team"]
    jobs = [
        Job(
            argv=runbase_run_argv(store, *options, "--", sys.executable, "-c", "pass"),
            label=f"pass-{i}",
            spec={},
            tree={"store": store, "code": code, "cwd": ".", "inputs": []},
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    executor = make_executor("ray", jobs=1)
    executor.check()
    check_s = time.perf_counter() - t0
    ends: list[float] = []
    codes: list[int | None] = []
    where: list[str | None] = []

    def done(job: Job, _i: int, _n: int) -> None:
        ends.append(time.perf_counter())
        codes.append(job.returncode)
        where.append((job.executor or {}).get("node_id") or (job.executor or {}).get("kind"))

    t1 = time.perf_counter()
    interrupted = executor.run(iter(jobs), done, total=n)
    total_s = time.perf_counter() - t1
    s = Store.open(store)
    try:
        finished = sum(run_status(s, str(j.run_id)) == "finished" for j in jobs)
    finally:
        s.close()
    print(
        json.dumps(
            {
                "check_s": check_s,
                "snapshot_s": snapshot_s,
                "trial_s": [e - b for b, e in zip([t1, *ends[:-1]], ends, strict=True)],
                "send_s": spent["_send_tree"],
                "pull_s": spent["_pull"],
                "total_s": total_s,
                "returncodes": codes,
                "where": where,
                "interrupted": interrupted,
                "n": n,
                "pulled_finished": finished,
                "tree": f"{code.get('files')} files, {code.get('bytes', 0) / 1024:.0f} KiB",
            }
        ),
        flush=True,
    )


def _clocked(fn: Any, into: list[float]) -> Any:
    def clocked(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            into.append(time.perf_counter() - t)

    return clocked


# -- 2. 32-trial sweep -------------------------------------------------------------------------


def bench_sweep(ray: LocalRay, scratch: Path, args: Any) -> dict[str, Any]:
    proj = scratch / "sweep"
    proj.mkdir()
    C.make_git_repo(proj, n_files=10)
    (proj / "train.py").write_text(TRAIN.format(steps=args.steps, work=args.work))
    C.git(proj, "add", "-A")
    C.git(proj, "commit", "-qm", "train")
    grid = "x=" + ",".join(str(i) for i in range(args.trials))
    env = ray.env()
    store = str(scratch / "sweep-store")  # every node reaches it: the same machine
    C.timed_run([C.RUNBASE_CLI, "--store", store, "init"], env=env, cwd=proj, check=False)
    cases = {
        "runbase sweep --on ray": [C.RUNBASE_CLI, "--store", store, "sweep", "--grid", grid,
                                   "--on", "ray", "--", C.PYTHON, "train.py"],
        f"runbase sweep -j {args.cpus} (local)": [
            C.RUNBASE_CLI, "--store", store, "sweep", "--grid", grid, "-j", str(args.cpus),
            "--", C.PYTHON, "train.py"],
        "Ray Tune alone": [C.PYTHON, str(C.WORKERS_DIR / "ray_tune_alone.py"), str(args.trials),
                           str(args.steps), str(args.work), str(scratch / "tune")],
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    details: dict[str, list[Any]] = {k: [] for k in cases}
    names = list(cases)
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            try:
                p = subprocess.run(
                    cases[name], env=env, cwd=proj, capture_output=True, text=True,
                    timeout=args.case_timeout, start_new_session=True,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                details[name].append({"error": f"timed out after {args.case_timeout:g} s"})
                print(f"sweep: {name}: timed out after {args.case_timeout:g} s", flush=True)
                continue
            dt = time.perf_counter() - t0
            if p.returncode:
                details[name].append({"error": (p.stdout + p.stderr)[-2000:]})
                print(f"sweep: {name}: FAILED ({p.returncode})\n{p.stderr[-1500:]}", flush=True)
                continue
            times[name].append(dt)
            details[name].append(_sweep_detail(name, p.stdout, store, env, proj))
            print(f"sweep: {name}: {dt:.1f} s {details[name][-1]}", flush=True)
    return {
        "trials": args.trials,
        "steps": args.steps,
        "work": args.work,
        "cpus": args.cpus,
        "cases": {k: {**C.summarize(v), "runs": details[k]} for k, v in times.items()},
    }


def _sweep_detail(name: str, stdout: str, store: str, env: dict[str, str], proj: Path) -> Any:
    if name == "Ray Tune alone":
        return json.loads(stdout.strip().splitlines()[-1])
    last = [ln for ln in stdout.splitlines() if "finished" in ln]
    show = subprocess.run(
        [C.RUNBASE_CLI, "--store", store, "show", "--json"],
        env=env, cwd=proj, capture_output=True, text=True,
    )  # fmt: skip
    try:
        executor = (json.loads(show.stdout).get("executor") or {}).get("kind")
    except (ValueError, AttributeError):
        executor = None
    return {"summary": last[-1] if last else None, "last_run_executor": executor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray node")
    ap.add_argument("--n", type=int, default=12, help="trials per executor (overhead)")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--work", type=int, default=300_000, help="loop iterations a step")
    ap.add_argument("--rounds", type=int, default=1, help="sweep rounds (overhead: 2)")
    ap.add_argument("--case-timeout", type=float, default=240.0, help="seconds a sweep may take")
    ap.add_argument("--skip", default="", help="comma list of overhead,own,sweep")
    ap.add_argument(
        "--code-files",
        type=int,
        default=50,
        help="files of the code tree a node with its own store fetches",
    )
    ap.add_argument("--quick", action="store_true", help="6 trials for overhead, 8 a sweep")
    ap.add_argument("--merge", action="store_true", help="keep sections --skip leaves out")
    ap.add_argument(
        "--own-worker", nargs=3, metavar=("STORE", "PROJECT", "N"), help=argparse.SUPPRESS
    )  # this script as the own-store mode's worker
    args = ap.parse_args()
    if args.own_worker:
        own_worker(args.own_worker[0], args.own_worker[1], int(args.own_worker[2]))
        return
    if args.quick:
        args.n, args.trials, args.rounds = 6, 8, 1
    skip = {x for x in args.skip.split(",") if x}
    C.header(
        f"bench_ray: overhead of {args.n} trials, a {args.trials}-trial sweep on a "
        f"{args.cpus}-CPU local Ray node vs Ray Tune alone"
    )
    scratch = C.scratch_dir("ray")
    result: dict[str, Any] = {"machine": C.machine_info(), "args": vars(args)}
    old = C.RESULTS_DIR / "ray.json"
    if args.merge and old.exists():  # keep the sections not run this time
        prev = json.loads(old.read_text())
        for k in ("overhead", "sweep"):
            if k in skip and k in prev:
                result[k] = prev[k]
    ray = LocalRay(args.cpus)
    # a node with its own store: a second cluster (its raylet's environment decides)
    own = OwnStoreSetup(scratch, args.cpus) if not {"overhead", "own"} & skip else None
    t_all = time.perf_counter()
    try:
        ray.start()
        if own is not None:
            own.start()
        if "overhead" not in skip:
            result["overhead"] = bench_overhead(ray, own, scratch, args)
            result["overhead"]["machine"] = C.machine_info()
        if "sweep" not in skip:
            result["sweep"] = bench_sweep(ray, scratch, args)
            result["sweep"]["machine"] = C.machine_info()
    finally:
        if own is not None:
            own.stop()
        ray.stop()
        C.rmtree(scratch)
        result["total_s"] = round(time.perf_counter() - t_all, 1)
    report(result)
    print(f"\nwrote {C.write_result('ray', result)} (total {result['total_s']} s)")


def report(result: dict[str, Any]) -> None:
    ov = result.get("overhead") or {}
    rows = []
    if "floor" in ov:
        rows.append(["runbase run --no-code -- python -c pass (floor)",
                     C.ms(ov["floor"]["median"]), "-", "-", "-"])  # fmt: skip
    names = {"local": "the local executor", "ray": "Ray, shared store",
             "own": "Ray, node's own store + team server"}  # fmt: skip
    for on, label in names.items():
        r = ov.get(on) or {}
        if "steady" in r:
            rows.append([f"through {label}", C.ms(r["steady"]["median"]),
                         f"{r['overhead_s'] * 1000:+.1f} ms", C.ms(r["first_s"]),
                         C.ms(r["check_s"])])  # fmt: skip
        elif "error" in r:
            rows.append([f"through {label}", "FAILED", "", "", ""])
    if rows:
        C.print_table(["trial", "median a trial", "overhead", "first trial", "check()"], rows,
                      title="scheduling overhead per trial (1 slot)")  # fmt: skip
    o = ov.get("own") or {}
    if "upload_s" in o:
        rows = [
            ["code snapshot (once, before the trials)", C.ms(o["snapshot_s"])],
            [f"upload of the tree ({o['tree']}), in the first trial", C.ms(o["upload_s"])],
            ["first trial vs Ray shared store's first trial (upload + fetch)",
             f"{o.get('first_extra_vs_ray_s', 0) * 1000:+.0f} ms"],
            ["fetch on the node (derived: first extra - steady extra - upload)",
             f"{o.get('fetch_est_s', 0) * 1000:+.0f} ms"],
            ["pull back of a run (driver, median, trials 2..n)", C.ms(o["pull"]["median"])],
            ["steady trial vs Ray shared store's", f"{o.get('steady_extra_vs_ray_s', 0) * 1000:+.0f} ms"],
            ["every run finished in the driver's store", str(o["pulled_finished"])],
        ]  # fmt: skip
        C.print_table(["node with its own store", "time"], rows, title="own store: where it goes")
    sw = result.get("sweep") or {}
    rows = [
        [name, f"{c['median']:.1f} s" if c.get("n") else "FAILED", str(c.get("n", 0))]
        for name, c in (sw.get("cases") or {}).items()
    ]
    if rows:
        C.print_table(["sweep", "wall (median)", "n"], rows,
                      title=f"{sw['trials']} trials x {sw['steps']} steps on {sw['cpus']} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()
