"""``runbase import mlflow``: MLflow runs into the store, read with MLflow's own client.

The source is an mlruns directory (MLflow's file store, read as
``MlflowClient("file:DIR")``) or a tracking server (``--tracking-uri``: MLflow's
server, a runbase server's ``/p/PROJECT/mlflow``). Each run becomes a runbase run
through :func:`runbase.interop.imported.write_run` (the rules every importer shares:
its id derived from the original one, so a second import finds it; what the source
added since is appended, a source that disagrees is reported and left alone):

=========================  ===================================================
MLflow                     runbase
=========================  ===================================================
run id                     tag ``import.id`` (the run id is derived from it)
experiment (name)          tag ``experiment``; the experiment, with its tags
run name, user, times      name, user, started/ended
status                     RUNNING/SCHEDULED running, FINISHED finished,
                           FAILED failed, KILLED killed
params                     params (source ``mlflow``)
tags (all, ``mlflow.*``)   tags
metrics                    every point of every metric (get_metric_history)
``mlflow.parentRunId``     ``parent_id`` (the parent's derived id)
dataset inputs             tags ``runbase.mlflow.dataset.<hash>`` (records.external)
artifacts                  outputs (objects of the store, source ``mlflow``)
logged model's files       outputs ``mlflow-models/<model id>/...`` of the run
                           that logged it
deleted run                tag ``runbase.mlflow.deleted`` (with ``include_deleted``)
=========================  ===================================================

Not mapped, counted in the report: the metadata of logged models (MLflow 3: their
params, metrics, tags, status) and the runs' links to them, traces, registered models
and prompts. An artifact already imported with the
same size is not downloaded again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runbase.capture.manifest import file_entry_json, put_manifest
from runbase.core.safepath import check_relpath
from runbase.core.shapes import I64
from runbase.errors import NotFound, RunbaseError, UnsafePathError, UsageError
from runbase.interop.imported import (
    SourceFile,
    SourceRun,
    ok_key,
    ok_time,
    ok_value,
    run_id_of,
    walk_files,
    write_run,
)
from runbase.interop.mlruns import is_mlruns
from runbase.interop.report import ImportReport, Progress, new_report, report_step
from runbase.records import experiments, external
from runbase.records.files import list_files
from runbase.store import Store

SYSTEM = "mlflow"
MODELS_DIR = "mlflow-models"  # a logged model's files: outputs mlflow-models/<model id>/...
PAGE = 1000  # runs per search_runs page
# where a file comes from: given a fresh directory to download into, (root, relative path)
Fetch = Callable[[Path], tuple[Path, str]]
_INSTALL = "runbase import mlflow reads with the MLflow client: pip install 'runbase[mlflow]'"


def import_mlflow(
    store: Store,
    source: Path | str,
    *,
    experiment: str | None = None,
    progress: Progress | None = None,
    include_deleted: bool = False,
) -> ImportReport:
    """Import the runs of ``source`` (an mlruns directory, or a tracking URI given as a
    string with a scheme): every active experiment's active runs, or only those of
    ``experiment`` (a name); deleted ones too with ``include_deleted``."""
    client_class, view_type, mlflow_error = _mlflow()
    uri, local = tracking_uri(source)
    report = new_report(SYSTEM, progress)
    with _mlflow_env(file_store=local is not None):
        client = _client(client_class, uri, mlflow_error)
        reader = _Reader(client, uri, local, view_type, include_deleted, mlflow_error)
        exps = reader.experiments(experiment)
        listing = reader.runs(exps)
        ids = {run.info.run_id: _derived(run) for _exp, run in listing}
        for exp in exps:
            _keep_experiment(store, exp, report)
        reader.logged_models(exps, report)
        with tempfile.TemporaryDirectory(prefix="runbase-import-") as tmp:
            for i, (exp, run) in enumerate(listing):
                report_step(progress, i, len(listing), run.info.run_name or run.info.run_id)
                reader.import_run(store, exp, run, ids, Path(tmp), report)
        reader.count_not_mapped(exps, report)
    return report


# -- the source -----------------------------------------------------------------------------


def _mlflow() -> tuple[Any, Any, type[Exception]]:
    """MLflow's client class, its ViewType and its exception class, imported now."""
    try:
        from mlflow.entities import ViewType  # lazy: an optional, heavy dependency
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(_INSTALL) from None
    return MlflowClient, ViewType, MlflowException


def _client(client_class: Any, uri: str, mlflow_error: type[Exception]) -> Any:
    try:
        return client_class(tracking_uri=uri)
    except (mlflow_error, ImportError) as e:
        hint = ""
        if not uri.startswith(("file:", "http:", "https:")):
            hint = " (a database needs the full MLflow package: pip install mlflow)"
        raise UsageError(f"MLflow cannot read {shown_uri(uri)}{hint}: {_message(e)}") from None


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: not a drive (C:)


def tracking_uri(source: Path | str) -> tuple[str, Path | None]:
    """The tracking URI of ``source`` and, for an mlruns directory, that directory: a
    string with a scheme (``http://...``, ``sqlite:///...``, ``databricks``) is a URI, a
    ``file:`` URI or any other path an mlruns directory. UsageError for a path that is
    missing or not an mlruns directory."""
    is_uri = isinstance(source, str) and (_SCHEME.match(source) or source == "databricks")
    if is_uri and not str(source).startswith("file:"):
        return str(source), None
    text = str(source)
    if text.startswith("file:"):
        text = text[len("file://") :] if text.startswith("file://") else text[len("file:") :]
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise UsageError(f"{path} does not exist: give an mlruns directory or --tracking-uri URI")
    if not path.is_dir():
        hint = (
            f"; for MLflow's SQLite database give --tracking-uri sqlite:///{path}"
            if path.suffix == ".db"
            else ""
        )
        raise UsageError(f"{path} is a file, not an mlruns directory{hint}")
    for candidate in (path, path / "mlruns"):
        if is_mlruns(candidate):
            return "file:" + str(candidate), candidate
    raise UsageError(
        f"{path} is not an MLflow file store (no <experiment id>/meta.yaml in it): give the "
        "mlruns directory MLflow wrote, or --tracking-uri URI for a tracking server"
    )


@contextlib.contextmanager
def _mlflow_env(file_store: bool) -> Iterator[None]:
    """MLflow's settings for the import's length, as they were after: MLflow 3 opens a
    file store only with MLFLOW_ALLOW_FILE_STORE set (the store is in "maintenance
    mode"), and draws a bar per downloaded artifact unless told not to (runbase
    reports its own progress). A value the user set is kept."""
    wanted = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if file_store:
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    before = {k: os.environ.get(k) for k in wanted}
    for k, v in wanted.items():
        if k == "MLFLOW_ALLOW_FILE_STORE" or before[k] is None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, old in before.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _derived(run: Any) -> str:
    return run_id_of(SYSTEM, run.info.run_id, _seconds(run.info.start_time) or 0.0)


def _seconds(ms: Any) -> float | None:
    """MLflow's milliseconds as seconds (records.external's conversion); None when
    absent or not a time runbase keeps (before 1970, not a number)."""
    try:
        t = external.seconds(ms)
    except UsageError:
        return None
    return t if t is not None and ok_time(t) else None


def _keep_experiment(store: Store, exp: Any, report: ImportReport) -> None:
    """The experiment in the store under its name, with its tags, unless there already."""
    if experiments.by_name(store, exp.name) is not None:
        return
    tags = {k: v for k, v in (exp.tags or {}).items() if ok_key(k) and ok_value(v)}
    try:
        experiments.create(store, exp.name, tags=tags)
    except RunbaseError as e:
        report.skipped.append((f"experiment {exp.name!r}", str(e)))


class _Reader:
    """Reads one source through MLflow's client and writes its runs."""

    def __init__(
        self,
        client: Any,
        uri: str,
        local: Path | None,
        view_type: Any,
        include_deleted: bool,
        mlflow_error: type[Exception],
    ) -> None:
        self.client = client
        self.uri = uri
        self.local = local
        self.view = view_type.ALL if include_deleted else view_type.ACTIVE_ONLY
        self.error = mlflow_error
        self.models: dict[str, list[Any]] = {}  # source run id -> its logged models

    def _failed(self, what: str, e: Exception) -> RunbaseError:
        return RunbaseError(f"cannot read {what} from {shown_uri(self.uri)}: {_message(e)}")

    # -- listing ------------------------------------------------------------------------
    def experiments(self, name: str | None) -> list[Any]:
        try:
            if name is not None:
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise NotFound(f"no experiment {name!r} in {shown_uri(self.uri)}")
                return [exp]
            out, token = [], None
            while True:
                page = self.client.search_experiments(view_type=self.view, page_token=token)
                out.extend(page)
                token = page.token
                if not token:
                    return out
        except (self.error, OSError) as e:
            raise self._failed("experiments", e) from None

    def runs(self, exps: list[Any]) -> list[tuple[Any, Any]]:
        """Every run of ``exps``, oldest first (a parent before its children)."""
        out: list[tuple[Any, Any]] = []
        for exp in exps:
            token = None
            while True:
                try:
                    page = self.client.search_runs(
                        [exp.experiment_id],
                        run_view_type=self.view,
                        max_results=PAGE,
                        page_token=token,
                    )
                except (self.error, OSError) as e:
                    raise self._failed(f"the runs of experiment {exp.name!r}", e) from None
                out.extend((exp, run) for run in page)
                token = page.token
                if not token:
                    break
        out.sort(key=lambda er: (er[1].info.start_time or 0, er[1].info.run_id))
        return out

    # -- one run ------------------------------------------------------------------------
    def import_run(
        self,
        store: Store,
        exp: Any,
        run: Any,
        ids: dict[str, str],
        tmp: Path,
        report: ImportReport,
    ) -> None:
        orig = run.info.run_id
        work = tmp / "run"
        try:
            src = self.read_run(store, exp, run, ids, work, report)
        except (self.error, OSError, RunbaseError) as e:
            shutil.rmtree(work, ignore_errors=True)
            report.skipped.append((f"run {orig}", _message(e)))
            return
        except Exception as e:  # a value nothing foresaw: this run only, never the import
            shutil.rmtree(work, ignore_errors=True)
            report.skipped.append((f"run {orig}", f"{type(e).__name__}: {_message(e)}"))
            return
        try:
            run_id = write_run(store, src, report)
            if run_id is not None:
                self._finish(store, run, run_id, report)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _finish(self, store: Store, run: Any, run_id: str, report: ImportReport) -> None:
        """What write_run does not know: MLflow's deletion, the logged models whole."""
        try:
            if run.info.lifecycle_stage == "deleted":
                external.soft_delete(store, run_id, True)
            for model in self.models.get(run.info.run_id, []):
                _model_directory(store, run_id, f"{MODELS_DIR}/{model.model_id}")
        except RunbaseError as e:
            report.skipped.append((f"the logged models or deletion of run {run_id}", str(e)))

    def read_run(
        self, store: Store, exp: Any, run: Any, ids: dict[str, str], work: Path, report: ImportReport
    ) -> SourceRun:
        info, data = run.info, run.data
        what = f"run {info.run_id}"
        started = _seconds(info.start_time)
        if started is None:
            raise UsageError(f"it has no valid start time ({info.start_time!r})")
        status = external.STATUS_FROM_MLFLOW.get(str(info.status), "finished")
        tags = _checked(dict(data.tags), "tag", what, report)
        tags.update(_datasets(run, what, report))
        _count_model_links(run, report)
        src = SourceRun(
            system=SYSTEM,
            original_id=info.run_id,
            started_at=started,
            name=info.run_name or data.tags.get("mlflow.runName") or None,
            experiment=exp.name,
            ended_at=_seconds(info.end_time) if status != "running" else None,
            status=status,
            user=info.user_id or None,
            parent_id=self.parent_of(data.tags.get("mlflow.parentRunId"), ids),
            params=_checked(dict(data.params), "param", what, report),
            tags=tags,
            points=self.points(info.run_id, sorted(data.metrics), what, report),
        )
        src.files = self.files(store, info, ids[info.run_id], work, report)
        return src

    def parent_of(self, parent: str | None, ids: dict[str, str]) -> str | None:
        """The derived id of the parent run: of this import, else read from the source."""
        if not parent:
            return None
        if parent in ids:
            return ids[parent]
        try:
            return _derived(self.client.get_run(parent))
        except (self.error, OSError, RunbaseError):
            return None  # gone at the source: its id stays in tag mlflow.parentRunId

    def points(
        self, run_id: str, keys: list[str], what: str, report: ImportReport
    ) -> list[tuple[str, int, float, float]]:
        """Every point of every metric, in the order MLflow gives them."""
        out = []
        for key in keys:
            if not ok_key(key):
                report.skipped.append((f"metric {key[:100]!r} of {what}", "not a valid key"))
                continue
            bad = 0
            history = self.client.get_metric_history(run_id, key)
            for m in history:
                t = _seconds(m.timestamp)
                if (
                    t is None
                    or isinstance(m.step, bool)
                    or not isinstance(m.step, int)
                    or not -I64 <= m.step < I64
                ):
                    bad += 1
                    continue
                out.append((key, int(m.step), t, float(m.value)))
            report.advance("points read", len(history))
            report.not_mapped_add("metric points with a time or step runbase cannot keep", bad)
        return out

    # -- artifacts ----------------------------------------------------------------------
    def files(
        self, store: Store, info: Any, run_id: str, work: Path, report: ImportReport
    ) -> list[SourceFile]:
        """The run's artifacts, and the files of the logged models it made (under
        ``mlflow-models/<model id>/``), as files to store: read in place from an mlruns
        directory, else downloaded into ``work``. One already imported with the same
        size is not read again."""
        have: dict[str, int | None] = {}
        if external.exists(store, run_id):
            have = {f["path"]: f.get("size") for f in list_files(store, run_id)["outputs"]}
        out: list[SourceFile] = []
        for path, size, fetch in self._artifacts(info, report):
            where = f"artifact {path!r} of run {info.run_id}"
            try:
                check_relpath(path)
            except UnsafePathError as e:
                report.skipped.append((where, e.why))
                continue
            if path in have and have[path] == size:
                continue
            dst = work / str(len(out))  # one directory each: two files may share a name
            try:
                root, rel = fetch(dst)
            except (self.error, OSError) as e:
                report.skipped.append((where, _message(e)))
                continue
            out.append(SourceFile(path, root, rel))
        return out

    def _artifacts(
        self, info: Any, report: ImportReport
    ) -> Iterator[tuple[str, int | None, Fetch]]:
        """(output path, size, where to get it) of each file of the run and its models."""
        local = self._local_dir(str(info.experiment_id), str(info.run_id))
        if local is not None:
            for f, size in walk_files(local, report, f"run {info.run_id}"):
                yield f.path, size, _in_place(f.root, f.rel)
        elif self._may_fetch(info.artifact_uri, f"the artifacts of run {info.run_id}", report):
            for p, n in self._listed(info.run_id, None):
                yield p, n, self._download_run_file(info.run_id, p)
        for model in self.models.get(info.run_id, []):
            prefix = f"{MODELS_DIR}/{model.model_id}/"
            local = self._local_dir(str(model.experiment_id), f"models/{model.model_id}")
            if local is not None:
                for f, size in walk_files(local, report, f"logged model {model.model_id}"):
                    yield prefix + f.path, size, _in_place(f.root, f.rel)
            elif self._may_fetch(model.artifact_location, f"logged model {model.model_id}", report):
                for p, n in self._listed_model(model.model_id, None):
                    yield prefix + p, n, self._download_model_file(model, p)

    def _may_fetch(self, uri: Any, what: str, report: ImportReport) -> bool:
        """Whether files not inside an mlruns directory may be read through MLflow: from a
        server always; from an mlruns directory only those in remote storage (S3, ...).
        A meta.yaml naming a local place elsewhere (``file:///home/you/.ssh``) is not
        followed: an mlruns directory someone sent must not copy this machine's files
        into the store (and from there to a team server)."""
        if self.local is None:
            return True
        text = str(uri or "")
        if text.startswith("file:") or not _SCHEME.match(text):
            where = text[len("file://") :] if text.startswith("file://") else text
            if not where or not os.path.lexists(where.removeprefix("file:")):
                return False  # nothing there: nothing lost
            report.skipped.append(
                (what, f"at {text[:200]}, outside {self.local}: not read (copy them in)")
            )
            return False
        return True

    def _local_dir(self, exp_id: str, sub: str) -> Path | None:
        """``<mlruns>/<experiment>/<sub>/artifacts`` when that is where the files are
        (also in an mlruns directory moved since MLflow wrote it: its meta.yaml files
        still name the old place)."""
        if self.local is None:
            return None
        d = self.local / exp_id / sub / "artifacts"
        return d if d.is_dir() and not d.is_symlink() else None

    def _download_run_file(self, run_id: str, path: str) -> Fetch:
        def fetch(dst: Path) -> tuple[Path, str]:
            dst.mkdir(parents=True)
            got = Path(self.client.download_artifacts(run_id, path, str(dst)))
            return got.parent, got.name

        return fetch

    def _download_model_file(self, model: Any, path: str) -> Fetch:
        def fetch(dst: Path) -> tuple[Path, str]:
            from mlflow.artifacts import download_artifacts  # lazy: optional dependency

            dst.mkdir(parents=True)
            uri = f"{str(model.artifact_location).rstrip('/')}/{path}"
            got = download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=self.uri)
            return Path(got).parent, Path(got).name

        return fetch

    def _listed_model(self, model_id: str, path: str | None) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        for f in self.client.list_logged_model_artifacts(model_id, path):
            if f.is_dir:
                out.extend(self._listed_model(model_id, f.path))
            else:
                out.append((f.path, f.file_size))
        return out

    def logged_models(self, exps: list[Any], report: ImportReport) -> None:
        """The logged models (MLflow 3) of ``exps`` by the run that made them; their
        files are imported with that run, their metadata is not (counted)."""
        ids = [e.experiment_id for e in exps]
        found: list[Any] = []
        with contextlib.suppress(Exception):  # a source without logged models: none
            found = _all_pages(lambda t: self.client.search_logged_models(ids, page_token=t))
        for m in found:
            if m.source_run_id:
                self.models.setdefault(m.source_run_id, []).append(m)
        report.not_mapped_add("logged models' metadata", len(found))

    def _listed(self, run_id: str, path: str | None) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        for f in self.client.list_artifacts(run_id, path):
            if f.is_dir:
                out.extend(self._listed(run_id, f.path))
            else:
                out.append((f.path, f.file_size))
        return out

    # -- what runbase does not keep -----------------------------------------------------
    def count_not_mapped(self, exps: list[Any], report: ImportReport) -> None:
        """Count traces and registered models, where the source answers."""
        ids = [e.experiment_id for e in exps]
        if not ids:
            return
        counts = (
            (
                "traces",
                lambda t: self.client.search_traces(
                    ids, max_results=500, include_spans=False, page_token=t
                ),
            ),
            (
                "registered models and prompts",
                lambda t: self.client.search_registered_models(max_results=1000, page_token=t),
            ),
        )
        for what, search in counts:
            with contextlib.suppress(Exception):  # a source without it (older server): none
                report.not_mapped_add(what, _count_pages(search))


def _count_pages(search: Any) -> int:
    return len(_all_pages(search))


def _all_pages(search: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    for _ in range(10_000):  # a source that never ends its pages stops here
        page = search(token)
        out.extend(page)
        token = page.token
        if not token:
            break
    return out


def _checked(items: dict[str, Any], kind: str, what: str, report: ImportReport) -> dict[str, str]:
    """The keys and values runbase can keep; the others reported skipped. A source's
    tag under ``runbase.mlflow.`` is not taken: that is where runbase keeps its own
    MLflow state (deletion, datasets), which an import writes from what MLflow says."""
    out = {}
    for k, v in items.items():
        if kind == "tag" and isinstance(k, str) and k.startswith(external.HIDDEN_PREFIX):
            report.skipped.append((f"tag {k[:100]!r} of {what}", "a name runbase keeps for itself"))
        elif ok_key(k) and isinstance(v, str) and ok_value(v):
            out[k] = v
        else:
            report.skipped.append((f"{kind} {str(k)[:100]!r} of {what}", "too long or has NUL"))
    return out


def _datasets(run: Any, what: str, report: ImportReport) -> dict[str, str]:
    """The run's dataset inputs as the tags that keep them (records.external's codec,
    the one the server's MLflow API and the export read). One MLflow refuses as
    malformed is reported skipped; one too large for a tag is counted not mapped."""
    out: dict[str, str] = {}
    for di in getattr(run.inputs, "dataset_inputs", None) or []:
        ds = di.dataset
        entry = {
            "dataset": {k: getattr(ds, k, None) for k in external.DATASET_FIELDS},
            "tags": [{"key": t.key, "value": t.value} for t in (di.tags or [])],
        }
        try:
            tags, too_large = external.dataset_tags([entry])
        except UsageError as e:
            name = str(getattr(ds, "name", ""))[:100]
            report.skipped.append((f"dataset input {name!r} of {what}", str(e)))
            continue
        report.not_mapped_add("dataset inputs too large for a tag", too_large)
        out.update(tags)
    return out


def _count_model_links(run: Any, report: ImportReport) -> None:
    links = len(getattr(run.inputs, "model_inputs", None) or [])
    outputs = getattr(run, "outputs", None)
    links += len(getattr(outputs, "model_outputs", None) or [])
    report.not_mapped_add("links from runs to logged models", links)


def _message(e: BaseException) -> str:
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    text = str(text).strip().splitlines()[0] if str(text).strip() else type(e).__name__
    return shown_uri(text)[:500]


_USERINFO = re.compile(r"//[^/@\s]*@")


def shown_uri(text: str) -> str:
    """``text`` with the user and password of any URI in it left out
    (``http://bob:pw@host/`` -> ``http://host/``): a report or a terminal never shows them."""
    return _USERINFO.sub("//", text)


def _in_place(root: Path, rel: str) -> Fetch:
    return lambda _dst: (root, rel)


def _model_directory(store: Store, run_id: str, prefix: str) -> None:
    """A logged model's files, imported one by one, also as one directory output at
    ``prefix`` (a tree manifest), so ``runbase model register NAME RUN:PREFIX``
    registers the model whole. The same files give the same manifest: idempotent."""
    files = [
        (f["path"][len(prefix) + 1 :], f["hash"], f["size"])
        for f in list_files(store, run_id)["outputs"]
        if f["path"].startswith(prefix + "/") and f.get("hash") and not f.get("directory")
    ]
    if not files:
        return
    oid = put_manifest(store, [file_entry_json(p, h, n) for p, h, n in sorted(files)])
    size = sum(n or 0 for _p, _h, n in files)
    external.add_output(store, run_id, prefix, oid, size, SYSTEM, kind="dir")
