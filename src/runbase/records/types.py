"""Typed shapes of the documented run record (docs/run-record.md, version 1).

``runbase show RUN --json`` prints a :class:`RunRecord`; ``runbase ls --json`` lines
share its :class:`RunHeader`. These are annotations only (TypedDicts are plain dicts
at run time): the record's keys and values are what docs/run-record.md says, and a key
is only ever added within a record version. The nested objects whose keys the record
takes from the machine (``env.python``, ``env.os``, package entries, ...) stay
``dict[str, Any]``; the keys listed here are the ones the documentation guarantees.
Times are ISO 8601 strings and non-finite numbers the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` in the JSON form (:func:`runbase.records.record.build_record`).
"""

from __future__ import annotations

from typing import Any, TypedDict

# a number of the record: a float, or (strict JSON) "NaN", "Infinity", "-Infinity"
Number = float | int | str | None


class RunsRow(TypedDict):
    """One row of the ``runs`` table (runbase.store.schema), as the readers load it."""

    id: str
    name: str
    status: str
    exit_code: int | None
    exit_signal: int | None
    started_at: float
    ended_at: float | None
    heartbeat_at: float | None
    command: str  # JSON: the argv list
    cwd: str | None
    user_name: str | None
    host: str | None
    project_root: str | None
    mode: str
    owner_pid: int | None
    owner_start: str | None
    parent_id: str | None
    sweep_id: str | None
    reproduces: str | None
    code_commit: str | None
    code_json: str | None
    env_json: str | None
    packages_id: str | None
    logs_json: str | None
    error: str | None
    data_policy: str | None
    notebook_json: str | None
    executor_json: str | None


class MetricSummary(TypedDict):
    """``metrics[key]``: ``value`` is the summary, else the last logged value."""

    value: Number
    last: Number
    min: Number
    max: Number
    count: int
    step: int | None


class _FileEntryKeys(TypedDict):
    path: str
    hash: str | None
    size: int | None
    stored: bool
    source: str


class FileEntry(_FileEntryKeys, total=False):
    """One of ``inputs`` / ``outputs``: the optional keys appear only when true or set."""

    directory: bool
    url: str
    changed_during_run: bool
    withheld: bool
    withheld_reason: str


class LogObject(TypedDict):
    oid: str
    size: int


class Logs(TypedDict, total=False):
    """``logs``: the objects holding the captured output streams."""

    output: LogObject
    stderr: LogObject


class SkippedFile(TypedDict):
    path: str
    size: int
    reason: str


class CodeSection(TypedDict, total=False):
    """``code``: the snapshot of the code that ran."""

    kind: str  # "git" or "dir"
    root: str
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    patch: str | None
    patch_id: str | None
    patch_bytes: int
    tree: str
    files: int
    bytes: int
    hashed: int
    skipped: list[SkippedFile]
    seconds: float


class EnvSection(TypedDict, total=False):
    """``env``: the environment the run's (first) Python process saw."""

    python: dict[str, Any] | None
    packages: list[dict[str, Any]]
    packages_count: int
    os: dict[str, Any]
    cpu: dict[str, Any]
    memory_bytes: int
    gpus: list[dict[str, Any]]
    container: dict[str, Any] | None
    vars: dict[str, str]


class NotebookSection(TypedDict, total=False):
    """``notebook``: the notebook a run came from and the cells it executed."""

    path: str | None
    source: str
    oid: str | None
    size: int
    cells_oid: str | None
    cells_count: int


class Cell(TypedDict):
    """One executed cell (the JSON list of ``notebook.cells_oid``)."""

    index: int
    execution_count: int | None
    cell_id: str | None
    source: str
    started_at: str
    duration_s: float | None
    success: bool | None
    error: str | None


class Executor(TypedDict, total=False):
    """What ran the run (core.executorinfo): ``kind`` always, the rest where known."""

    kind: str  # local | ray
    host: str
    node_id: str  # ray
    attempt: int  # ray, 0-based
    retry_of: str  # ray: the run this one retried (its node was lost)


class RunHeader(TypedDict):
    """The keys a run's record and its ``runbase ls --json`` line share."""

    id: str
    name: str
    status: str
    exit_code: int | None
    exit_signal: int | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    user: str | None


class RunRecord(RunHeader):
    """The run record, version 1 (``runbase show RUN --json``)."""

    record_version: int
    command: list[str]
    cwd: str | None
    host: str | None
    mode: str
    project_root: str | None
    parent_id: str | None
    sweep_id: str | None
    reproduces: str | None
    executor: Executor | None
    params: dict[str, Any]
    param_sources: dict[str, str]
    metrics: dict[str, MetricSummary]
    tags: dict[str, str]
    code: CodeSection | None
    env: EnvSection | None
    notebook: NotebookSection | None
    inputs: list[FileEntry]
    outputs: list[FileEntry]
    logs: Logs | None
    error: str | None
