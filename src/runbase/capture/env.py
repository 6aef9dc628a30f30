"""The environment a run used: Python and every package, OS, CPU, RAM, GPUs, container,
environment variables (secrets redacted).

Captured by the supervisor/watcher, not the training process, from what the first
Python process of the run reported about itself (executable, version, ``sys.path``).
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from runbase.capture.secrets import redact_env


def packages(path: list[str] | None = None) -> list[dict[str, Any]]:
    """Every installed distribution visible on ``path`` (first one wins, like import)."""
    from importlib import metadata  # lazy: ~10 ms, only when packages are listed

    seen: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions(path=path if path is not None else sys.path):
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if not name:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in seen:
            continue
        entry: dict[str, Any] = {"name": name, "version": dist.version}
        try:
            direct = dist.read_text("direct_url.json")
            if direct:
                info = json.loads(direct)
                entry["url"] = info.get("url")
                if info.get("dir_info", {}).get("editable"):
                    entry["editable"] = True
                if "vcs_info" in info:
                    entry["vcs"] = info["vcs_info"]
        except Exception:
            pass
        seen[key] = entry
    return sorted(seen.values(), key=lambda e: e["name"].lower())


def os_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
    }
    try:
        rel = dict(
            line.split("=", 1)
            for line in Path("/etc/os-release").read_text().splitlines()
            if "=" in line
        )
        info["distro"] = rel.get("PRETTY_NAME", "").strip('"') or None
    except OSError:
        info["distro"] = None
    return info


def cpu_info() -> dict[str, Any]:
    model = None
    physical: set[tuple[str, str]] = set()
    try:
        phys_id = core_id = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name" and model is None:
                model = v
            elif k == "physical id":
                phys_id = v
            elif k == "core id":
                core_id = v
                physical.add((phys_id, core_id))
    except OSError:
        pass
    return {
        "model": model or platform.processor() or None,
        "arch": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_physical": len(physical) or None,
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _nvidia_present() -> bool:
    # importing pynvml costs ~10 ms: only try where an NVIDIA driver can be
    return os.path.exists("/proc/driver/nvidia") or any(
        os.path.exists(p)
        for p in ("/dev/nvidiactl", "/dev/nvidia0", "/usr/lib/wsl/lib/libnvidia-ml.so.1")
    )


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs via NVML; no driver or no GPU is an empty list, silently."""
    if not _nvidia_present():
        return []
    try:
        import pynvml  # lazy: optional (GPUs only)
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded on machines without GPUs
        return []
    try:
        driver = _s(pynvml.nvmlSystemGetDriverVersion())
        try:
            cuda_v = pynvml.nvmlSystemGetCudaDriverVersion()
            cuda = f"{cuda_v // 1000}.{(cuda_v % 1000) // 10}"
        except Exception:
            cuda = None
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpu: dict[str, Any] = {
                "index": i,
                "name": _s(pynvml.nvmlDeviceGetName(h)),
                "memory_total_bytes": int(mem.total),
                "uuid": _s(pynvml.nvmlDeviceGetUUID(h)),
                "driver": driver,
                "cuda": cuda,
            }
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
                gpu["compute_capability"] = f"{major}.{minor}"
            except Exception:
                pass
            out.append(gpu)
        return out
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def container_info() -> dict[str, Any] | None:
    """Docker/Podman/Kubernetes/containerd/LXC detection, with the image when discoverable."""
    kind = None
    image = os.environ.get("RUNBASE_CONTAINER_IMAGE") or os.environ.get("CONTAINER_IMAGE")
    if Path("/run/.containerenv").exists():
        kind = "podman"
        try:
            for line in Path("/run/.containerenv").read_text().splitlines():
                if line.startswith("image="):
                    image = image or line.split("=", 1)[1].strip('"') or None
        except OSError:
            pass
    elif Path("/.dockerenv").exists():
        kind = "docker"
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        kind = "kubernetes"
    if kind is None:
        try:
            cg = Path("/proc/1/cgroup").read_text()
            for marker, name in (
                ("kubepods", "kubernetes"),
                ("docker", "docker"),
                ("containerd", "containerd"),
                ("lxc", "lxc"),
            ):
                if marker in cg:
                    kind = name
                    break
        except OSError:
            pass
    if kind is None and os.environ.get("container"):  # noqa: SIM112 - lowercase by convention (systemd, podman)
        kind = os.environ["container"]  # noqa: SIM112
    if kind is None:
        return None
    return {"type": kind, "image": image, "hostname": socket.gethostname()}


def path_fingerprint(path: list[str]) -> str:
    """Changes when a directory on ``path`` gains or loses entries (pip install/uninstall
    adds or removes ``*.dist-info`` directories, which updates the parent's mtime)."""
    parts = []
    for p in path:
        try:
            parts.append(f"{p}\0{os.stat(p).st_mtime_ns}")
        except OSError:
            parts.append(f"{p}\0-")
    import hashlib  # lazy: only a new environment record is fingerprinted

    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def capture(python: dict[str, Any] | None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The env record of a run, without its packages (see :func:`packages`)."""
    vars_, _ = redact_env(dict(os.environ if environ is None else environ))
    py = None
    if python:
        py = {k: v for k, v in python.items() if k not in ("path", "pid")}
    env = {
        "python": py,
        "os": os_info(),
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "gpus": gpus(),
        "container": container_info(),
        "vars": vars_,
    }
    return env


def user_and_host() -> tuple[str | None, str]:
    try:
        user = getpass.getuser()
    except Exception:
        user = None
    return user, socket.gethostname()
