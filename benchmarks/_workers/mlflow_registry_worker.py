"""Run inside the MLflow venv: MLflow's model registry doing what ``runbase model
register`` + ``promote`` do, on the SQLite backend at DIR/mlflow.db (artifacts under
DIR/artifacts). Prints one JSON line.

Set-up, not timed: VERSIONS runs, each logging one artifact ``model/model-I.pkl`` of
SIZE distinct bytes (the version's source is the run's ``model`` directory, as MLflow's
models are). Timed, per version: ``create_model_version`` and ``set_registered_model_alias(name, "production",
version)`` (MLflow's stages are deprecated; aliases are what MLflow 3 offers); then
reading the model's versions back (``search_model_versions``) and resolving the alias
(``get_model_version_by_alias``); and downloading the aliased model
(``download_artifacts`` of ``models:/churn@production``) once.

    python mlflow_registry_worker.py DIR VERSIONS SIZE
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def main() -> None:
    base, n, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    uri = f"sqlite:///{base / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("registry", artifact_location=str(base / "artifacts"))
    runs = []
    for i in range(n):
        run = client.create_run(exp)
        f = base / f"model-{i}.pkl"
        f.write_bytes(os.urandom(size))
        client.log_artifact(run.info.run_id, str(f), artifact_path="model")
        client.set_terminated(run.info.run_id)
        runs.append((run.info.run_id, run.info.artifact_uri + "/model"))
    client.create_registered_model("churn")
    register, alias = [], []
    for run_id, source in runs:
        t0 = time.perf_counter()
        mv = client.create_model_version("churn", source, run_id=run_id)
        t1 = time.perf_counter()
        client.set_registered_model_alias("churn", "production", mv.version)
        t2 = time.perf_counter()
        register.append(t1 - t0)
        alias.append(t2 - t1)
    t0 = time.perf_counter()
    versions = client.search_model_versions("name='churn'")
    t1 = time.perf_counter()
    client.get_model_version_by_alias("churn", "production")
    resolve = time.perf_counter() - t1
    out = base / "download"
    os.sync()  # as the runbase side: nothing left to write back when the copy starts
    t2 = time.perf_counter()
    mlflow.artifacts.download_artifacts("models:/churn@production", dst_path=str(out))
    t3 = time.perf_counter()
    got = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if got != size:  # the download must have delivered the model, or the time means nothing
        raise SystemExit(f"downloaded {got} bytes, expected {size}")
    print(
        json.dumps(
            {
                "register": register,
                "alias": alias,
                "list_versions": t1 - t0,
                "versions": len(versions),
                "resolve_alias": resolve,
                "download": t3 - t2,
                "mlflow": mlflow.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
