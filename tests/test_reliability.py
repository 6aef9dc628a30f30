"""Reliability: real processes, real signals, a really full disk, real concurrency.

Nothing here is mocked. Each test starts the real CLI or a real training script in a
subprocess, hurts it the way production does (SIGKILL, a killed supervisor, a full
store, eight writers at once, bad input) and reads back what the store kept.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT_FOR_RECORD, runbase_cmd, wait_until, write

PY = sys.executable


# -- helpers ------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env.update(extra)
    return env


def view(store: Path, ref: str | None = None) -> Any:
    """A RunView of ``ref`` (latest when None), read straight from the store (no recovery)."""
    from runbase.records.read import resolve
    from runbase.records.view import RunView
    from runbase.store import Store

    s = Store.open(store)
    try:
        v = RunView(s, resolve(s, ref))
        v.last_steps = {k: m["step"] for k, m in v.metrics.items()}  # type: ignore[attr-defined]
        v.rec = v.record(include_patch=False)  # type: ignore[attr-defined]
        return v
    finally:
        s.close()


def read_series(store: Path, run_id: str, key: str) -> Any:
    from runbase.records.read import series
    from runbase.store import Store

    s = Store.open(store)
    try:
        return series(s, run_id, key)
    finally:
        s.close()


def metric_count(store: Path, key: str) -> int:
    """How many points of ``key`` the latest run has in the store (0 if none yet)."""
    if not (store / "FORMAT").is_file():
        return 0
    try:
        from runbase.records.read import load_metrics, resolve
        from runbase.store import Store

        s = Store.open(store)
        try:
            run_id = resolve(s, None)
            return int(load_metrics(s, [run_id])[run_id].get(key, {}).get("count") or 0)
        finally:
            s.close()
    except Exception:  # noqa: BLE001 - the store is being created right now
        return 0


def read_progress(path: Path) -> list[tuple[int, float]]:
    """The ``step time`` lines a training script flushed (a torn last line is ignored)."""
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out.append((int(parts[0]), float(parts[1])))
            except ValueError:
                pass
    return out


def step_before(progress: list[tuple[int, float]], t: float) -> int:
    """The last step the script had logged at wall time ``t``."""
    steps = [s for s, ts in progress if ts <= t]
    assert steps, f"the script logged nothing before {t} (progress starts {progress[:1]})"
    return max(steps)


def read_pid(path: Path) -> int:
    text = path.read_text().strip()
    return int(text) if text else 0


# The training loop shared by the kill tests: it logs `progress` every ~10 ms and
# appends `step time` lines, flushed, to PROGRESS_FILE after each log call.
TRAIN_LOOP = """
    import os, sys, time
    import runbase
    {init}
    with open(os.environ["PID_FILE"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
    prog = open(os.environ["PROGRESS_FILE"], "w")
    runbase.param("lr", 0.1)
    deadline = time.time() + 60
    i = 0
    while time.time() < deadline:
        runbase.log(progress=float(i), step=i)
        prog.write(f"{{i}} {{time.time()}}\\n")
        prog.flush()
        i += 1
        time.sleep(0.01)
    print("not killed?!")
"""


def prepare_training(project: Path, init: str = "") -> tuple[Path, Path]:
    """Write train.py; return (pid file, progress file) paths, in a git-ignored folder."""
    write(project, "train.py", TRAIN_LOOP.format(init=init))
    pid_file, progress = project / "ignored" / "pid", project / "ignored" / "progress"
    pid_file.parent.mkdir(exist_ok=True)
    return pid_file, progress


def kill_when_running(store: Path, progress: Path, kill: Callable[[], None]) -> int:
    """Wait for metrics to reach the store, let the script run ~1.2 s more, then kill.

    Returns the step the script had logged 1 s before the kill."""
    wait_until(
        lambda: metric_count(store, "progress") > 0,
        timeout=60,
        what="the first metrics in the store",
    )
    time.sleep(1.2)
    kill_at = time.time()
    kill()
    return step_before(read_progress(progress), kill_at - 1.0)


# -- 1. SIGKILL of the training process under `runbase run` --------------------------------


def test_sigkill_of_training_process_under_supervisor(project: Path, tmp_path: Path) -> None:
    pid_file, progress = prepare_training(project)
    store = project / ".runbase"
    with open(tmp_path / "sup.out", "wb") as out, open(tmp_path / "sup.err", "wb") as err:
        sup = subprocess.Popen(
            [PY, "-m", "runbase", "run", "--", PY, "train.py"],
            cwd=project,
            env=clean_env(PID_FILE=str(pid_file), PROGRESS_FILE=str(progress)),
            stdout=out,
            stderr=err,
        )
    try:
        wait_until(pid_file.exists, timeout=60, what="the training script's pid file")
        child = read_pid(pid_file)
        assert child != sup.pid
        reached = kill_when_running(store, progress, lambda: os.kill(child, signal.SIGKILL))
        assert sup.wait(timeout=60) == 128 + signal.SIGKILL, (tmp_path / "sup.err").read_text()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    v = view(store)
    assert v.status == "killed", v.rec
    assert v.rec["exit_signal"] == signal.SIGKILL and v.rec["exit_code"] is None
    assert v.rec["code"] and v.rec["code"]["tree"], v.rec["code"]
    assert v.rec["env"] and v.rec["env"]["python"], v.rec["env"]
    assert v.params["lr"] == 0.1
    assert v.metrics["progress"]["count"] > 0
    assert v.last_steps["progress"] >= reached, (v.last_steps, reached)
    s = read_series(store, v.id, "progress")
    assert s.steps == list(range(len(s.steps)))  # no holes, no duplicates
    assert not (store / "spool" / v.id).exists()  # finalized: spool cleaned up


# -- 2. SIGKILL of the supervisor and its child together -----------------------------------


def test_sigkill_of_supervisor_and_child_together(project: Path, tmp_path: Path) -> None:
    pid_file, progress = prepare_training(project)
    store = project / ".runbase"
    sup = subprocess.Popen(
        [PY, "-m", "runbase", "run", "--", PY, "train.py"],
        cwd=project,
        env=clean_env(PID_FILE=str(pid_file), PROGRESS_FILE=str(progress)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    child = 0
    try:
        wait_until(pid_file.exists, timeout=60, what="the training script's pid file")
        child = read_pid(pid_file)
        pgid = os.getpgid(sup.pid)
        assert os.getpgid(child) == pgid  # the group kill reaches both
        reached = kill_when_running(store, progress, lambda: os.killpg(pgid, signal.SIGKILL))
        assert sup.wait(timeout=30) == -signal.SIGKILL
    finally:
        if sup.poll() is None:
            os.killpg(sup.pid, signal.SIGKILL)
            sup.wait()
    # the child is gone too (it was in the killed group)
    wait_until(lambda: not _alive(child), timeout=10, what="the training process to die")
    assert view(store).status == "running"  # nobody finalized it ...
    proc = runbase_cmd("ls", cwd=project)  # ... until any CLI command looks
    assert proc.returncode == 0, proc.stderr
    v = view(store)
    assert v.status == "crashed", v.rec
    assert v.rec["error"]
    assert v.metrics["progress"]["count"] > 0
    assert v.last_steps["progress"] >= reached, (v.last_steps, reached)
    s = read_series(store, v.id, "progress")
    assert s.steps == list(range(len(s.steps)))
    assert v.params["lr"] == 0.1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


# -- 3. SIGKILL of a process that used runbase.init() ---------------------------------------


def test_sigkill_of_init_process_is_finalized_as_crashed(project: Path) -> None:
    pid_file, progress = prepare_training(project, init='runbase.init(name="bare")')
    store = project / ".runbase"
    proc = subprocess.Popen(
        [PY, "train.py"],
        cwd=project,
        env=clean_env(PID_FILE=str(pid_file), PROGRESS_FILE=str(progress)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(pid_file.exists, timeout=60, what="the training script's pid file")
        reached = kill_when_running(store, progress, lambda: os.kill(proc.pid, signal.SIGKILL))
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in stderr, stderr

    def finalized() -> bool:
        return view(store).status != "running"

    # the watcher should notice within a few seconds; failing that, the next CLI command
    deadline = time.monotonic() + 15
    while not finalized() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not finalized():
        runbase_cmd("ls", cwd=project)
    v = view(store)
    assert v.name == "bare"
    assert v.status == "crashed", v.rec
    assert v.rec["mode"] == "api"
    assert v.metrics["progress"]["count"] > 0
    assert v.last_steps["progress"] >= reached, (v.last_steps, reached)
    assert v.params["lr"] == 0.1


# -- 4. eight `runbase run` at once on one store --------------------------------------------

N_RUNS = 8
N_STEPS = 20_000


def test_eight_concurrent_runs_on_one_store(project: Path, tmp_path: Path) -> None:
    write(
        project,
        "worker.py",
        f"""
        import sys
        import runbase
        idx = int(sys.argv[2])
        runbase.param("worker", idx)
        for s in range({N_STEPS}):
            runbase.log(a=float(s), b=float(idx * s), step=s)
        print("worker", idx, "done")
    """,
    )
    store = project / ".runbase"
    assert runbase_cmd("init", cwd=project).returncode == 0
    procs = []
    for i in range(N_RUNS):
        out, err = tmp_path / f"w{i}.out", tmp_path / f"w{i}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            procs.append(
                (
                    i,
                    subprocess.Popen(
                        [
                            PY,
                            "-m",
                            "runbase",
                            "run",
                            "--name",
                            f"w{i}",
                            "--",
                            PY,
                            "worker.py",
                            "--idx",
                            str(i),
                        ],
                        cwd=project,
                        env=clean_env(),
                        stdout=fo,
                        stderr=fe,
                    ),
                    out,
                    err,
                )
            )
    try:
        for i, p, out, err in procs:
            rc = p.wait(timeout=120)
            text = err.read_text()
            assert rc == 0, (i, text)
            assert "database is locked" not in text, (i, text)
            assert "Traceback" not in text, (i, text)
            assert f"worker {i} done" in out.read_text()
    finally:
        for _, p, _, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    listing = runbase_cmd("ls", "--json", "--limit", "0", cwd=project)
    assert listing.returncode == 0 and "database is locked" not in listing.stderr, listing.stderr
    runs = json.loads(listing.stdout)
    assert len(runs) == N_RUNS
    assert {r["name"] for r in runs} == {f"w{i}" for i in range(N_RUNS)}
    for r in runs:
        i = int(r["name"][1:])
        assert r["status"] == "finished" and r["exit_code"] == 0, r
        assert r["params"]["worker"] == i, r["params"]
        assert r["metrics"]["a"]["count"] == N_STEPS, (r["name"], r["metrics"])
        assert r["metrics"]["b"]["count"] == N_STEPS, (r["name"], r["metrics"])
        assert r["metrics"]["a"]["last"] == N_STEPS - 1 and r["metrics"]["b"]["last"] == i * (
            N_STEPS - 1
        )
        s = read_series(store, r["id"], "b")
        assert s.steps == list(range(N_STEPS))
        assert s.values == [float(i * k) for k in range(N_STEPS)]
    assert not any((store / "spool").iterdir())  # every spool ingested and removed


# -- 5. the store's disk fills up while a run is going --------------------------------------


def test_store_disk_full_after_start(project: Path, tmp_path: Path) -> None:
    mnt = Path(tempfile.mkdtemp(prefix="runbase-full-", dir=tmp_path))
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (CI runs as root): {res.stderr.strip()}")
    try:
        store = mnt / "store"
        filler = mnt / "filler"
        write(
            project,
            "fill.py",
            WAIT_FOR_RECORD
            + textwrap.dedent("""
            import os, time
            import runbase
            for i in range(20):
                runbase.log(loss=1.0 / (i + 1), step=i)
                time.sleep(0.01)
            runbase.param("before_full", 1)
            wait_for_record(  # flushed and ingested while there is space
                lambda rec: rec["params"].get("before_full") == 1, "the first param"
            )
            with open(os.environ["FILLER"], "wb", buffering=0) as f:
                block = b"x" * 65536
                try:
                    while True:
                        f.write(block)
                except OSError as e:
                    print("store disk full:", e.errno == 28, flush=True)
                while True:  # the last few bytes too
                    try:
                        if not f.write(b"x" * 512):
                            break
                    except OSError:
                        break
            t_end = time.time() + 2.0
            i = 20
            while time.time() < t_end:
                runbase.log(loss=1.0 / (i + 1), step=i)
                runbase.param("p%d" % (i % 7), "x" * 100)
                print("still training", i, flush=True)
                i += 1
                time.sleep(0.005)
            print("TRAINING-COMPLETE", flush=True)
        """),
        )
        proc = runbase_cmd(
            "run",
            "--",
            PY,
            "fill.py",
            cwd=project,
            env={"RUNBASE_DIR": str(store), "FILLER": str(filler)},
            timeout=120,
        )
        assert "store disk full: True" in proc.stdout, (proc.stdout[-2000:], proc.stderr)
        assert "TRAINING-COMPLETE" in proc.stdout, (proc.stdout[-2000:], proc.stderr)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        warnings = [
            line for line in proc.stderr.splitlines() if line.startswith("runbase: warning")
        ]
        assert len(warnings) == 1, proc.stderr
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# -- 6. bad input -----------------------------------------------------------------------------


def _assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.stderr.startswith("Error: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    for n in needles:
        assert n in proc.stderr, (n, proc.stderr)


def test_cli_bad_references_and_queries(project: Path) -> None:
    for _ in range(2):
        assert runbase_cmd("run", "--no-code", "--", PY, "-c", "pass", cwd=project).returncode == 0
    runs = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    ids_ = [r["id"] for r in runs]
    assert len(ids_) == 2
    prefix = os.path.commonprefix(ids_)
    assert prefix, ids_  # ids start with a time prefix: two runs a second apart share one

    _assert_clean_error(runbase_cmd("show", "nope", cwd=project), "no run matches 'nope'")
    _assert_clean_error(runbase_cmd("show", prefix[0], cwd=project), "matches several runs")
    for where in (
        "params.lr <",
        "params.lr < < 3",
        "(status == 'x'",
        "params.lr > 0.1 and",
        "status == 'a' $ 3",
    ):
        _assert_clean_error(runbase_cmd("ls", "--where", where, cwd=project))
    # a unique prefix still resolves
    rec = json.loads(runbase_cmd("show", ids_[0][:12], "--json", cwd=project, check=True).stdout)
    assert rec["id"] == ids_[0]


def test_odd_param_and_metric_values(project: Path) -> None:
    write(
        project,
        "odd.py",
        """
        import os
        import runbase

        class Opaque:
            pass

        obj = Opaque()
        big = os.urandom(2_621_440).hex()  # 5 MiB of text that does not compress
        with open("ignored/expected.txt", "w") as f:
            f.write(repr(obj) + "\\n" + big)
        runbase.param("obj", obj)
        runbase.param("big", big)
        runbase.log(nanv=0.5, step=0)
        runbase.log(nanv=float("nan"), step=1)
        runbase.log(infv=float("-inf"), step=0)
        runbase.log(infv=float("inf"), step=1)
        runbase.log(txt="not a number", step=0)
        runbase.log(txt="still not", step=1)
        runbase.log(txt="nor this", step=2)
        runbase.log(ok=1.0)
        print("ODD-DONE")
    """,
    )
    (project / "ignored").mkdir()
    proc = runbase_cmd("run", "--", PY, "odd.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "ODD-DONE" in proc.stdout
    store = project / ".runbase"
    expected_repr, big = (project / "ignored" / "expected.txt").read_text().split("\n", 1)
    assert len(big) == 5 * 1024 * 1024
    v = view(store)
    assert v.status == "finished"

    # an object that JSON cannot hold: its repr
    assert v.params["obj"] == expected_repr and expected_repr.startswith(
        "<__main__.Opaque object at 0x"
    )

    # a 5 MB string: kept whole, as an object
    ref = v.params["big"]
    assert isinstance(ref, dict) and set(ref) >= {"$object", "size", "preview"}, str(ref)[:300]
    assert ref["size"] >= len(big)
    assert big.startswith(ref["preview"].lstrip('"'))
    from runbase.store import Store

    s = Store.open(store)
    try:
        stored = s.objects.get_bytes(ref["$object"])
    finally:
        s.close()
    assert json.loads(stored) == big

    # NaN and infinities: stored faithfully
    nanv = read_series(store, v.id, "nanv")
    assert nanv.steps == [0, 1] and nanv.values[0] == 0.5 and math.isnan(nanv.values[1])
    infv = read_series(store, v.id, "infv")
    assert infv.steps == [0, 1] and infv.values == [-math.inf, math.inf]
    assert math.isnan(v.metrics["nanv"]["last"]) and v.metrics["nanv"]["count"] == 2
    assert v.metrics["infv"]["last"] == math.inf and v.metrics["infv"]["min"] == -math.inf
    show = runbase_cmd("show", "--json", cwd=project, check=True).stdout
    assert "NaN" in show and "Infinity" in show
    rec = json.loads(show)  # strict JSON: no bare NaN tokens
    assert rec["metrics"]["nanv"]["last"] == "NaN" and rec["metrics"]["nanv"]["min"] == 0.5
    assert (
        rec["metrics"]["infv"]["last"] == "Infinity"
        and rec["metrics"]["infv"]["min"] == "-Infinity"
    )
    assert rec["params"]["obj"] == expected_repr

    # a string metric value: skipped, with one warning that names it
    assert "txt" not in v.metrics or v.metrics["txt"]["count"] == 0, v.metrics.get("txt")
    assert v.metrics["ok"]["count"] == 1
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("runbase: warning")]
    assert len(warnings) == 1 and "txt" in warnings[0], proc.stderr


def test_log_before_init_starts_a_run(project: Path) -> None:
    write(
        project,
        "auto.py",
        """
        import runbase
        runbase.log(x=1.0)
        runbase.log(x=2.0)
        assert runbase.active_run() is not None
        print("AUTO-RUN", runbase.active_run().id)
    """,
    )
    proc = subprocess.run(
        [PY, "auto.py"], cwd=project, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    m = re.search(r"AUTO-RUN (\w+)", proc.stdout)
    assert m, proc.stdout
    v = view(project / ".runbase", m.group(1))
    assert v.status == "finished" and v.rec["mode"] == "api", v.rec
    assert v.metrics["x"]["count"] == 2 and v.metrics["x"]["last"] == 2.0
    assert read_series(project / ".runbase", v.id, "x").steps == [0, 1]
    assert v.rec["env"] and v.rec["env"]["python"]
