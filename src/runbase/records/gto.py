"""The registry as GTO's git tags (docs/models.md, "Git (GTO-compatible)").

GTO (iterative/gto; this follows 1.10.1) keeps a model registry in annotated git tags:

- ``NAME@v1.2.0`` registers version v1.2.0 of artifact NAME on the commit it points at
  (one version per commit per artifact); ``NAME@v1.2.0!`` deregisters it;
- ``NAME#STAGE#N`` assigns STAGE to the version of the commit it points at, and
  ``NAME#STAGE!#N`` unassigns it, N counting up across the artifact's tags;
- ``NAME@deprecated`` deprecates the whole artifact.

GTO reads them in tagger-time order (ties by tag name), registrations before stage
tags, and a stage shows the version whose assignment is the latest of those still
assigned. :func:`tag_events` writes the tags of runbase's registry events so the GTO
CLI, its GitHub Action and any CI watching tags see the same registry; each tag is
dated after every earlier tag of its artifact, so GTO orders them as runbase did even
within one second. :func:`import_gto` replays a GTO registry into this store.

Git runs as a subprocess, as ``capture.code`` runs it; nothing is written before every
tag of a change has been checked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runbase.core.modelref import (
    NAME_RE,
    VERSION_RE,
    check_stage,
    next_version,
    normalize_version,
)
from runbase.core.safepath import check_relpath
from runbase.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RunbaseError,
    UnsafePathError,
    UsageError,
)
from runbase.records import registry
from runbase.records.registry import Actor, Event, Source
from runbase.store import Store

GTO_VERSION = "1.10.1"  # the GTO release whose tag format and ordering this follows
ANNOTATIONS = "artifacts.yaml"  # GTO's file naming each artifact's path, per commit
MAX_ANNOTATIONS = 1 << 20  # bytes of artifacts.yaml read at one commit
# a repository is not trusted: the bytes copied out of git for one import are capped
# (each file, and every file of every version together), checked on git's declared
# size before a byte is copied; they stream to the store's tmp directory, never memory
MAX_GIT_FILE = 16 << 30
MAX_GIT_IMPORT = 64 << 30
COPY_CHUNK = 1 << 20
MAX_MESSAGE = registry.MAX_MESSAGE

# GTO's tag grammar (gto/constants.py tag_re), written anew: an artifact name (with
# GTO's optional "dir=" prefix and "/"), then "@vSEMVER", "#STAGE", "@deprecated" or
# "@created", a "!" cancelling a version or stage, and an optional "#N" counter
_GTO_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9/_-]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
TAG_RE = re.compile(
    rf"^(?P<artifact>(?:[a-zA-Z0-9_./-]+=)?{_GTO_NAME})"
    rf"(?:(?:#(?P<stage>{_GTO_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?$"
)
# GTO's event priorities (gto/base.py): its history orders one second's events by them
PRIORITY = {"deprecate": 2, "register": 3, "deregister": 4, "assign": 5, "unassign": 6}


@dataclass(frozen=True)
class GtoTag:
    """One registry-shaped tag of a repository."""

    name: str  # the tag as written: churn#production#3
    artifact: str  # GTO's artifact name ("=" of a dir prefix read back as ":")
    action: str  # register | deregister | assign | unassign | deprecate | created
    version: str | None
    stage: str | None
    counter: int | None
    commit: str  # the commit it points at
    time: int  # the tagger's time, seconds since the epoch (GTO's order)
    tagger: str
    email: str
    message: str
    annotated: bool  # GTO ignores lightweight tags

    @property
    def order(self) -> tuple[int, int, str]:
        """GTO's order: tagger time, then its event priority, then the tag's name."""
        return (self.time, PRIORITY.get(self.action, 9), self.name)


def parse_tag_name(name: str) -> dict[str, Any] | None:
    """``{artifact, action, version, stage, counter}`` of a tag in GTO's grammar, or
    None for any other tag (``v1.0``, ``release-3``)."""
    m = TAG_RE.match(name)
    if m is None:
        return None
    cancel = m["cancel"] == "!"
    if m["version"]:
        action = "deregister" if cancel else "register"
    elif m["stage"]:
        action = "unassign" if cancel else "assign"
    else:
        action = "deprecate" if m["deprecated"] else "created"
    return {
        "artifact": m["artifact"].replace("=", ":"),
        "action": action,
        "version": m["version"],
        "stage": m["stage"],
        "counter": int(m["counter"]) if m["counter"] else None,
    }


# ---------------------------------------------------------------- git


class _Repo:
    """A git work tree, through the git command line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.copied = 0  # bytes copied out of git by this import (MAX_GIT_IMPORT)

    @classmethod
    def open(cls, path: Path | str) -> _Repo:
        where = Path(path)
        if not where.is_dir():
            raise UsageError(
                f"{where} is not a directory (a git repository is needed for GTO tags)"
            )
        try:
            proc = subprocess.run(
                ["git", "-C", str(where), "rev-parse", "--show-toplevel"],
                capture_output=True,
                text=True,
            )
        except OSError as e:
            raise UsageError(f"git cannot be run ({e}): GTO tags need git") from e
        if proc.returncode != 0:
            raise UsageError(
                f"{where} is not in a git repository: GTO's registry lives in git tags "
                "(run this inside the repository, or give its path)"
            )
        return cls(Path(proc.stdout.strip()))

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = ["git", "-C", str(self.root), "-c", "core.quotepath=off", *args]
        proc = subprocess.run(cmd, capture_output=True, env=env, input=input)
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise UsageError(f"git {' '.join(args[:2])} failed in {self.root}: {err}")
        return proc

    def commit_of(self, rev: str) -> str | None:
        """The full hash of the commit ``rev`` names, None when the repo lacks it."""
        proc = self.run("rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def head(self) -> str:
        found = self.commit_of("HEAD")
        if found is None:
            raise UsageError(f"the repository {self.root} has no commit yet: nothing to tag")
        return found

    def check_identity(self) -> None:
        """git refuses an annotated tag without a tagger name and email: say so first."""
        if self.run("var", "GIT_COMMITTER_IDENT", check=False).returncode != 0:
            raise UsageError(
                "git has no identity to sign the tags with: set it with "
                "`git config user.name NAME` and `git config user.email EMAIL`"
            )

    def tags(self) -> list[GtoTag]:
        """Every tag of the repository in GTO's grammar, in GTO's order."""
        fields = (
            "%(refname:strip=2)",
            "%(objecttype)",
            "%(objectname)",
            "%(*objecttype)",
            "%(*objectname)",
            "%(taggerdate:raw)",
            "%(taggername)",
            "%(taggeremail)",
            "%(contents)",
        )
        out = self.run("for-each-ref", "refs/tags", "--format=" + "%00".join(fields) + "%00")
        found = []
        for record in out.stdout.split(b"\x00\n"):
            parts = record.decode("utf-8", "replace").split("\x00")
            if len(parts) < len(fields):
                continue
            tag = _tag_of(parts)
            if tag is not None:
                found.append(tag)
        return sorted(found, key=lambda t: t.order)

    def tag_names(self) -> set[str]:
        out = self.run("for-each-ref", "refs/tags", "--format=%(refname:strip=2)")
        return {line for line in out.stdout.decode("utf-8", "replace").splitlines() if line}

    def show(self, commit: str, path: str, limit: int | None = None) -> bytes | None:
        """The bytes of ``path`` at ``commit`` (None: not a file there)."""
        proc = self.run("cat-file", "-t", f"{commit}:{path}", check=False)
        if proc.returncode != 0 or proc.stdout.strip() != b"blob":
            return None
        if limit is not None:
            size = self.run("cat-file", "-s", f"{commit}:{path}").stdout.strip()
            if int(size or 0) > limit:
                raise UsageError(f"{path} at {commit[:12]} is over {limit} bytes")
        return self.run("cat-file", "blob", f"{commit}:{path}").stdout

    def object_type(self, commit: str, path: str) -> str | None:
        proc = self.run("cat-file", "-t", f"{commit}:{path}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None


def _tag_of(parts: list[str]) -> GtoTag | None:
    name, objtype, objname, peeled_type, peeled, date, tagger, email = parts[:8]
    name = name.lstrip("\n")
    parsed = parse_tag_name(name)
    if parsed is None:
        return None
    annotated = objtype == "tag"
    commit = peeled if annotated else objname
    if annotated and peeled_type != "commit":
        commit = ""  # a tag of a tag or of a tree: GTO cannot read it either
    try:
        stamp = int(date.split()[0]) if date else 0
    except ValueError:
        stamp = 0
    return GtoTag(
        name=name,
        artifact=parsed["artifact"],
        action=parsed["action"],
        version=parsed["version"],
        stage=parsed["stage"],
        counter=parsed["counter"],
        commit=commit,
        time=stamp,
        tagger=tagger,
        email=email.strip("<>"),
        message=parts[8].strip(),
        annotated=annotated,
    )


def read_tags(repo_root: Path | str) -> list[GtoTag]:
    """The GTO registry tags of the repository at (or above) ``repo_root``, in GTO's order."""
    return _Repo.open(repo_root).tags()


# ---------------------------------------------------------------- GTO's state


def _versions_at(tags: Sequence[GtoTag]) -> dict[str, str]:
    """``{commit: version}`` of the registered versions (deregistered ones too: GTO
    still finds them by commit)."""
    out: dict[str, str] = {}
    for t in tags:
        if t.annotated and t.action == "register" and t.version and t.commit:
            out.setdefault(t.commit, t.version)
    return out


def _deregistered(tags: Sequence[GtoTag]) -> set[str]:
    """The versions whose last registration tag is a deregistration (GTO: a tie in time
    reads as deregistered)."""
    last: dict[str, tuple[int, int]] = {}
    for t in tags:
        if t.annotated and t.version and t.action in ("register", "deregister"):
            key = (t.time, 1 if t.action == "deregister" else 0)
            if t.version not in last or key >= last[t.version]:
                last[t.version] = key
    return {v for v, (_, dereg) in last.items() if dereg}


class _StageView:
    """What GTO shows in one stage as its tags are read one by one: a version is in the
    stage while its own last stage tag is an assignment (an unassignment of the same
    second wins), and ``gto show`` names the one assigned last. Versions are known from
    every registration tag (GTO reads them all before any stage tag)."""

    def __init__(self, tags: Sequence[GtoTag], stage: str) -> None:
        self.stage = stage
        self.at = _versions_at(tags)
        self.gone = _deregistered(tags)
        self.last: dict[str, tuple[int, int]] = {}  # key -> (time, unassign?)
        self.assigned: dict[str, tuple[int, int]] = {}  # key -> (time, order) of its last

    def add(self, order: int, tag: GtoTag) -> None:
        if not (tag.annotated and tag.stage == self.stage and tag.commit):
            return
        key = self.at.get(tag.commit, f"commit:{tag.commit}")
        unassign = 1 if tag.action == "unassign" else 0
        if key not in self.last or (tag.time, unassign) >= self.last[key]:
            self.last[key] = (tag.time, unassign)
        if not unassign and (key not in self.assigned or tag.time >= self.assigned[key][0]):
            self.assigned[key] = (tag.time, order)

    def holders(self) -> list[str]:
        active = [k for k, v in self.last.items() if not v[1] and k not in self.gone]
        return sorted(active, key=lambda k: self.assigned[k], reverse=True)


def gto_stage_holders(tags: Sequence[GtoTag], stage: str) -> list[str]:
    """The versions GTO sees assigned to ``stage``, the one ``gto show`` names first
    (``vX.Y.Z``, or ``commit:<hash>`` for a commit with no registered version)."""
    view = _StageView(tags, stage)
    for i, tag in enumerate(tags):
        view.add(i, tag)
    return view.holders()


# ---------------------------------------------------------------- writing tags


@dataclass
class _Tag:
    name: str
    commit: str
    message: str
    time: int


class _Planner:
    """The tags a list of events needs, checked against the repository and each other
    before any is written."""

    def __init__(self, repo: _Repo, store: Store) -> None:
        self.repo, self.store = repo, store
        self.all_tags = repo.tags()
        self.names = repo.tag_names()
        self.planned: list[_Tag] = []
        self.head: str | None = None

    def artifact_tags(self, name: str) -> list[GtoTag]:
        return [t for t in self.all_tags if t.artifact == name]

    def add(self, name: str, tag: str, commit: str, message: str, event_time: float) -> None:
        if tag in self.names:
            raise UsageError(f"the repository has a tag {tag} already")
        mine = self.artifact_tags(name)
        latest = max((t.time for t in mine), default=0)
        when = max(int(event_time), latest + 1)  # after each earlier tag: GTO's order is ours
        parsed = parse_tag_name(tag) or {}
        self.all_tags.append(
            GtoTag(
                tag, name, parsed.get("action", ""), parsed.get("version"), parsed.get("stage"),
                parsed.get("counter"), commit, when, "", "", message, True,
            )
        )  # fmt: skip
        self.names.add(tag)
        self.planned.append(_Tag(tag, commit, message, when))

    def counter(self, name: str) -> int:
        """GTO's next N: one more than any counter of the artifact's tags."""
        return 1 + max((t.counter or 0 for t in self.artifact_tags(name)), default=0)

    def version_commit(self, name: str, version: str) -> str | None:
        for t in self.artifact_tags(name):
            if t.action == "register" and t.version == version and t.annotated and t.commit:
                return t.commit
        return None

    def register(
        self, name: str, version: str, recorded: str | None, message: str | None, when: float
    ) -> None:
        """``NAME@vX.Y.Z`` on the commit of the run that made the version (HEAD if none)."""
        tagged = self.version_commit(name, version)
        note = ""
        if recorded:
            commit = self.repo.commit_of(recorded)
            if commit is None:
                raise UsageError(
                    f"{name}@{version} was made at commit {recorded[:12]}, which the "
                    f"repository {self.repo.root} does not have (fetch it, or tag from the "
                    "repository the run was made in)"
                )
        else:
            commit = self.head or self.repo.head()
            self.head = commit
            note = (
                f"\n\n(runbase: {name}@{version} has no commit recorded by a run; tagged at HEAD)"
            )
        if tagged is not None:
            if tagged == commit or not recorded:
                return  # tagged already: GTO sees it
            raise UsageError(
                f"tag {name}@{version} exists on commit {tagged[:12]}, but the version was "
                f"made at {commit[:12]}"
            )
        if f"{name}@{version}!" in self.names:
            raise UsageError(f"GTO deregistered {name}@{version} (tag {name}@{version}!)")
        for t in self.artifact_tags(name):
            if t.action == "register" and t.commit == commit and t.version != version:
                raise UsageError(
                    f"commit {commit[:12]} already carries {name}@{t.version} (tag {t.name}): "
                    "GTO allows one version of an artifact per commit; commit the code of "
                    f"this version, or register it without --git-tag"
                )
        text = (message or f"Registering artifact {name} version {version}") + note
        self.add(name, f"{name}@{version}", commit, text, when)

    def assign(self, name: str, version: str, stage: str, message: str | None, when: float) -> None:
        if self.version_commit(name, version) is None:  # as `gto assign` registers it first
            found = registry.get_version(self.store, name, version)
            self.register(name, version, found.git_commit, None, when)
        commit = self.version_commit(name, version)
        assert commit is not None
        text = message or f"Assigning stage {stage} to artifact {name} version {version}"
        self.add(name, f"{name}#{stage}#{self.counter(name)}", commit, text, when)

    def unassign(self, name: str, stage: str, message: str | None, when: float) -> None:
        """Unassign every version GTO still sees in the stage, so it shows none either:
        the one it shows last, so GTO never shows an older one in between."""
        mine = self.artifact_tags(name)
        for key in reversed(gto_stage_holders(mine, stage)):
            if key.startswith("commit:"):
                commit, label = key[len("commit:") :], key[len("commit:") :][:12]
            else:
                commit, label = self.version_commit(name, key) or "", key
            text = message or (
                f"Unassigning stage '{stage}' to artifact '{name}' version '{label}'"
            )
            self.add(name, f"{name}#{stage}!#{self.counter(name)}", commit, text, when)

    def plan(self, event: Event) -> None:
        name, when = event.model, event.time
        if event.action == "register" and event.version:
            commit = event.data.get("git_commit")
            recorded = commit if isinstance(commit, str) and commit else None
            self.register(name, event.version, recorded, event.message, when)
        elif event.action in ("promote", "rollback") and event.stage and event.to_version:
            self.assign(name, event.to_version, event.stage, event.message, when)
        elif event.action in ("demote", "rollback") and event.stage:
            self.unassign(name, event.stage, event.message, when)
        # request, approve, reject: no stage changed (an approval's promote follows it)


def _plan(repo: _Repo, store: Store, events: Iterable[Event]) -> list[_Tag]:
    repo.check_identity()
    planner = _Planner(repo, store)
    for event in events:
        planner.plan(event)
    return planner.planned


def tag_events(repo_root: Path | str, store: Store, events: list[Event]) -> list[str]:
    """Write the GTO tags of registry ``events`` (``--git-tag``); their names, in order.

    Every tag is checked before any is written (not a repository, a commit the
    repository lacks, a commit carrying another version of the model: UsageError, and
    no tag); a tag git refuses all the same takes the ones written before it back.
    The registry change itself is already recorded: call :func:`check_taggable` before
    making it, so a refusal comes before the change."""
    repo = _Repo.open(repo_root)
    planned = _plan(repo, store, events)
    written: list[str] = []
    try:
        for tag in planned:
            env = {**os.environ, "GIT_COMMITTER_DATE": f"{tag.time} +0000"}
            # verbatim: git's default cleanup drops each line starting with '#' ("#42 ...")
            repo.run(
                "tag", "-a", "--cleanup=verbatim", tag.name, "-m", tag.message, tag.commit,
                env=env,
            )  # fmt: skip
            written.append(tag.name)
    except RunbaseError:
        for name in written:
            repo.run("tag", "-d", name, check=False)
        raise
    return written


def check_taggable(
    repo_root: Path | str,
    store: Store,
    name: str,
    action: str,
    *,
    version: str | None = None,
    stage: str | None = None,
    commit: str | None = None,
    bump: str = "patch",
) -> None:
    """The checks :func:`tag_events` makes, for a change not made yet: call it before
    ``register`` (``version`` or ``bump``, ``commit``: the source's ``git_commit``),
    ``promote`` (``version``, ``stage``), ``demote`` or ``rollback`` (``stage``).
    UsageError when the tags could not be written; nothing is written either way."""
    repo = _Repo.open(repo_root)
    to: str | None = None
    version = normalize_version(version) if version is not None else None
    if action == "register":
        try:
            existing = [v.version for v in registry.versions(store, name)]
        except NotFound:
            existing = []
        version = version or next_version(existing, bump)
    elif action == "promote":
        to = version
    elif action == "rollback" and stage:
        stack = registry.stage_history(store, name, stage)
        if len(stack) < 2:
            repo.check_identity()
            return  # the registry refuses it itself
        to = stack[-2]
    elif action != "demote":
        raise UsageError(f"no GTO tag is written for {action!r}")
    event = Event(
        0, "", time.time(), None, action, name, version, stage, None, to, None, None, None,
        {"git_commit": commit}, None, "", "",
    )  # fmt: skip
    try:
        _plan(repo, store, [event])
    except NotFound:
        pass  # an unknown version: the registry says so itself, more clearly


# ---------------------------------------------------------------- import


class _Report:
    def __init__(self) -> None:
        self.imported: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.problems: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        tag: GtoTag | None,
        detail: str,
        *,
        model: str | None = None,
        action: str | None = None,
        version: str | None = None,
        stage: str | None = None,
    ) -> None:
        entry = {
            "tag": tag.name if tag else None,
            "model": model or (tag.artifact if tag else None),
            "action": action or (tag.action if tag else None),
            "version": version or (tag.version if tag else None),
            "stage": stage or (tag.stage if tag else None),
            "detail": detail,
        }
        getattr(self, kind).append(entry)

    def to_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": self.skipped, "problems": self.problems}


def import_gto(store: Store, repo_root: Path | str, actor: Actor) -> dict[str, Any]:
    """Replay the GTO registry of a repository's tags into this store's registry:
    ``{"imported": [...], "skipped": [...], "problems": [...]}`` (docs/models.md).

    Each registered version is registered here from its bytes (the path ``artifacts.yaml``
    gives at its commit, read from git or from a run of this store made at that commit),
    with the run that produced them when one did; stage tags become promotions,
    demotions and rollbacks. A version here with the same bytes, or a stage change the
    registry's history already holds, is skipped, so importing twice adds nothing."""
    repo = _Repo.open(repo_root)
    report = _Report()
    by_name: dict[str, list[GtoTag]] = {}
    for tag in repo.tags():
        if not tag.annotated:
            report.add("problems", tag, "a lightweight tag: GTO reads annotated tags only")
        elif not tag.commit:
            report.add("problems", tag, "the tag does not point at a commit")
        else:
            by_name.setdefault(tag.artifact, []).append(tag)
    for name, tags in sorted(by_name.items()):
        if not NAME_RE.match(name):
            for tag in tags:
                report.add(
                    "problems",
                    tag,
                    f"{name!r} cannot name a runbase model (lower-case letters, digits, "
                    "'-' and '_'): not imported",
                )
            continue
        _import_model(store, repo, name, tags, actor, report)
    return report.to_json()


def _import_model(
    store: Store, repo: _Repo, name: str, tags: list[GtoTag], actor: Actor, report: _Report
) -> None:
    gone = _deregistered(tags)
    for tag in tags:
        if tag.action == "register":
            _import_version(store, repo, name, tag, tag.version in gone, actor, report)
        elif tag.action == "deregister":
            report.add(
                "problems",
                tag,
                "runbase never removes a version: the deregistration is not imported",
            )
        elif tag.action == "deprecate":
            report.add("problems", tag, "runbase has no deprecated models: the model stays listed")
        elif tag.action == "created":
            report.add("problems", tag, "an old GTO tag with no meaning now: ignored, as GTO does")
    stages_seen: list[str] = []
    for tag in tags:
        if tag.stage and tag.stage not in stages_seen:
            stages_seen.append(tag.stage)
    for stage in stages_seen:
        _import_stage(store, name, stage, tags, actor, report)


def _import_version(
    store: Store,
    repo: _Repo,
    name: str,
    tag: GtoTag,
    deregistered: bool,
    actor: Actor,
    report: _Report,
) -> None:
    version = tag.version or ""
    if not VERSION_RE.match(version):
        report.add(
            "problems", tag, f"{version} is not vMAJOR.MINOR.PATCH as runbase numbers versions"
        )
        return
    if deregistered:
        report.add("problems", tag, f"GTO deregistered {name}@{version}: not imported")
        return
    try:
        have: registry.Version | None = registry.get_version(store, name, version)
    except NotFound:
        have = None
    try:
        source, how = _source_at(store, repo, name, tag.commit)
    except RunbaseError as e:  # no path, no bytes, an unsafe path: this version only
        if have is not None:
            report.add(
                "skipped", tag, f"{name}@{version} is here (its bytes at the tag's commit: {e})"
            )
        else:
            report.add("problems", tag, str(e))
        return
    if have is not None:
        if have.oid == source.oid:
            report.add("skipped", tag, f"{name}@{version} is here with the same bytes")
        else:
            report.add(
                "problems", tag,
                f"{name}@{version} is here with other bytes ({have.oid[:19]}, the tag's "
                f"commit has {source.oid[:19]}): not imported",
            )  # fmt: skip
        return
    message = tag.message[:MAX_MESSAGE] or None
    try:
        registry.register(store, name, source, version=version, message=message, actor=actor)
    except (Conflict, Forbidden, UsageError) as e:
        report.add("problems", tag, str(e))
        return
    report.add("imported", tag, how)


def _source_at(store: Store, repo: _Repo, name: str, commit: str) -> tuple[Source, str]:
    """The bytes of ``name`` at ``commit`` and how they were found."""
    path = _annotated_path(repo, name, commit)
    kind = repo.object_type(commit, path)
    if kind in ("blob", "tree"):
        with tempfile.TemporaryDirectory(prefix="runbase-gto-", dir=_tmp_dir(store)) as tmp:
            where = Path(tmp) / PurePosixPath(path).name
            _extract(repo, commit, path, kind, where)
            source = registry.source_of_file(store, str(where), external=True)
        if source.run_id is None:
            source = dataclasses.replace(source, path=path, git_commit=commit)
            how = f"{path} from git at {commit[:12]}: no run of this store produced these bytes (external)"
        else:
            how = f"{path} from git at {commit[:12]}, produced by run {source.run_id}"
        return source, how
    run_id = _run_that_wrote(store, commit, path)
    if run_id is None:
        raise NotFound(
            f"{path} (the path {ANNOTATIONS} gives {name} at {commit[:12]}) is not in git "
            "there and no run of this store made at that commit wrote it: no bytes to register"
        )
    return registry.source_of_run_path(store, run_id, path), f"{path} written by run {run_id}"


def _annotated_path(repo: _Repo, name: str, commit: str) -> str:
    """The path GTO's ``artifacts.yaml`` gives ``name`` at ``commit``."""
    text = repo.show(commit, ANNOTATIONS, limit=MAX_ANNOTATIONS)
    if text is None:
        raise NotFound(f"commit {commit[:12]} has no {ANNOTATIONS}: GTO gives {name} no path there")
    import yaml  # lazy: PyYAML (a dependency of detect-secrets) only for import-gto

    try:
        data = yaml.safe_load(text)
    except Exception as e:  # hostile text: not only YAMLError (RecursionError when deep)
        why = str(e) if isinstance(e, yaml.YAMLError) else f"{type(e).__name__}: {e}"
        raise UsageError(f"{ANNOTATIONS} at {commit[:12]} cannot be read as YAML: {why}") from e
    entry = data.get(name) if isinstance(data, dict) else None
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or not path:
        raise NotFound(f"{ANNOTATIONS} at {commit[:12]} gives {name} no path")
    path = path.strip().removeprefix("./").rstrip("/")
    try:
        return check_relpath(path)
    except UnsafePathError as e:
        raise UsageError(f"{ANNOTATIONS} at {commit[:12]}: the path of {name}: {e}") from e


def _tmp_dir(store: Store) -> str | None:
    """The store's own tmp directory (on the store's disk, cleaned with it), when its
    objects are local files; else the system's."""
    where = getattr(store.objects, "tmp_dir", None)
    if where is None:
        return None
    os.makedirs(where, exist_ok=True)
    return str(where)


def _extract(repo: _Repo, commit: str, path: str, kind: str, dest: Path) -> None:
    """Write ``path`` at ``commit`` (a file, or a tree's files) to ``dest``, streamed
    from git (each file at most MAX_GIT_FILE, the import at most MAX_GIT_IMPORT)."""
    if kind == "blob":
        sha = repo.run("rev-parse", "--verify", "-q", f"{commit}:{path}").stdout.decode().strip()
        _copy_blobs(repo, commit, path, [(dest, path, sha)])
        return
    files: list[tuple[Path, str, str]] = []
    for record in repo.run("ls-tree", "-r", "-z", f"{commit}:{path}").stdout.split(b"\x00"):
        if not record:
            continue
        meta, _, rel_b = record.partition(b"\t")
        mode, otype, sha = meta.decode().split()
        rel = rel_b.decode("utf-8", "surrogateescape")
        if otype != "blob" or mode == "120000":
            raise UsageError(f"{path} at {commit[:12]} holds {rel}, a {otype} or link: not copied")
        files.append((dest / check_relpath(rel), f"{path}/{rel}", sha))
    dest.mkdir()
    _copy_blobs(repo, commit, path, files)


def _copy_blobs(repo: _Repo, commit: str, path: str, files: list[tuple[Path, str, str]]) -> None:
    """Each (target, name, sha) blob written to its target by one ``git cat-file
    --batch``, which answers ``<sha> blob <size>\\n<bytes>\\n`` or ``<sha> missing``."""
    cmd = ["git", "-C", str(repo.root), "cat-file", "--batch"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    # fed from a thread: git answers while it reads, so a long list must not block on
    # a full pipe while nobody reads the answers
    feeder = threading.Thread(
        target=_feed, args=(proc.stdin, [sha for _, _, sha in files]), daemon=True
    )
    feeder.start()
    try:
        for target, name, sha in files:
            size = _batch_header(proc.stdout.readline(256), sha, name, commit)
            _reserve(repo, size, name, commit)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:
                left = size
                while left:
                    chunk = proc.stdout.read(min(COPY_CHUNK, left))
                    if not chunk:
                        raise UsageError(f"git stopped in the middle of {name} at {commit[:12]}")
                    out.write(chunk)
                    left -= len(chunk)
            proc.stdout.read(1)  # the newline after the bytes
    except OSError as e:  # the disk: full, read-only
        raise UsageError(f"{path} at {commit[:12]} cannot be copied out of git: {e}") from e
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        feeder.join()


def _feed(pipe: Any, shas: list[str]) -> None:
    try:
        with pipe:
            for sha in shas:
                pipe.write(f"{sha}\n".encode())
    except (BrokenPipeError, ValueError):
        pass  # git was stopped: a refusal of an answer, or the end


def _batch_header(line: bytes, sha: str, name: str, commit: str) -> int:
    """The size ``cat-file --batch`` declares for ``sha``; UsageError for any other
    answer (``missing``: the repository lacks the object, e.g. a partial clone)."""
    parts = line.split()
    if len(parts) == 2 and parts[1] == b"missing":
        raise UsageError(
            f"{name} at {commit[:12]}: git has no object {sha} (the repository is "
            "incomplete: a shallow or partial clone, or damaged; `git fsck` says more)"
        )
    if len(parts) != 3 or parts[1] != b"blob" or not parts[2].isdigit():
        shown = line[:100].decode("utf-8", "replace").strip()
        raise UsageError(f"{name} at {commit[:12]}: git answered {shown!r} for object {sha}")
    return int(parts[2])


def _reserve(repo: _Repo, size: int, name: str, commit: str) -> None:
    """Count ``size`` more bytes out of git, refused past the caps before any is copied."""
    if size > MAX_GIT_FILE:
        raise UsageError(
            f"{name} at {commit[:12]} is {size} bytes, over the {_size(MAX_GIT_FILE)} "
            "import-gto copies of one file from git (register it from a run's output instead)"
        )
    if repo.copied + size > MAX_GIT_IMPORT:
        raise UsageError(
            f"{name} at {commit[:12]}: this import would copy over {_size(MAX_GIT_IMPORT)} "
            "out of git in all; import the rest with another import-gto"
        )
    repo.copied += size


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n and n % (1 << 30) == 0 else f"{n} bytes"


def _run_that_wrote(store: Store, commit: str, path: str) -> str | None:
    """The newest run made at ``commit`` that wrote ``path`` (relative to its project)."""
    row = store.db.query_one(
        "SELECT r.id FROM runs r JOIN run_files f ON f.run_id = r.id "
        "WHERE r.code_commit = ? AND f.role = 'output' AND f.path = ? AND f.oid IS NOT NULL "
        "ORDER BY r.started_at DESC LIMIT 1",
        (commit, path),
    )
    return str(row[0]) if row else None


def _holders_here(store: Store, name: str, stage: str) -> list[str | None]:
    """The stage's holders as this registry's log went through them (no repeats)."""
    out: list[str | None] = []
    for ev in registry.events(store, name):
        changes = ev.stage == stage and ev.action in ("promote", "demote", "rollback")
        if changes and (not out or out[-1] != ev.to_version):
            out.append(ev.to_version)
    return out


def _import_stage(
    store: Store, name: str, stage: str, tags: list[GtoTag], actor: Actor, report: _Report
) -> None:
    """Replay the stage's GTO history: each tag that changes what GTO shows in the stage
    becomes the registry change giving the same holder, after the part of that history
    this registry's log already went through."""
    try:
        check_stage(stage)
    except UsageError as e:
        for tag in tags:
            if tag.stage == stage:
                report.add("problems", tag, f"{e}: not imported")
        return
    changes: list[tuple[GtoTag, str | None]] = []
    shown: str | None = None
    view = _StageView(tags, stage)
    for i, tag in enumerate(tags):
        if tag.stage != stage:
            continue
        view.add(i, tag)
        holders = view.holders()
        now = holders[0] if holders else None
        if now != shown:
            changes.append((tag, now))
            shown = now
        else:
            report.add("skipped", tag, f"GTO's {stage} stays {now or 'empty'}", version=now)
    here = _holders_here(store, name, stage)
    at = 0
    for n, (tag, holder) in enumerate(changes):
        if holder in here[at:]:
            at = here.index(holder, at) + 1
            report.add(
                "skipped", tag, f"the log already has {name}@{stage} = {holder or 'empty'}",
                version=holder,
            )  # fmt: skip
            continue
        for later, later_holder in changes[n:]:
            _apply_stage(store, name, stage, later, later_holder, actor, report)
        break
    final = registry.stages(store, name).get(stage)
    if final != shown:
        report.add(
            "problems", None,
            f"{name}@{stage} is {final or 'empty'} here but {shown or 'empty'} in GTO",
            model=name, action="compare", stage=stage,
        )  # fmt: skip


def _apply_stage(
    store: Store,
    name: str,
    stage: str,
    tag: GtoTag,
    holder: str | None,
    actor: Actor,
    report: _Report,
) -> None:
    current = registry.stages(store, name).get(stage)
    if holder is not None and holder.startswith("commit:"):
        report.add(
            "problems",
            tag,
            f"GTO's {stage} is commit {holder[7:19]}, which has no registered version",
        )
        return
    if holder == current:
        report.add("skipped", tag, f"{name}@{stage} is {holder or 'empty'} already")
        return
    message = tag.message[:MAX_MESSAGE] or None
    try:
        if holder is None:
            registry.demote(store, name, stage, message=message, actor=actor)
            done = f"{stage} emptied (demote)"
        else:
            stack = registry.stage_history(store, name, stage)
            if tag.action == "unassign" and len(stack) >= 2 and stack[-2] == holder:
                registry.rollback(store, name, stage, message=message, actor=actor)
                done = f"{stage} back to {holder} (rollback)"
            else:
                registry.promote(store, name, holder, stage, message=message, actor=actor)
                done = f"{holder} promoted to {stage}"
    except (Conflict, Forbidden, NotFound, UsageError) as e:
        report.add("problems", tag, f"{name}@{stage} -> {holder or 'empty'}: {e}")
        return
    report.add("imported", tag, done, version=holder)
