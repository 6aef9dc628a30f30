"""System metrics (sys/*): sampled by the supervisor or the watcher, never by the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import runbase_cmd, wait_until, write
from runbase.capture import sysmetrics
from runbase.capture.env import _nvidia_present

PY = sys.executable
MB = 1 << 20

# ~3 s of pure-Python CPU burn that grows to ~200 MB of resident memory over the first ~2 s
BURN = """
import time
start = time.monotonic()
chunks = []
while time.monotonic() - start < 3.0:
    x = 0
    for i in range(20000):
        x += i * i
    if len(chunks) < 200 and time.monotonic() - start > len(chunks) * 0.01:
        chunks.append(b"x" * (1 << 20))  # bytes of b"x": really resident
"""


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "--json", "--no-patch", cwd=project, check=True).stdout)


def series(project: Path, key: str) -> list[tuple[int, float]]:
    import runbase

    s = runbase.get_run("latest", store=str(project / ".runbase")).series(key)
    return list(zip(s.steps, s.values, strict=True))


def sys_keys(rec: dict) -> set[str]:
    return {k for k in rec["metrics"] if k.startswith("sys/")}


def test_run_samples_the_process_tree(project: Path) -> None:
    write(project, "burn.py", BURN)
    proc = runbase_cmd("run", "--system-interval", "0.5", "--", PY, "burn.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    rec = record(project)
    m = rec["metrics"]
    cpu = series(project, "sys/proc_cpu_percent")
    assert len(cpu) >= 3
    assert [s for s, _ in cpu] == list(range(len(cpu)))  # step = sample index
    assert max(v for _, v in cpu) > 25  # a busy loop: well above 0 (the machine is shared)
    rss = [v for _, v in series(project, "sys/rss_bytes")]
    assert rss[-1] > rss[0] + 50 * MB and max(rss) > 100 * MB
    assert m["sys/peak_rss_bytes"]["value"] >= 150 * MB and m["sys/peak_rss_bytes"]["count"] == 0
    assert m["sys/cpu_seconds"]["value"] >= 1.0 and m["sys/cpu_seconds"]["count"] == 0
    for key in (
        "sys/cpu_percent",
        "sys/mem_used_bytes",
        "sys/proc_count",
        "sys/disk_read_bytes_per_s",
        "sys/disk_write_bytes_per_s",
        "sys/net_sent_bytes_per_s",
        "sys/net_recv_bytes_per_s",
    ):
        assert m[key]["count"] == len(cpu), key
        assert m[key]["min"] >= 0, key
    assert 0 <= m["sys/cpu_percent"]["max"] <= 100
    if not _nvidia_present():  # no GPU: no GPU series and no error
        assert not any(k.startswith("sys/gpu") for k in m)
    # a summary written again and again: last/min/max are the latest summary
    assert m["sys/cpu_seconds"]["last"] == m["sys/cpu_seconds"]["value"]


def test_interval_zero_turns_sampling_off(project: Path) -> None:
    write(project, "burn.py", "import time\nt = time.time()\nwhile time.time() - t < 1.2: pass\n")
    runbase_cmd("run", "--system-interval", "0", "--", PY, "burn.py", cwd=project, check=True)
    assert sys_keys(record(project)) == set()
    env = {"RUNBASE_SYSTEM_INTERVAL": "0"}
    runbase_cmd("run", "--", PY, "burn.py", cwd=project, env=env, check=True)
    assert sys_keys(record(project)) == set()


def test_short_run_still_gets_its_cpu_time(project: Path) -> None:
    # shorter than one interval: no series, but the supervisor knows its child's CPU time
    runbase_cmd("run", "--", PY, "-c", "pass", cwd=project, check=True)
    rec = record(project)
    assert sys_keys(rec) <= {"sys/cpu_seconds", "sys/peak_rss_bytes"}
    assert "sys/cpu_seconds" in rec["metrics"] and rec["metrics"]["sys/cpu_seconds"]["value"] > 0


def test_environment_sets_the_interval(project: Path) -> None:
    write(project, "burn.py", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n")
    env = {"RUNBASE_SYSTEM_INTERVAL": "0.3"}
    runbase_cmd("run", "--", PY, "burn.py", cwd=project, env=env, check=True)
    assert record(project)["metrics"]["sys/proc_cpu_percent"]["count"] >= 2


def test_bad_interval(project: Path) -> None:
    proc = runbase_cmd("run", "--system-interval", "-1", "--", "true", cwd=project)
    assert proc.returncode == 2 and "--system-interval" in proc.stderr
    env = {"RUNBASE_SYSTEM_INTERVAL": "often"}
    proc = runbase_cmd("run", "--", "true", cwd=project, env=env)
    assert proc.returncode == 0
    assert "RUNBASE_SYSTEM_INTERVAL='often' is not a number" in proc.stderr


def test_api_mode_watcher_samples_the_training_process(project: Path) -> None:
    write(project, "train.py", "import runbase\nrunbase.init()\n" + BURN + "runbase.log(x=1.0)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    env["RUNBASE_SYSTEM_INTERVAL"] = "0.5"
    done = subprocess.run([PY, "train.py"], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr
    rec = record(project)
    assert rec["mode"] == "api" and rec["status"] == "finished"
    m = rec["metrics"]
    assert m["sys/proc_cpu_percent"]["count"] >= 2 and m["sys/proc_cpu_percent"]["max"] > 25
    assert m["sys/rss_bytes"]["max"] > 100 * MB
    assert m["sys/peak_rss_bytes"]["value"] >= m["sys/rss_bytes"]["max"]
    assert m["sys/cpu_seconds"]["value"] >= 0.5
    assert m["sys/proc_count"]["max"] == 1  # the watcher (a child of the process) left out
    if not _nvidia_present():
        assert not any(k.startswith("sys/gpu") for k in m)


def test_resolve_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sysmetrics.ENV_VAR, raising=False)
    assert sysmetrics.resolve_interval() == sysmetrics.DEFAULT_INTERVAL
    assert sysmetrics.resolve_interval(2) == 2.0
    assert sysmetrics.resolve_interval(0) == 0.0
    assert sysmetrics.resolve_interval(0.001) == sysmetrics.MIN_INTERVAL
    monkeypatch.setenv(sysmetrics.ENV_VAR, "0.5")
    assert sysmetrics.resolve_interval() == 0.5
    assert sysmetrics.resolve_interval(3) == 3.0  # the option wins over the environment
    monkeypatch.setenv(sysmetrics.ENV_VAR, "-1")
    assert sysmetrics.resolve_interval() == 0.0
    monkeypatch.setenv(sysmetrics.ENV_VAR, "inf")
    assert sysmetrics.resolve_interval() == 0.0


def test_cuda_visible_devices_selects_gpus() -> None:
    class FakeNvml:
        @staticmethod
        def nvmlDeviceGetUUID(h: str) -> bytes:
            return f"GPU-{h}-0000".encode()

    handles = [(0, "aaaa"), (1, "bbbb"), (2, "cccc")]
    vis = sysmetrics._visible
    assert vis(FakeNvml, handles, None) == handles
    assert vis(FakeNvml, handles, "2,0") == [(2, "cccc"), (0, "aaaa")]
    assert vis(FakeNvml, handles, "1,-1,2") == [(1, "bbbb")]
    assert vis(FakeNvml, handles, "") == [] and vis(FakeNvml, handles, "-1") == []
    assert vis(FakeNvml, handles, "GPU-bbbb") == [(1, "bbbb")]
    assert vis(FakeNvml, handles, "MIG-1234") == handles


def test_reproduce_and_diff_ignore_system_metrics() -> None:
    from runbase.analysis.diff import _metrics
    from runbase.tracking.reproduce import judge

    a = {"status": "finished", "exit_code": 0, "metrics": {"acc": {"value": 0.9}}}
    b = json.loads(json.dumps(a))
    a["metrics"]["sys/cpu_seconds"] = {"value": 3.0}
    b["metrics"]["sys/cpu_seconds"] = {"value": 4.5}
    b["metrics"]["sys/rss_bytes"] = {"value": 1e9}
    v = judge(a, b)
    assert v.reproduced and [c.key for c in v.metrics] == ["acc"]
    assert _metrics(None, a, b)["unchanged"]  # type: ignore[arg-type]


class _FakeNvml:
    """The part of pynvml the sampler uses: two GPUs, the second without power readings."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's name
        pass

    class _Util:
        gpu = 42

    class _Mem:
        used = 3 << 30
        total = 80 << 30

    shutdown = False

    @classmethod
    def nvmlInit(cls) -> None:
        pass

    @classmethod
    def nvmlShutdown(cls) -> None:
        cls.shutdown = True

    @staticmethod
    def nvmlDeviceGetCount() -> int:
        return 2

    @staticmethod
    def nvmlDeviceGetHandleByIndex(i: int) -> str:
        return f"h{i}"

    @classmethod
    def nvmlDeviceGetUtilizationRates(cls, h: str) -> object:
        return cls._Util()

    @classmethod
    def nvmlDeviceGetMemoryInfo(cls, h: str) -> object:
        return cls._Mem()

    @classmethod
    def nvmlDeviceGetPowerUsage(cls, h: str) -> int:
        if h == "h1":
            raise cls.NVMLError_NotSupported("not supported")
        return 312_500  # mW

    @staticmethod
    def nvmlDeviceGetTemperature(h: str, sensor: int) -> int:
        return 61


def test_sampler_spools_gpu_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole sampler in-process, with a fake NVML: what lands in the spool."""
    from runbase.capture import env as envcap
    from runbase.core.spool import KIND_KEY, STEP_KEY, read_frames

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml)
    monkeypatch.setattr(envcap, "_nvidia_present", lambda: True)
    sampler = sysmetrics.SystemSampler(tmp_path, 0.1, cuda_visible_devices=None)
    sampler.start(os.getpid())
    wait_until(lambda: sampler.step >= 3, what="three samples", timeout=30)
    sampler.stop()
    [spool] = list(tmp_path.glob("sys-*.spool"))
    entries = [e for _end, batch in read_frames(spool) for e in batch]
    points = [e for e in entries if KIND_KEY not in e]
    summaries = [e for e in entries if KIND_KEY in e]
    assert len(points) >= 3 and [p[STEP_KEY] for p in points] == list(range(len(points)))
    last = points[-1]
    assert last["sys/gpu0/util_percent"] == 42.0 and last["sys/gpu1/util_percent"] == 42.0
    assert last["sys/gpu0/mem_used_bytes"] == 3 << 30
    assert last["sys/gpu0/mem_total_bytes"] == 80 << 30
    assert last["sys/gpu0/power_w"] == 312.5 and "sys/gpu1/power_w" not in last
    assert last["sys/gpu0/temp_c"] == 61.0
    assert last["sys/rss_bytes"] > 0 and "sys/proc_cpu_percent" in last
    assert summaries[-1]["values"]["sys/peak_rss_bytes"] >= last["sys/rss_bytes"]
    assert _FakeNvml.shutdown


def test_sampler_never_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A spool directory that is gone (the run was finalized) and a process that is gone:
    no exception, no output."""
    import time

    proc = subprocess.Popen([PY, "-c", "pass"])
    proc.wait()
    sampler = sysmetrics.SystemSampler(tmp_path / "gone", 0.1, own_children=True)
    sampler.start(proc.pid)
    time.sleep(0.5)
    sampler.stop()
    assert capsys.readouterr().err == ""
