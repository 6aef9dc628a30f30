"""``runbase run``: supervise a command as a tracked run.

Records the run and its code before the command starts, starts the command with the
bootstrap on ``PYTHONPATH`` (so Python children attach to the run), tees stdout and
stderr (through a pseudo-terminal when ours is a terminal, so colours survive),
ingests spooled metrics while the command runs, and finalizes the run with the
command's exit status, which it then exits with.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runbase.capture import env as envcap
from runbase.capture import overrides as ov
from runbase.capture.overrides import format_value, unused
from runbase.capture.proc import register as register_process
from runbase.capture.proc import start_id
from runbase.capture.secrets import (
    SECRETS_FD_ENV,
    SecretsReader,
    StreamScrubber,
    known_secret_values,
    redact_argv,
    secrets_channel,
)
from runbase.capture.withhold import guard as guard_files
from runbase.core import executorinfo
from runbase.core._safe import safe_call, warn_once
from runbase.core.runfiles import LOG_FILES
from runbase.core.spool import write_all
from runbase.errors import UsageError
from runbase.records import lifecycle
from runbase.records.jobruns import job_ids
from runbase.records.read import load_params, project_root_of, stored_project_root
from runbase.store import Store
from runbase.tracking._child import PUBLISH_URL_ENV

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # runbase/ (this is runbase/tracking/)
BOOTSTRAP_DIR = PACKAGE_DIR / "_bootstrap"
_INGEST_EVERY = 1.0
# forwarded to the command while it runs (Ctrl-C reaches it directly), held after it exits
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass
class RunOptions:
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    store: str | None = None
    capture_code: bool = True
    parent_id: str | None = None
    sweep_id: str | None = None
    reproduces: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    hash_only: bool = False
    # parameter overrides (runbase.capture.overrides): rewritten on argv or passed by environment
    overrides: dict[str, Any] = field(default_factory=dict)
    # the param_sources of a run being reproduced: keeps its inline params off argv
    param_sources: dict[str, str] = field(default_factory=dict)
    # where the command runs and what its project is (default: the current directory
    # and its git top level); `reproduce` runs in a materialized copy of a run
    cwd: str | None = None
    project_root: str | None = None
    # a code record to use instead of a snapshot (the tree `reproduce` materialized)
    code_record: dict[str, Any] | None = None
    # seconds between system metric samples (sys/*); None: $RUNBASE_SYSTEM_INTERVAL or 5;
    # 0: off
    system_interval: float | None = None
    # a remote to stream the run to while it runs (runbase.remote.publish); None: do not
    publish: str | None = None
    # the id a sweep gave its trial before it started (must be a new run id)
    run_id: str | None = None
    # what runs it (core.executorinfo); None: $RUNBASE_EXECUTOR when set and valid, else
    # this machine
    executor: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    run_id: str
    status: str
    exit_code: int | None
    exit_signal: int | None
    # overrides that nothing consumed (not on argv, no argparse argument or runbase.param)
    unused_overrides: list[str] = field(default_factory=list)
    # a SIGTERM/SIGHUP/SIGQUIT/SIGINT that reached the supervisor after the command had
    # exited: held until the run was recorded, then delivered (run() does)
    late_signal: int | None = None

    @property
    def shell_code(self) -> int:
        """What a shell would report: the exit code, or 128 + signal."""
        if self.exit_signal:
            return 128 + self.exit_signal
        return self.exit_code if self.exit_code is not None else 1


def run(argv: list[str], options: RunOptions | None = None) -> RunOutcome:
    """Run ``argv`` as a tracked run and return how it ended.

    >>> run(["python", "train.py", "--lr", "0.1"]).status   # doctest: +SKIP
    'finished'
    """
    opts = options or RunOptions()
    if not argv:
        raise UsageError("no command given: runbase run [OPTIONS] -- COMMAND [ARGS...]")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"command not found: {argv[0]}")
    argv, opts, env_overrides = _with_overrides(argv, opts)
    store = Store.open(opts.store, create=True)
    lifecycle.recover_orphans(store)
    shown_argv, argv_secrets = redact_argv(argv)
    cwd = Path(opts.cwd).absolute() if opts.cwd else Path.cwd()
    root = Path(opts.project_root) if opts.project_root else lifecycle.project_root(cwd)
    run_id = lifecycle.create_run(
        store,
        command=shown_argv,
        mode="run",
        name=opts.name,
        cwd=str(cwd),
        project_root=str(root),
        tags=opts.tags,
        parent_id=opts.parent_id,
        sweep_id=opts.sweep_id,
        reproduces=opts.reproduces,
        run_id=opts.run_id,
        executor=opts.executor or _executor_from_env(),
    )
    # from here on, a failure of runbase must not stop the command
    # the supervisor reads the config files (it knows argv): what they hold that was
    # redacted (hf_token, db.password) is scrubbed from the logs it tees, and such a
    # file is left out of the code snapshot (so: first)
    config_secrets = safe_call(
        "argv params", lifecycle.record_argv_params, store, run_id, shown_argv, str(cwd)
    )
    secrets = known_secret_values() | argv_secrets | (config_secrets or set())
    # no file holding one of them is stored: the code snapshot's, inputs, and the
    # outputs at the end, when the set also holds what the command reported (_tee)
    guard_files(secrets)
    if opts.code_record is not None:
        safe_call("the code record", lifecycle.record_code, store, run_id, opts.code_record)
    elif opts.capture_code:
        safe_call("the code snapshot", lifecycle.snapshot_code, store, run_id, root)
    safe_call(
        "declared data",
        lifecycle.declare_files,
        store,
        run_id,
        opts.inputs,
        opts.outputs,
        opts.hash_only,
    )
    sup = _Supervised(store, run_id, argv, secrets, opts)
    outcome = sup.run()
    outcome.unused_overrides = safe_call(
        "unused overrides", _warn_unused, store, run_id, env_overrides, default=[]
    )
    if outcome.late_signal:
        _deliver_late(outcome.late_signal)
    return outcome


def _deliver_late(signum: int) -> None:
    """A signal held while the run was recorded goes, now, to whoever had it before us:
    by default it ends this process as it would have (a shell sees 128 + N; a Ctrl-C is
    a KeyboardInterrupt), as a later signal would."""
    signal.raise_signal(signum)


def _executor_from_env() -> dict[str, Any]:
    """What runs this run: the executor's $RUNBASE_EXECUTOR (a Ray task's node, its
    attempt) when valid, else this machine. A bad value is the executor's bug: warned
    about, never a reason not to run."""
    user_host = envcap.user_and_host()
    text = os.environ.get(executorinfo.ENV_VAR)
    if text:
        info = executorinfo.parse(text)
        if info is not None:
            return info
        warn_once(
            "executor-env",
            f"ignoring ${executorinfo.ENV_VAR}: not an executor object "
            f"({executorinfo.problem(_json_or_text(text))}); recording this machine",
        )
    return {"kind": "local", "host": user_host[1]}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _with_overrides(
    argv: list[str], opts: RunOptions
) -> tuple[list[str], RunOptions, dict[str, Any]]:
    """Apply ``opts.overrides`` to argv; the rest go in the environment. The run is
    tagged with them all (JSON), so that it can be reproduced."""
    if not opts.overrides:
        return argv, opts, {}
    argv, rest = ov.apply_to_argv(argv, opts.overrides, opts.param_sources)
    opts = replace(
        opts,
        extra_env={**opts.extra_env, **ov.to_env(rest)},
        tags={**opts.tags, ov.TAG: ov.to_env(opts.overrides)[ov.ENV_VAR]},
    )
    return argv, opts, rest


def unused_overrides(store: Store, run_id: str, overrides: dict[str, Any]) -> list[str]:
    """The ``overrides`` neither run ``run_id`` nor its job runs (runbase.tracking.jobs:
    a Hydra multirun) recorded a param for."""
    if not overrides:
        return []
    ids = [run_id, *job_ids(store, run_id)]
    params = load_params(store, ids)
    sources = {k: s for i in ids for k, (_v, s) in params.get(i, {}).items()}
    return unused(overrides, [], sources)


def _warn_unused(store: Store, run_id: str, env_overrides: dict[str, Any]) -> list[str]:
    """Warn about (and return) the overrides the run did not use."""
    keys = unused_overrides(store, run_id, env_overrides)
    for key in keys:
        sys.stderr.write(
            f"runbase: warning: the override {key}={format_value(env_overrides[key])} was not "
            f"used: {key} is not on the command line, and the run recorded no argparse "
            "argument or runbase.param of that name\n"
        )
    return keys


def child_env(store: Store, run_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a tracked command runs in: bootstrap first on PYTHONPATH."""
    env = dict(os.environ)
    env["RUNBASE_RUN_ID"] = run_id
    env["RUNBASE_DIR"] = str(store.root)
    env["RUNBASE_PACKAGE_DIR"] = str(PACKAGE_DIR)
    env["RUNBASE_SUPERVISOR_PID"] = str(os.getpid())
    env["RUNBASE_SUPERVISOR_START"] = start_id(os.getpid()) or ""  # pid reuse (_child)
    env.pop("RUNBASE_OVERRIDES", None)  # a nested run gets its own overrides, not ours
    env.pop(PUBLISH_URL_ENV, None)  # nor our publishing: set by _Supervised.run when it does
    # nor what ran us: a nested `runbase run` runs locally, inside this run (an executor's
    # value would make it claim a Ray node, or a retry of a lost run)
    env.pop(executorinfo.ENV_VAR, None)
    root = stored_project_root(store, run_id)
    if root:
        env["RUNBASE_PROJECT_ROOT"] = root
    env.update(extra or {})
    # after `extra`: a rebuilt environment clears PYTHONPATH, never the bootstrap
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(BOOTSTRAP_DIR) + (os.pathsep + pp if pp else "")
    return env


def _project_url(remote_name: str, env: dict[str, str]) -> str:
    """``https://host/p/<project>``: where the run is published (for PUBLISH_URL_ENV);
    "" when the command's MLflow token is another than the remote's (its MLflow run
    could belong to another user than the published run: not adopted then)."""
    import urllib.parse  # lazy: only a run that publishes

    from runbase.remote.client import get_remote  # lazy: the HTTP client, as _publisher

    remote = get_remote(remote_name)
    if env.get("MLFLOW_TRACKING_TOKEN") not in (None, remote.token):
        return ""
    return f"{remote.url}/p/{urllib.parse.quote(remote.project)}"


class _Supervised:
    def __init__(
        self, store: Store, run_id: str, argv: list[str], secrets: set[str], opts: RunOptions
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.argv = argv
        self.opts = opts
        self.secrets = secrets
        self.stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.watched: list[tuple[str, str]] = []
        # the first signal that came after the command exited (_on_signal)
        self.late_signal: int | None = None

    def run(self) -> RunOutcome:
        spool = self.store.spool_dir(self.run_id)
        streams = self._open_streams()
        # before any thread of ours starts (the keeper is a fork)
        keeper = safe_call("the output keeper", _Keeper.start, streams, spool, self.secrets)
        env = child_env(self.store, self.run_id, self.opts.extra_env)
        if self.opts.publish:  # an MLflow client in the command logs its run as this one
            env[PUBLISH_URL_ENV] = (
                safe_call("the publish target", _project_url, self.opts.publish, env) or ""
            )
        # values the command redacts once running (a Hydra config's password) come
        # back on this pipe to the log scrubbers
        channel = safe_call("the secrets channel", secrets_channel)
        if channel is not None:
            env[SECRETS_FD_ENV] = channel[2]
        # set up the tree watcher (ctypes, one inotify watch per directory) while the
        # command starts, off the start-up path; Python reads are seen by the audit hook
        watcher_box: list[Any] = []
        root = project_root_of(self.store, self.run_id)  # the DB stays on this thread
        starter = threading.Thread(
            target=lambda: watcher_box.append(self._watch_tree(root)), daemon=True
        )
        starter.start()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=streams.child_out,
                stderr=streams.child_err,
                env=env,
                cwd=self.opts.cwd,
                pass_fds=(channel[1],) if channel is not None else (),
            )
        except OSError as e:
            streams.close_child_ends()
            if keeper is not None:
                keeper.release()
            _close_channel(channel)
            lifecycle.finalize(
                self.store, self.run_id, "failed", exit_code=127, error=f"could not start: {e}"
            )
            raise UsageError(f"could not start {self.argv[0]}: {e}") from e
        streams.close_child_ends()
        if channel is not None:  # only the command writes
            with contextlib.suppress(OSError):
                os.close(channel[1])
        # the run's processes outlive us if we are killed: orphan recovery checks them
        safe_call("the command's pid", register_process, str(spool), self.proc.pid)
        old = self._forward_signals()
        try:
            return self._supervise(streams, keeper, channel, env, starter, watcher_box)
        finally:
            # only once the run is recorded: a signal before this is held (_on_signal)
            self._restore_signals(old)

    def _supervise(
        self,
        streams: _Streams,
        keeper: _Keeper | None,
        channel: tuple[int, int, str] | None,
        env: dict[str, str],
        starter: threading.Thread,
        watcher_box: list[Any],
    ) -> RunOutcome:
        """From the command's start to its recorded end (signals forwarded, then held)."""
        assert self.proc is not None
        spool = self.store.spool_dir(self.run_id)
        # after the command started (psutil and NVML load on the sampler's thread), and
        # before anything could reap it: our children's CPU time so far is its baseline
        sampler = safe_call("system metrics", self._system_sampler, env, self.proc.pid)
        ingester = threading.Thread(target=self._ingest_loop, name="runbase-ingest", daemon=True)
        ingester.start()
        publisher = self._publisher()
        try:
            logs = _LogFiles.open(
                spool, lambda e: store_warning(self.store, f"cannot write the run's logs: {e}")
            )
            try:
                _tee(streams, self.proc, logs, self.secrets, channel and channel[0])
            finally:
                logs.close()
            rc = self.proc.wait()
        finally:
            # the command exited: a signal now must not cost the run's end (the last
            # ingest, the logs, finalize, the final push); it is held, then obeyed
            self._hold_signals()
            if keeper is not None:
                keeper.release()
            if sampler is not None:
                sampler.stop()  # its last frame goes in with the last ingest
            starter.join(timeout=30)
            if watcher_box and watcher_box[0] is not None:
                watcher_box[0].stop()  # before the last ingest, which records what it saw
            self.stop.set()
            ingester.join(timeout=30)
            if publisher is not None:
                publisher.stop()
        status, code, sig = _status_of(rc)
        ended = time.time()
        try:
            lifecycle.finalize(
                self.store, self.run_id, status, exit_code=code, exit_signal=sig, ended_at=ended
            )
        except Exception as e:  # noqa: BLE001
            self._outcome_unsaved(status, code, sig, ended, e)
        if publisher is not None:
            safe_call("publish", publisher.finish)
        return RunOutcome(self.run_id, status, code, sig, late_signal=self.late_signal)

    def _outcome_unsaved(
        self, status: str, code: int | None, sig: int | None, ended: float, e: Exception
    ) -> None:
        """The database could not take the run's end (a full disk, a read-only store):
        the outcome goes in the run's reserved outcome file, recorded by the next
        runbase command that can write (lifecycle.recover_orphans)."""
        error = f"runbase could not record the end of the run: {type(e).__name__}: {e}"
        outcome = {"status": status, "exit_code": code, "exit_signal": sig, "ended_at": ended}
        kept = lifecycle.save_outcome(self.store, self.run_id, {**outcome, "error": error})
        # the run's one store warning (said already if the store failed earlier)
        store_warning(
            self.store,
            f"could not record the end of run {self.run_id} ({e}); "
            + (
                "its exit status is kept in its spool and recorded by the next runbase command"
                if kept
                else "it will show as crashed"
            ),
        )

    def _publisher(self) -> Any:
        if not self.opts.publish:
            return None
        from runbase.remote.publish import start_publisher  # lazy: HTTP client; if publishing

        return start_publisher(self.store, self.opts.publish, self.run_id)

    def _open_streams(self) -> _Streams:
        return _Streams.open(use_pty_out=_isatty(1), use_pty_err=_isatty(2))

    def _system_sampler(self, env: dict[str, str], pid: int) -> Any:
        # lazy: loads (psutil, NVML) once the command has started, beside its own start-up
        from runbase.capture.sysmetrics import SystemSampler, resolve_interval

        interval = resolve_interval(self.opts.system_interval)
        if not interval:
            return None
        sampler = SystemSampler(
            self.store.spool_dir(self.run_id),
            interval,
            own_children=True,
            cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
        )
        sampler.start(pid)
        return sampler

    def _watch_tree(self, root: str) -> Any:
        # lazy: the file capture (blake3, the store's hashing) and inotify (ctypes) load
        # once the command has started, beside its own start-up
        from runbase.capture.files import store_internals
        from runbase.capture.watch import watch

        internal = store_internals(str(self.store.root))

        def on_file(path: str, op: str) -> None:
            if not path.startswith(internal):
                self.watched.append((path, op))

        try:
            return watch(root, on_file)
        except Exception as e:  # noqa: BLE001
            warn_once("watch", f"cannot watch the project for file I/O: {e}")
            return None

    def _record_watched(self) -> None:
        n = len(self.watched)
        if n:
            batch, self.watched[:n] = self.watched[:n], []
            lifecycle.record_watched(self.store, self.run_id, batch)

    def _ingest_loop(self) -> None:
        started = beat_at = time.monotonic()
        env_done = False
        while True:
            stopped = self.stop.wait(_INGEST_EVERY)
            try:
                beat_at = lifecycle.ingest_live(self.store, self.run_id, beat_at)
                self._record_watched()
                if not env_done and time.monotonic() - started > 2.0:
                    # a non-Python command never reports a Python: record the rest now
                    env_done = True
                    if not lifecycle.has_env(self.store, self.run_id):
                        lifecycle.record_env(self.store, self.run_id, None)
            except Exception as e:  # noqa: BLE001
                store_warning(self.store, f"could not ingest metrics: {e}")
            problem = store_problem(self.store)
            if problem:
                store_warning(self.store, problem)
            if stopped:
                return

    def _forward_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        # Ctrl-C reaches the child directly (same process group); we only must not die.
        for sig in _HELD_SIGNALS:
            handler = self._on_signal if sig != signal.SIGINT else signal.SIG_IGN
            with contextlib.suppress(ValueError, OSError):
                old[sig] = signal.signal(sig, handler)
        return old

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Forwarded to the command while it runs; after it exited, held: the run is
        recorded with the command's own outcome, then we exit as the signal asked."""
        if self._command_running():
            if signum != signal.SIGINT and self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signum)
        elif self.late_signal is None:  # a second one changes nothing: recording goes on
            self.late_signal = signum

    def _command_running(self) -> bool:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return False
        waitid = getattr(os, "waitid", None)
        if waitid is None:  # (macOS) poll() says running while our own wait() holds its lock
            return proc.poll() is None
        # without reaping it, nor Popen's lock (held when we are inside its wait()): an
        # exited command still unreaped has already ended
        try:
            return waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:  # reaped by our wait(): it ended
            return False

    def _hold_signals(self) -> None:
        # Ctrl-C too from now on (it was ignored while the command had it)
        for sig in _HELD_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, self._on_signal)

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)


def store_warning(store: Store, message: str) -> None:
    """One warning for every way the store can fail during a run."""
    warn_once("store", f"the store at {store.root} cannot be written: {message}")


def store_problem(store: Store) -> str | None:
    """Why the store cannot take more data (read-only, full), or None."""
    spool = store.spool_root
    try:
        if not os.access(spool, os.W_OK):
            return "it is not writable (read-only?)"
        st = os.statvfs(spool)
        if st.f_bavail * st.f_frsize < (256 << 10):
            return "its filesystem is full"
    except OSError as e:
        return str(e)
    return None


def _status_of(rc: int) -> tuple[str, int | None, int | None]:
    if rc < 0:
        return "killed", None, -rc
    return ("finished" if rc == 0 else "failed"), rc, None


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


@dataclass
class _Streams:
    """Where the child writes (``child_*``) and where we read (``read_*``)."""

    child_out: int
    child_err: int
    read_out: int
    read_err: int

    @classmethod
    def open(cls, use_pty_out: bool, use_pty_err: bool) -> _Streams:
        r_out, w_out = _pty_pair() if use_pty_out else os.pipe()
        r_err, w_err = _pty_pair() if use_pty_err else os.pipe()
        return cls(w_out, w_err, r_out, r_err)

    def close_child_ends(self) -> None:
        for fd in (self.child_out, self.child_err):
            with contextlib.suppress(OSError):
                os.close(fd)


def _pty_pair() -> tuple[int, int]:
    # lazy: a pseudo-terminal only when the output is a terminal
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # keep "\n": the real terminal adds its own "\r"
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        _copy_winsize(1, slave)
    except termios.error:
        pass
    return master, slave


def _copy_winsize(src: int, dst: int) -> None:
    # lazy: a pseudo-terminal only when the output is a terminal
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))


class _Keeper:
    """A forked process that holds the read ends of the command's output pipes, so
    that if ``runbase run`` is killed (SIGKILL cannot be caught) the command can still
    write: it then copies the rest of the output into the run's spool logs (scrubbed
    of the secrets known when the run started; not to our stdout, which it does not
    hold) until the command's last process closes them. It is one of the run's processes (capture.proc.register): orphan recovery
    waits for it, so the logs are complete when the run is finalized."""

    def __init__(self, pid: int, control: int) -> None:
        self.pid = pid
        self.control = control

    @classmethod
    def start(cls, streams: _Streams, spool: Path, secrets: set[str]) -> _Keeper:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the keeper: os-level work only, and it never returns
            try:
                os.close(w)
                for fd in (streams.child_out, streams.child_err):
                    os.close(fd)
                # not our stdio: whoever reads `runbase run`'s output (a terminal, a CI
                # harness that killed it on a timeout) must see it close when we die
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.close(null)
                _keep(r, streams, spool, secrets)
            finally:
                os._exit(0)
        os.close(r)
        return cls(pid, w)

    def release(self) -> None:
        """We finish normally: the keeper exits without reading anything."""
        with contextlib.suppress(OSError):
            os.write(self.control, b"q")
        with contextlib.suppress(OSError):
            os.close(self.control)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)


class _Orphaned:
    """The command as the keeper sees it: not its child, so never seen to exit; the
    tee ends when the last writer closes the pipes."""

    def poll(self) -> None:
        return None


def _keep(control: int, streams: _Streams, spool: Path, secrets: set[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    if os.read(control, 1):
        return  # the supervisor finished normally
    with contextlib.suppress(OSError):
        register_process(str(spool), os.getpid())
    logs = _LogFiles.open(spool, lambda e: None)
    try:
        _tee(streams, _Orphaned(), logs, secrets)  # type: ignore[arg-type]
    finally:
        logs.close()


class _LogFiles:
    """The run's two log files, written unbuffered so a full disk loses bytes, not the run."""

    def __init__(self, fds: dict[str, int | None], on_error: Any) -> None:
        self.fds = fds
        self.on_error = on_error

    @classmethod
    def open(cls, spool: Path, on_error: Any) -> _LogFiles:
        fds: dict[str, int | None] = {}
        for name, fname in LOG_FILES.items():
            try:
                fds[name] = os.open(spool / fname, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                on_error(e)
                fds[name] = None
        return cls(fds, on_error)

    def write(self, which: str, data: bytes) -> None:
        fd = self.fds.get(which)
        if fd is None or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as e:
            self.on_error(e)
            with contextlib.suppress(OSError):
                os.close(fd)
            self.fds[which] = None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _close_channel(channel: tuple[int, int, str] | None) -> None:
    for fd in channel[:2] if channel is not None else ():
        with contextlib.suppress(OSError):
            os.close(fd)


def _tee(
    streams: _Streams,
    proc: subprocess.Popen[bytes],
    logs: _LogFiles,
    secrets: set[str],
    secrets_fd: int | None = None,
) -> None:
    """Copy the child's output to our stdout/stderr and to the logs until both close.
    Values arriving on ``secrets_fd`` join the scrubbers before any later output is
    scrubbed (they are read before each chunk; a scrubber holds a line until it ends)."""
    sel = selectors.DefaultSelector()
    combined = StreamScrubber(secrets)
    err_only = StreamScrubber(secrets)
    reported = SecretsReader(secrets_fd) if secrets_fd is not None else None
    targets = {streams.read_out: 1, streams.read_err: 2}
    for fd in targets:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(targets)
    exited_at: float | None = None
    while open_fds:
        events = sel.select(timeout=0.1)
        if not events and proc.poll() is not None:
            # the child is gone; grandchildren may keep the pipe open: stop after a quiet spell
            exited_at = exited_at or time.monotonic()
            if time.monotonic() - exited_at > 0.3:
                break
        if reported is not None and reported.fd is not None:
            _take_reported(reported, secrets, combined, err_only)
        for key, _ in events:
            fd = key.fd
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other end closed
                data = b""
            if not data:
                sel.unregister(fd)
                open_fds.discard(fd)
                continue
            _write_all(targets[fd], data)
            logs.write("output", combined.feed(data))
            if targets[fd] == 2:
                logs.write("stderr", err_only.feed(data))
    if reported is not None:
        _take_reported(reported, secrets, combined, err_only)
        reported.close()
    logs.write("output", combined.flush())
    logs.write("stderr", err_only.flush())
    sel.close()
    for fd in targets:
        with contextlib.suppress(OSError):
            os.close(fd)


def _take_reported(reported: SecretsReader, secrets: set[str], *scrubbers: StreamScrubber) -> None:
    """Values the command reported join the logs' scrubbers and the run's ``secrets``
    (the set capture.withhold searches the run's files for when they are stored)."""
    new = reported.drain()
    secrets.update(new)
    for scrubber in scrubbers if new else ():
        scrubber.add(new)


def _write_all(fd: int, data: bytes) -> None:
    try:
        write_all(fd, data)
    except OSError:
        pass  # our own stdout went away (closed pipe): keep logging


__all__ = ["RunOptions", "RunOutcome", "child_env", "run", "sys"]
