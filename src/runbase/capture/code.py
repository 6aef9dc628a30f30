"""The exact code that ran: git state, the patch against HEAD, and a tree snapshot.

The snapshot is a manifest object (path -> blob id) in runbase's own object store,
so the code can be restored even if the commit is never pushed. Files come from
``git ls-files`` (tracked) and ``git status`` (untracked, not ignored); outside git
the directory is walked with ignore rules. A stat cache (device, inode, size,
mtime_ns -> id) means an unchanged file costs one ``lstat``, not a re-hash.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbase.capture.files import put_cached
from runbase.capture.manifest import put_manifest
from runbase.capture.secretfiles import is_secret_file
from runbase.capture.secrets import redact_url_credentials
from runbase.capture.withhold import REASON as WITHHELD_REASON
from runbase.capture.withhold import holds_secret
from runbase.core import fsname
from runbase.store import Store
from runbase.store.statcache import StatCache

CODE_MAX_BYTES = 1 << 20  # larger files are data, not code (P2 tracks them as data)
KEEP_MAX_BYTES = 100 << 20  # a file the snapshot must keep (a run's notebook), up to this
MAX_WALK_FILES = 20_000  # outside git: never crawl a home directory for minutes
DATA_EXTENSIONS = frozenset(
    [
        ".csv",
        ".tsv",
        ".parquet",
        ".feather",
        ".arrow",
        ".npy",
        ".npz",
        ".pkl",
        ".pickle",
        ".joblib",
        ".h5",
        ".hdf5",
        ".pt",
        ".pth",
        ".ckpt",
        ".safetensors",
        ".onnx",
        ".pb",
        ".tflite",
        ".bin",
        ".zip",
        ".tar",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".zst",
        ".7z",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".lmdb",
        ".tfrecord",
        ".mp4",
        ".avi",
        ".mov",
        ".wav",
        ".mp3",
        ".flac",
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".mat",
        ".nc",
        ".zarr",
        ".jsonl",
        ".ndjson",
        ".avro",
        ".orc",
        ".xlsx",
        ".xls",
    ]
)
DEFAULT_IGNORES = (
    ".git/",
    ".hg/",
    ".svn/",
    ".runbase/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    "env/",
    "node_modules/",
    ".ipynb_checkpoints/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    ".nox/",
    "*.egg-info/",
    "build/",
    "dist/",
    "wandb/",
    "mlruns/",
    ".DS_Store",
)


@dataclass
class CodeSnapshot:
    kind: str  # "git" | "dir"
    root: str
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool = False
    patch: str | None = None  # object id of the patch against HEAD
    patch_bytes: int = 0
    tree: str | None = None  # object id of the manifest
    files: int = 0
    bytes: int = 0
    hashed: int = 0  # files actually re-hashed (the rest came from the stat cache)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def snapshot(
    store: Store, root: Path, keep: Iterable[str] = (), withhold: Iterable[str] = ()
) -> CodeSnapshot:
    """Snapshot the code under ``root`` (a git work tree or a plain directory).

    ``keep``: paths relative to ``root`` that are in the snapshot whatever their size
    (up to ``KEEP_MAX_BYTES``), extension or ignore rules (a run's notebook), unless
    their name looks secret. ``withhold``: paths left out as secret files are (config
    files runbase redacted secrets from).
    """
    t0 = time.perf_counter()
    root = root.resolve()
    kept = {k for k in keep if os.path.isfile(root / k)}
    held = frozenset(withhold)
    if _is_git(root):
        snap = _git_snapshot(store, root, kept, held)
    else:
        snap = _dir_snapshot(store, root, kept, held)
    snap.seconds = round(time.perf_counter() - t0, 4)
    return snap


# -- git --------------------------------------------------------------------------


def _is_git(root: Path) -> bool:
    return (root / ".git").exists() and shutil.which("git") is not None


def _git(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> bytes:
    cmd = ["git", "-C", str(root), "-c", "core.quotepath=off", "-c", "color.ui=never", *args]
    proc = subprocess.run(cmd, capture_output=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _git_snapshot(
    store: Store, root: Path, kept: set[str], withhold: Collection[str] = ()
) -> CodeSnapshot:
    snap = CodeSnapshot(kind="git", root=str(root))
    # independent queries run concurrently: each git process costs a few ms to start
    status, listed, remotes = _git_parallel(
        root,
        ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
        ["ls-files", "-z", "--cached"],
        ["config", "--get-regexp", r"^remote\..*\.url$"],
    )
    untracked: list[str] = []
    changed = False
    for rec in status.split(b"\0"):
        line = rec.decode("utf-8", "surrogateescape")
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            snap.commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            snap.branch = None if head == "(detached)" else head
        elif line.startswith("? "):
            untracked.append(line[2:])
        elif line[:2] in ("1 ", "2 ", "u "):
            changed = True
    tracked = [p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p]
    snap.dirty = changed or bool(untracked)
    snap.remote = _pick_remote(remotes.decode(errors="replace"))
    entries, skipped_paths = _manifest_entries(
        store, root, sorted(set(tracked) | set(untracked) | kept), snap, kept, withhold,
        scan=set(untracked) | kept,  # committed bytes are in git already
    )  # fmt: skip
    snap.tree = put_manifest(store, entries)
    if snap.dirty:
        keep_untracked = [p for p in untracked if p not in skipped_paths]
        _git_patch(store, root, snap, keep_untracked, skipped_paths)
    return snap


def _git_parallel(root: Path, *commands: list[str]) -> list[bytes]:
    base = ["git", "-C", str(root), "-c", "core.quotepath=off", "-c", "color.ui=never"]
    procs = [
        subprocess.Popen([*base, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for cmd in commands
    ]
    outs = []
    for cmd, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate()
        # `git config --get-regexp` exits 1 when nothing matches (no remote)
        if proc.returncode != 0 and cmd[0] != "config":
            raise RuntimeError(f"git {' '.join(cmd)}: {err.decode(errors='replace').strip()}")
        outs.append(out)
    return outs


def _pick_remote(config_out: str) -> str | None:
    urls = dict(line.split(" ", 1) for line in config_out.splitlines() if " " in line)
    url = urls.get("remote.origin.url") or next(iter(urls.values()), None)
    return redact_url_credentials(url) if url else None


def _git_patch(
    store: Store, root: Path, snap: CodeSnapshot, untracked: list[str], skipped: set[str]
) -> None:
    """The uncommitted change that ran, untracked files included, via a throwaway index."""
    if (root / ".git").is_dir():
        index = root / ".git" / "index"
    else:  # a linked worktree or submodule: .git is a file pointing elsewhere
        index = Path(_git(root, "rev-parse", "--git-path", "index").decode().strip())
        if not index.is_absolute():
            index = root / index
    with tempfile.TemporaryDirectory(prefix="runbase-idx-") as tmp:
        tmp_index = Path(tmp) / "index"
        if index.exists():
            shutil.copyfile(index, tmp_index)
        env = {**os.environ, "GIT_INDEX_FILE": str(tmp_index)}
        if untracked:
            # intent-to-add makes untracked files show up as new files in `git diff HEAD`
            _git(root, "add", "-N", "--", *untracked, env=env)
        base = snap.commit or _git(root, "hash-object", "-t", "tree", "/dev/null").decode().strip()
        excludes = [f":(exclude,literal){p}" for p in sorted(skipped)]
        patch = _git(
            root,
            "diff",
            "--binary",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            base,
            "--",
            ".",
            *excludes,
            env=env,
        )
    if patch:
        snap.patch = store.objects.put_bytes(patch)
        snap.patch_bytes = len(patch)


# -- plain directories -------------------------------------------------------------


def _dir_snapshot(
    store: Store, root: Path, kept: set[str], withhold: Collection[str] = ()
) -> CodeSnapshot:
    snap = CodeSnapshot(kind="dir", root=str(root))
    paths = sorted(set(walk(root, snap)) | kept)
    entries, _ = _manifest_entries(store, root, paths, snap, kept, withhold)
    snap.tree = put_manifest(store, entries)
    return snap


def _ignore_matcher(root: Path) -> Any:
    import pathspec  # lazy: ~20 ms, needed only for a snapshot outside git

    lines = list(DEFAULT_IGNORES)
    for name in (".gitignore", ".runbaseignore"):
        try:
            lines += (root / name).read_text(errors="replace").splitlines()
        except OSError:
            pass
    return pathspec.GitIgnoreSpec.from_lines(lines)


def walk(root: Path, snap: CodeSnapshot | None = None) -> list[str]:
    """Relative paths of the files under ``root`` not matched by the ignore rules."""
    spec = _ignore_matcher(root)
    out: list[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(root / rel_dir if rel_dir else root)
        except OSError:
            continue
        with it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                is_dir = de.is_dir(follow_symlinks=False)
                if spec.match_file(rel + "/" if is_dir else rel):
                    continue
                if is_dir:
                    stack.append(rel)
                else:
                    out.append(rel)
                    if len(out) >= MAX_WALK_FILES:
                        if snap is not None:
                            snap.skipped.append(
                                {
                                    "path": str(root),
                                    "reason": f"more than {MAX_WALK_FILES} files; snapshot truncated",
                                }
                            )
                        return sorted(out)
    return sorted(out)


# -- manifest -----------------------------------------------------------------------


def _manifest_entries(
    store: Store,
    root: Path,
    paths: list[str],
    snap: CodeSnapshot,
    kept: Collection[str] = (),
    withhold: Collection[str] = (),
    scan: Collection[str] | None = None,
) -> tuple[list[dict[str, Any]], set[str]]:
    """The manifest entries of ``paths`` (storing their bytes) and the paths left out.
    A file of ``scan`` (None: every file) holding a value runbase redacted is left out
    (capture.withhold); a git snapshot searches only what git does not hold already."""
    cache = StatCache(store)
    entries: list[dict[str, Any]] = []
    skipped: set[str] = set()
    root_s = str(root)
    for rel in paths:
        full = f"{root_s}/{rel}"
        try:
            st = os.lstat(full)
        except OSError:
            continue  # deleted in the work tree
        # names (and link targets) are bytes: a manifest holds their stored form
        # (runbase.core.fsname), which checkout turns back into the same bytes
        name = fsname.encode(rel)
        if stat.S_ISLNK(st.st_mode):
            target = fsname.encode(os.readlink(full))
            entries.append({"path": name, "type": "link", "target": target})
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # submodules, sockets, ...
        reason = (
            "holds secrets runbase redacted"
            if rel in withhold
            else _skip_reason(rel, st.st_size, rel in kept, root_s)
            or (_searched(rel, scan) and holds_secret(full, st.st_size) and WITHHELD_REASON)
        )
        if reason:
            skipped.add(rel)
            snap.skipped.append({"path": rel, "size": st.st_size, "reason": reason})
            continue
        oid, size, hashed = put_cached(store, full, st, cache)
        snap.hashed += hashed
        mode = "x" if st.st_mode & 0o111 else "f"
        entries.append({"path": name, "type": mode, "oid": oid, "size": size})
        snap.files += 1
        snap.bytes += size
    cache.save()
    return entries, skipped


def _skip_reason(rel: str, size: int, kept: bool = False, root: str | None = None) -> str | None:
    # files that commonly hold credentials: never stored (capture.secretfiles, shared
    # with data inputs and outputs)
    if is_secret_file(rel, root):
        return "may hold secrets"
    if kept:
        return "larger than 100 MiB" if size > KEEP_MAX_BYTES else None
    if size > CODE_MAX_BYTES:
        return "large file: data, not code"
    if os.path.splitext(rel)[1].lower() in DATA_EXTENSIONS:
        return "data file, not code"
    return None


def _searched(rel: str, scan: Collection[str] | None) -> bool:
    return scan is None or rel in scan
