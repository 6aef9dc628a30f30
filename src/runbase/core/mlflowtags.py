"""The names runbase gives MLflow's state: the tags every MLflow path shares (the
server's MLflow API, the importer and the export, the mirror of a script's MLflow
calls). Stdlib only and without imports: the mirror runs in the training process,
which must not load the store's modules for a string (records.external re-exports
them for the paths that do use the store).
"""

from __future__ import annotations

# What MLflow keeps that runbase has no column for lives in tags under one prefix, which
# the MLflow API hides from MLflow's tags and refuses to set (docs/run-record.md); a
# team server's push spares them (records.bundle.SERVER_ROWS).
HIDDEN_PREFIX = "runbase.mlflow."
DELETED_TAG = HIDDEN_PREFIX + "deleted"  # soft delete (MLflow's delete_run): the time, ISO 8601
DATASET_PREFIX = HIDDEN_PREFIX + "dataset."  # + a hash: one dataset input, JSON
MODEL_INPUT_PREFIX = HIDDEN_PREFIX + "model_input."  # + a logged model id: "" (log_inputs)
MODEL_OUTPUT_PREFIX = HIDDEN_PREFIX + "model_output."  # + a logged model id: its step
MLFLOW_SOURCE = "mlflow"  # params' and files' source when MLflow wrote them
MODEL_HISTORY_TAG = "mlflow.log-model.history"  # MLflow's own tag: a JSON list, as its server
DATASET_CONTEXT_TAG = "mlflow.data.context"  # a dataset input's tag: training, eval, ...

# MLflow's own tags that runbase reads, and the one it adds
RUN_NAME_TAG = "mlflow.runName"  # the run's name (runbase keeps it in the run)
PARENT_TAG = "mlflow.parentRunId"  # a nested run's parent
ADOPT_TAG = "runbase.run_id"  # create_run: "make this runbase run the MLflow run"
