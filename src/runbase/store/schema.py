"""The tables of the metadata store, declared once (runbase.store.tables).

The same declarations give SQLite's and PostgreSQL's DDL, the migration of each
version (what a version added carries ``since=``; a dropped table ``until=``) and the
run bundles' column whitelist. ``SCHEMA_VERSION`` is stored in the ``meta`` table;
see docs/store-format.md.
"""

from __future__ import annotations

from runbase.store.tables import BLOB, DOUBLE, INTEGER, TEXT, Column, Index, Schema, Table

SCHEMA_VERSION = 9


def _key(name: str, type_: str = TEXT) -> Column:
    """A primary key column (NOT NULL: it is part of the key)."""
    return Column(name, type_, not_null=True)


def _nn(name: str, type_: str, default: int | None = None) -> Column:
    return Column(name, type_, not_null=True, default=default)


META = Table("meta", [_key("key"), _nn("value", TEXT)], key=("key",))

RUNS = Table(
    "runs",
    [
        _key("id"),
        _nn("name", TEXT),
        _nn("status", TEXT),
        Column("exit_code", INTEGER),
        Column("exit_signal", INTEGER),
        _nn("started_at", DOUBLE),
        Column("ended_at", DOUBLE),
        Column("heartbeat_at", DOUBLE),
        _nn("command", TEXT),
        Column("cwd", TEXT),
        Column("user_name", TEXT),
        Column("host", TEXT),
        Column("project_root", TEXT),
        _nn("mode", TEXT),
        Column("owner_pid", INTEGER),
        Column("owner_start", TEXT),
        Column("parent_id", TEXT),
        Column("sweep_id", TEXT),
        Column("reproduces", TEXT),
        Column("code_commit", TEXT),
        Column("code_json", TEXT),
        Column("env_json", TEXT),
        Column("packages_id", TEXT),
        Column("logs_json", TEXT),
        Column("error", TEXT),
        # version 2 (data lineage): what the run may store of its data files
        Column("data_policy", TEXT, since=2),
        # version 4: the notebook a run came from and the cells it executed
        Column("notebook_json", TEXT, since=4),
        # version 9: what ran the run (a local process, a Ray task: docs/run-record.md)
        Column("executor_json", TEXT, since=9),
    ],
    key=("id",),
    indexes=[
        Index("runs_started", ("started_at",)),
        Index("runs_status", ("status",)),
        Index("runs_name", ("name",)),
        Index("runs_commit", ("code_commit",)),
        Index("runs_sweep", ("sweep_id",)),
    ],
)

PARAMS = Table(
    "params",
    [
        _key("run_id"),
        _key("key"),
        _nn("value", TEXT),
        Column("num", DOUBLE),
        _nn("source", TEXT),
    ],
    key=("run_id", "key"),
    indexes=[Index("params_key_num", ("key", "num"))],
)

# The index on key (version 8): a run's experiment is its ``experiment`` tag, so the
# MLflow API finds an experiment's runs by key and value (records.experiments). Not on
# (key, value): a value may be 64 KiB and PostgreSQL's btree entries stop at 2704 bytes,
# so such an index would refuse long tags; the key narrows to one row per run.
TAGS = Table(
    "tags",
    [_key("run_id"), _key("key"), _nn("value", TEXT)],
    key=("run_id", "key"),
    indexes=[Index("tags_key", ("key",), since=8)],
)

METRICS = Table(
    "metrics",
    [
        _key("run_id"),
        _key("key"),
        _nn("count", INTEGER),
        Column("last", DOUBLE),
        Column("min", DOUBLE),
        Column("max", DOUBLE),
        Column("last_step", INTEGER),
        Column("last_time", DOUBLE),
        Column("summary", DOUBLE),
        _nn("has_summary", INTEGER),
        Column("value", DOUBLE),
    ],
    key=("run_id", "key"),
    indexes=[Index("metrics_key_value", ("key", "value"))],
)

METRIC_CHUNKS = Table(
    "metric_chunks",
    [
        _key("run_id"),
        _key("key"),
        _key("seq", INTEGER),
        _nn("n", INTEGER),
        _nn("steps", BLOB),
        _nn("times", BLOB),
        _nn("vals", BLOB),
    ],
    key=("run_id", "key", "seq"),
)

SPOOL_OFFSETS = Table(
    "spool_offsets",
    [_key("run_id"), _key("file"), _nn("offset", INTEGER)],
    key=("run_id", "file"),
)

# Version 1's per-file stat cache; dropped by version 3 (only a cache: dropping it costs
# one re-hash of each file).
STAT_CACHE = Table(
    "stat_cache",
    [
        _key("path"),
        _nn("dev", INTEGER),
        _nn("ino", INTEGER),
        _nn("size", INTEGER),
        _nn("mtime_ns", INTEGER),
        _nn("oid", TEXT),
    ],
    key=("path",),
    until=3,
)

# Version 2 (data lineage): the files each run read and wrote.
RUN_FILES = Table(
    "run_files",
    [
        _key("run_id"),
        _key("role"),
        _key("path"),
        Column("oid", TEXT),
        Column("size", INTEGER),
        _nn("stored", INTEGER, default=0),
        _nn("source", TEXT),
        Column("url", TEXT),
        _nn("changed", INTEGER, default=0),
        Column("kind", TEXT),
    ],
    key=("run_id", "role", "path"),
    indexes=[Index("run_files_oid", ("oid", "role"))],
    since=2,
)

# Version 3: the stat cache holds one row per directory (loaded as the walk enters it,
# so memory stays flat in the number of files) and knows whether each object is stored.
STAT_DIRS = Table("stat_dirs", [_key("dir"), _nn("entries", BLOB)], key=("dir",), since=3)

# Version 5: log chunks of a live run published from another machine (a team server's
# projects; a local run's live log is its spool file). Replaced by the log objects of
# ``runs.logs_json`` when the finished run arrives.
LIVE_LOGS = Table(
    "live_logs",
    [
        _key("run_id"),
        _key("stream"),
        _key("offset", INTEGER),
        _nn("size", INTEGER),
        _nn("data", BLOB),
    ],
    key=("run_id", "stream", "offset"),
    since=5,
)

# Version 6 (the chart workspace): the images and tables a run logged
# (``runbase.log_image``, ``runbase.log_table``, TensorBoard image summaries), each an
# object of the object store; and the saved views of the runs page (one store = one
# project: filter, sort, columns and chart panels by name).
MEDIA = Table(
    "media",
    [
        _key("run_id"),
        _key("kind"),  # image | table
        _key("key"),
        _key("step", INTEGER),
        _key("idx", INTEGER),  # several images logged at one step under one key
        _nn("oid", TEXT),
        _nn("mime", TEXT),  # image/png, image/jpeg, image/gif, image/webp; application/json
        _nn("size", INTEGER),
        Column("width", INTEGER),  # pixels; a table: its columns
        Column("height", INTEGER),  # pixels; a table: its rows
        Column("caption", TEXT),
        _nn("time", DOUBLE),
    ],
    key=("run_id", "kind", "key", "step", "idx"),
    since=6,
)

VIEWS = Table(
    "views",
    [
        _key("name"),
        _nn("spec", TEXT),  # JSON, docs/views.md
        _nn("is_default", INTEGER, default=0),
        Column("user_name", TEXT),
        _nn("created_at", DOUBLE),
        _nn("updated_at", DOUBLE),
    ],
    key=("name",),
    since=6,
)

# Version 7 (the model registry, docs/models.md): a model's versions (an output of a run,
# or external bytes, by hash), which stage holds which version now, and the append-only
# event log every change goes through. Each event carries the hash of the one before it
# (core.auditchain), and meta's ``model_log_head`` names the last, so an edited, removed
# or reordered event is detected (``runbase model verify``, ``runbase fsck``).
MODEL_VERSIONS = Table(
    "model_versions",
    [
        _key("name"),
        _key("version"),  # vMAJOR.MINOR.PATCH
        _nn("major", INTEGER),
        _nn("minor", INTEGER),
        _nn("patch", INTEGER),
        _nn("oid", TEXT),
        _nn("kind", TEXT),  # file | dir (a tree manifest)
        Column("size", INTEGER),
        Column("run_id", TEXT),  # NULL: registered --external, no provenance
        Column("path", TEXT),  # the path the run wrote
        Column("git_commit", TEXT),  # the producing run's commit
        _nn("created_at", DOUBLE),
        Column("user_name", TEXT),
        Column("message", TEXT),
        _nn("event_seq", INTEGER),
    ],
    key=("name", "version"),
    indexes=[Index("model_versions_oid", ("oid",))],
    since=7,
)

MODEL_STAGES = Table(
    "model_stages",
    [
        _key("name"),
        _key("stage"),
        _nn("version", TEXT),
        _nn("since", DOUBLE),
        Column("user_name", TEXT),
        _nn("event_seq", INTEGER),
    ],
    key=("name", "stage"),
    since=7,
)

MODEL_EVENTS = Table(
    "model_events",
    [
        _key("seq", INTEGER),
        Column("id", TEXT, not_null=True, unique=True),
        _nn("time", DOUBLE),
        Column("user_name", TEXT),
        _nn("action", TEXT),
        _nn("model", TEXT),
        Column("version", TEXT),
        Column("stage", TEXT),
        Column("from_version", TEXT),
        Column("to_version", TEXT),
        Column("oid", TEXT),
        Column("run_id", TEXT),
        Column("message", TEXT),
        _nn("data", TEXT),  # a JSON object
        Column("origin", TEXT),  # the id of the event this one was pushed from
        _nn("prev_hash", TEXT),
        _nn("hash", TEXT),
    ],
    key=("seq",),
    indexes=[
        Index("model_events_model", ("model", "seq")),
        Index("model_events_origin", ("origin",)),
    ],
    since=7,
)

MODEL_REQUESTS = Table(
    "model_requests",
    [
        _key("id"),
        _nn("model", TEXT),
        _nn("version", TEXT),
        _nn("stage", TEXT),
        Column("requested_by", TEXT),
        _nn("requested_at", DOUBLE),
        Column("message", TEXT),
        _nn("state", TEXT),  # open | approved | rejected
        Column("decided_by", TEXT),
        Column("decided_at", DOUBLE),
        Column("decision", TEXT),
    ],
    key=("id",),
    since=7,
)

# Events pushed from another store (their ids), each answered once: a replay of the same
# event gets the same answer and never changes the registry again, even after it moved on.
MODEL_ORIGINS = Table(
    "model_origins",
    [
        _key("origin"),
        _nn("result", TEXT),  # applied | exists
        Column("detail", TEXT),
        Column("event_seq", INTEGER),  # the event it became here (applied)
        _nn("time", DOUBLE),
    ],
    key=("origin",),
    since=7,
)

# Version 8 (MLflow compatibility, docs/mlflow.md): MLflow's experiments (a run's
# experiment is its ``experiment`` tag, by name; these rows give each name an MLflow id,
# a lifecycle stage and tags) and MLflow 3's logged models with their files (objects of
# the object store). Per store, never per run: run bundles do not carry them.
EXPERIMENTS = Table(
    "experiments",
    [
        _key("id"),  # "0" (Default), "1", "2", ...
        Column("name", TEXT, not_null=True, unique=True),  # a deleted one's too, as MLflow
        _nn("lifecycle_stage", TEXT),  # active | deleted
        Column("artifact_location", TEXT),
        _nn("created_at", DOUBLE),
        _nn("updated_at", DOUBLE),
    ],
    key=("id",),
    since=8,
)

EXPERIMENT_TAGS = Table(
    "experiment_tags",
    [_key("experiment_id"), _key("key"), _nn("value", TEXT)],
    key=("experiment_id", "key"),
    since=8,
)

LOGGED_MODELS = Table(
    "logged_models",
    [
        _key("id"),  # m-<32 hex>
        _nn("experiment_id", TEXT),
        Column("run_id", TEXT),
        _nn("name", TEXT),
        _nn("status", TEXT),  # PENDING | READY | FAILED (MLflow's LoggedModelStatus)
        _nn("created_at", DOUBLE),
        _nn("updated_at", DOUBLE),
        _nn("info", TEXT),  # JSON object: model_type, tags, params, metrics, ...
    ],
    key=("id",),
    indexes=[Index("logged_models_experiment", ("experiment_id",))],
    since=8,
)

LOGGED_MODEL_FILES = Table(
    "logged_model_files",
    [_key("model_id"), _key("path"), _nn("oid", TEXT), _nn("size", INTEGER)],
    key=("model_id", "path"),
    since=8,
)

# Version 9 (sweeps at scale, docs/sweeps.md): one row per sweep, its spec (the command,
# the search, the executor) and the study of an Optuna search, so a sweep can be resumed,
# shown and pushed with its trials (runs.sweep_id names it).
SWEEPS = Table(
    "sweeps",
    [
        _key("id"),
        _nn("created_at", DOUBLE),
        Column("updated_at", DOUBLE),
        _nn("status", TEXT),  # running | finished | interrupted | failed
        _nn("spec_json", TEXT),  # a JSON object (records.sweeps)
        Column("user_name", TEXT),
        Column("host", TEXT),
        Column("study_json", TEXT),  # {"name", "storage"}: never a password
        Column("best_run", TEXT),
        # the process driving the sweep (records.sweeps.claim): local facts, never in a
        # bundle; a running sweep whose driver is gone reads as interrupted
        Column("owner_pid", INTEGER),
        Column("owner_host", TEXT),
        Column("heartbeat_at", DOUBLE),
    ],
    key=("id",),
    since=9,
)

STORE_SCHEMA = Schema(
    SCHEMA_VERSION,
    [
        META,
        RUNS,
        PARAMS,
        TAGS,
        METRICS,
        METRIC_CHUNKS,
        SPOOL_OFFSETS,
        STAT_CACHE,
        RUN_FILES,
        STAT_DIRS,
        LIVE_LOGS,
        MEDIA,
        VIEWS,
        MODEL_VERSIONS,
        MODEL_STAGES,
        MODEL_EVENTS,
        MODEL_REQUESTS,
        MODEL_ORIGINS,
        EXPERIMENTS,
        EXPERIMENT_TAGS,
        LOGGED_MODELS,
        LOGGED_MODEL_FILES,
        SWEEPS,
    ],
)

# The SQLite DDL of version 1, the oldest store a migration starts from (tests build one).
SCHEMA_V1 = STORE_SCHEMA.create("sqlite", version=1)
