"""System metrics of a run: CPU, memory, disk and network I/O, NVIDIA GPUs.

Sampled outside the training process, every ``interval`` seconds: by the supervisor
(``runbase run``) for the command's process tree, or by the watcher of a
``runbase.init()`` run for the training process and its children. Samples go to a
spool file of their own (``sys-<pid>-<nonce>.spool``) and reach the store with the
rest of the run's spool, so sampling never waits on the store. They become ``sys/*``
metric series (step = sample index, with wall-clock times) and two summaries,
``sys/peak_rss_bytes`` and ``sys/cpu_seconds`` (docs/run-record.md lists them all).

A failure never touches the run: each part (process tree, machine counters, GPUs)
that fails is dropped with one warning. psutil and pynvml are imported on the sampling
thread, after the command has started; a command that ends within ~0.2 s costs
neither import.
"""

from __future__ import annotations

import math
import os
import threading
import time

from runbase.core._safe import warn_once
from runbase.core.spool import (
    KIND_KEY,
    STEP_KEY,
    TIME_KEY,
    encode_frame,
    open_spool_file,
    write_all,
)

TYPE_CHECKING = False  # not `from typing import`: typing costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

ENV_VAR = "RUNBASE_SYSTEM_INTERVAL"
DEFAULT_INTERVAL = 5.0  # seconds
MIN_INTERVAL = 0.1
PREFIX = "sys/"
PEAK_RSS = "sys/peak_rss_bytes"
CPU_SECONDS = "sys/cpu_seconds"
_SETTLE = 0.2  # seconds before the first import: a command that ends at once costs nothing


def is_system_metric(key: str) -> bool:
    """``sys/*`` keys describe the machine, not the result (reproduce and diff skip them)."""
    return key.startswith(PREFIX)


def resolve_interval(value: float | None = None) -> float:
    """The sampling interval in seconds: ``value``, else ``$RUNBASE_SYSTEM_INTERVAL``,
    else 5; 0 (or less) turns sampling off. A bad environment value warns once."""
    if value is None:
        text = os.environ.get(ENV_VAR, "").strip()
        if not text:
            return DEFAULT_INTERVAL
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isnan(value):
            warn_once(
                "sys-interval",
                f"${ENV_VAR}={text!r} is not a number of seconds; sampling system metrics "
                f"every {DEFAULT_INTERVAL:g} s",
            )
            return DEFAULT_INTERVAL
    if not value > 0:
        return 0.0
    return max(float(value), MIN_INTERVAL) if math.isfinite(value) else 0.0


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped children, cumulative."""
    try:
        # lazy: POSIX only; microseconds, where os.times() has clock ticks
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    except (ImportError, OSError, ValueError):  # no `resource` on Windows
        t = os.times()
        return t.children_user + t.children_system
    return ru.ru_utime + ru.ru_stime


class SystemSampler:
    """Samples the process tree of ``pid`` and the machine on a daemon thread.

    >>> s = SystemSampler(spool_dir, 5.0, own_children=True)   # doctest: +SKIP
    >>> s.start(child.pid); ...; child.wait(); s.stop()        # doctest: +SKIP

    ``own_children``: ``pid`` is our child, so at ``stop()`` (after it was reaped) its
    whole CPU time is known from the kernel, even for a command shorter than one
    interval.
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike[str],
        interval: float,
        *,
        own_children: bool = False,
        cuda_visible_devices: str | None = None,
    ) -> None:
        self.spool_dir = os.fspath(spool_dir)
        self.interval = interval
        self.cuda_visible_devices = cuda_visible_devices
        self.pid: int | None = None
        self.step = 0
        self.peak_rss = 0
        self.cpu_seconds: float | None = None  # None: not known (no psutil, no child)
        self._base = children_cpu() if own_children else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def start(self, pid: int) -> None:
        self.pid = pid
        self._thread = threading.Thread(target=self._loop, name="runbase-sysmetrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling and record the final summaries."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # stuck (a hung NVML call?): its frames are whole; skip ours
        try:
            if self._base is not None:
                # (not ru_maxrss: it counts the supervisor's pages a child had before exec)
                self.cpu_seconds = max(self.cpu_seconds or 0.0, children_cpu() - self._base)
            summary = self._summary(time.time())
            if summary["values"]:
                self._write([summary])
        except Exception as e:  # noqa: BLE001 - never break the run
            warn_once("sysmetrics", f"could not record system metrics: {type(e).__name__}: {e}")
        finally:
            self._close()

    # -- the sampling thread --------------------------------------------------------
    def _loop(self) -> None:
        try:
            if self._stop.wait(min(_SETTLE, self.interval)):
                return
            assert self.pid is not None
            probes = _open_probes(self.pid, self.cuda_visible_devices)
            if not probes:
                return
            next_at = time.monotonic() + self.interval
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                now = time.monotonic()
                next_at = max(next_at + self.interval, now + self.interval / 2)
                self._sample(probes)
            for p in probes:
                p.close()
        except Exception as e:  # noqa: BLE001 - the run goes on without system metrics
            warn_once("sysmetrics", f"could not sample system metrics: {type(e).__name__}: {e}")

    def _sample(self, probes: list[Any]) -> None:
        values: dict[str, Any] = {}
        for p in list(probes):
            try:
                p.sample(values, self)
            except Exception as e:  # noqa: BLE001 - drop this part, keep the others
                probes.remove(p)
                warn_once(
                    f"sysmetrics-{p.name}",
                    f"could not sample {p.name} metrics: {type(e).__name__}: {e}",
                )
        if not values:
            return
        t = time.time()
        values[TIME_KEY] = t
        values[STEP_KEY] = self.step
        self.step += 1
        summary = self._summary(t)
        self._write([values, summary] if summary["values"] else [values])

    def _summary(self, t: float) -> dict[str, Any]:
        vals: dict[str, float] = {}
        if self.cpu_seconds is not None:
            vals[CPU_SECONDS] = float(self.cpu_seconds)
        if self.peak_rss:
            vals[PEAK_RSS] = float(self.peak_rss)
        return {KIND_KEY: "summary", "values": vals, TIME_KEY: t}

    def _write(self, entries: list[dict[str, Any]]) -> None:
        """Append one frame. An unwritable store (full, read-only) loses the sample, not
        the run, and is not reported here: the supervisor reports the store's state once
        for the whole run. A torn frame ends its file, so after an error the next
        sample starts a new file."""
        frame = encode_frame(entries)
        if self._fd is None:
            # no makedirs: a missing spool directory means the run was finalized
            try:
                self._fd = open_spool_file(self.spool_dir, "sys-")
            except OSError:
                return
        try:
            write_all(self._fd, frame)
        except OSError:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def _open_probes(pid: int, cuda_visible_devices: str | None) -> list[Any]:
    probes: list[Any] = []
    try:
        probes.append(_ProcessProbe(pid))
    except ImportError:
        warn_once("sysmetrics-psutil", "system metrics need psutil (pip install psutil); skipped")
    except Exception as e:  # noqa: BLE001 - the process may already be gone
        if not isinstance(e, LookupError):
            warn_once("sysmetrics-process", f"could not sample process metrics: {e}")
    gpu = _open_gpus(cuda_visible_devices)
    if gpu is not None:
        probes.append(gpu)
    return probes


class _ProcessProbe:
    """The process tree of ``pid`` (CPU, RSS) and the machine (CPU, memory, disk, network)."""

    name = "process"

    def __init__(self, pid: int) -> None:
        import psutil  # lazy: optional third-party, only for the process sampler

        self.psutil = psutil
        try:
            self.root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise LookupError(pid) from None
        self.t = time.monotonic()
        self.tree_cpu = self._tree()[0]
        psutil.cpu_percent(None)  # the baseline of the first machine-wide sample
        self.disk = self._disk()
        self.net = self._net()

    def close(self) -> None:
        pass

    def _tree(self) -> tuple[float, int, int]:
        """(CPU seconds, RSS bytes, processes) of the live tree. A process's own
        times plus those of its reaped children: an exited child's time moves to its
        parent, so the sum does not drop when workers come and go."""
        ps = self.psutil
        me = os.getpid()  # a run's watcher is a child of the training process: not us
        try:
            procs = [self.root, *(p for p in self.root.children(recursive=True) if p.pid != me)]
        except ps.Error:
            return 0.0, 0, 0
        cpu = 0.0
        rss = 0
        n = 0
        for p in procs:
            try:
                with p.oneshot():
                    c = p.cpu_times()
                    m = p.memory_info()
            except ps.Error:
                continue
            cpu += c.user + c.system + getattr(c, "children_user", 0.0)
            cpu += getattr(c, "children_system", 0.0)
            rss += m.rss
            n += 1
        return cpu, rss, n

    def _disk(self) -> tuple[int, int] | None:
        try:
            d = self.psutil.disk_io_counters()
        except Exception:  # noqa: BLE001 - no disks visible (some containers)
            return None
        return (d.read_bytes, d.write_bytes) if d is not None else None

    def _net(self) -> tuple[int, int] | None:
        """Bytes sent and received by every interface but loopback."""
        try:
            nics = self.psutil.net_io_counters(pernic=True)
        except Exception:  # noqa: BLE001
            return None
        if not nics:
            return None
        real = [n for name, n in nics.items() if not name.startswith("lo")]
        return sum(n.bytes_sent for n in real), sum(n.bytes_recv for n in real)

    def sample(self, out: dict[str, Any], sampler: SystemSampler) -> None:
        now = time.monotonic()
        dt = max(now - self.t, 1e-6)
        self.t = now
        cpu, rss, n = self._tree()
        if n:
            out["sys/proc_cpu_percent"] = max(0.0, cpu - self.tree_cpu) / dt * 100.0
            out["sys/rss_bytes"] = float(rss)
            out["sys/proc_count"] = float(n)
            sampler.peak_rss = max(sampler.peak_rss, rss)
            sampler.cpu_seconds = max(sampler.cpu_seconds or 0.0, cpu)
            self.tree_cpu = max(self.tree_cpu, cpu)
        out["sys/cpu_percent"] = float(self.psutil.cpu_percent(None))
        try:
            vm = self.psutil.virtual_memory()
            out["sys/mem_used_bytes"] = float(vm.total - vm.available)
        except Exception:  # noqa: BLE001
            pass
        disk = self._disk()
        if disk is not None and self.disk is not None:
            out["sys/disk_read_bytes_per_s"] = max(0, disk[0] - self.disk[0]) / dt
            out["sys/disk_write_bytes_per_s"] = max(0, disk[1] - self.disk[1]) / dt
        self.disk = disk
        net = self._net()
        if net is not None and self.net is not None:
            out["sys/net_sent_bytes_per_s"] = max(0, net[0] - self.net[0]) / dt
            out["sys/net_recv_bytes_per_s"] = max(0, net[1] - self.net[1]) / dt
        self.net = net


def _open_gpus(cuda_visible_devices: str | None) -> _GpuProbe | None:
    from runbase.capture.env import _nvidia_present  # lazy: capture.env loads json, socket

    if not _nvidia_present():
        return None
    try:
        import pynvml  # lazy: optional (GPUs only)
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver loaded: no GPUs, no warning (as env.gpus)
        return None
    try:
        return _GpuProbe(pynvml, cuda_visible_devices)
    except Exception as e:  # noqa: BLE001
        warn_once("sysmetrics-gpu", f"could not sample GPU metrics: {type(e).__name__}: {e}")
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
        return None


class _GpuProbe:
    """Per-GPU utilisation, memory, power and temperature via NVML (all GPUs of the
    machine, or those ``$CUDA_VISIBLE_DEVICES`` names, by their NVML index)."""

    name = "GPU"
    _FIELDS = ("util_percent", "mem_used_bytes", "power_w", "temp_c")

    def __init__(self, nvml: Any, cuda_visible_devices: str | None) -> None:
        self.nvml = nvml
        handles = [
            (i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())
        ]
        self.gpus = _visible(nvml, handles, cuda_visible_devices)
        # a metric a GPU does not support (power on some boards) is dropped for good
        self.unsupported: set[tuple[int, str]] = set()

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass

    def sample(self, out: dict[str, Any], sampler: SystemSampler) -> None:
        nvml = self.nvml
        for i, h in self.gpus:
            base = f"sys/gpu{i}/"
            for field in self._FIELDS:
                if (i, field) in self.unsupported:
                    continue
                try:
                    if field == "util_percent":
                        out[base + field] = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                    elif field == "mem_used_bytes":
                        mem = nvml.nvmlDeviceGetMemoryInfo(h)
                        out[base + field] = float(mem.used)
                        out[base + "mem_total_bytes"] = float(mem.total)
                    elif field == "power_w":
                        out[base + field] = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
                    elif field == "temp_c":
                        out[base + field] = float(
                            nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
                        )
                except nvml.NVMLError as e:
                    self.unsupported.add((i, field))
                    if not isinstance(e, nvml.NVMLError_NotSupported):
                        warn_once(f"sysmetrics-gpu-{field}", f"could not sample GPU {field}: {e}")


def _visible(nvml: Any, handles: list[tuple[int, Any]], spec: str | None) -> list[tuple[int, Any]]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` leaves visible (indices or ``GPU-`` UUID
    prefixes); all of them when it is unset or holds something else (MIG ids)."""
    if spec is None:
        return handles
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items or items[0] == "-1" or items[0].lower() == "none":
        return []
    chosen: list[tuple[int, Any]] = []
    for item in items:
        if item.lstrip("-").isdigit():
            k = int(item)
            if k < 0:
                break  # CUDA stops at the first invalid index
            chosen += [(i, h) for i, h in handles if i == k and all(j != i for j, _ in chosen)]
        elif item.startswith("GPU-"):
            for i, h in handles:
                uuid = nvml.nvmlDeviceGetUUID(h)
                uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                if uuid.startswith(item) and all(j != i for j, _ in chosen):
                    chosen.append((i, h))
                    break
        else:
            return handles
    return chosen
