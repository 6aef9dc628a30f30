"""A linear classifier trained epoch by epoch and tracked with MLflow, the way MLflow's
quickstart and most team templates do it: ``mlflow.set_experiment``, a named run with
``log_params``, ``log_metric(..., step=epoch)`` every epoch, ``set_tags``, the model and
its history as artifacts, and a nested child run for the held-out evaluation. With
``--reopen``, a later session adds to the finished run the way MLflow documents it
(``start_run(run_id=...)``), once the tracking server shows the run's metrics: it drops
a scratch tag and logs the test loss. Nothing in it knows about runbase."""

import argparse
import json
import time

import joblib
import mlflow
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split


def main():
    parser = argparse.ArgumentParser(description="SGD logistic regression, tracked by MLflow")
    parser.add_argument("--experiment", default="churn-baselines")
    parser.add_argument("--run-name", default="sgd-logreg")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.0001)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="model.joblib")
    parser.add_argument("--reopen", action="store_true", help="add to the run afterwards")
    args = parser.parse_args()

    x, y = make_classification(n_samples=args.samples, n_features=12, n_informative=6,
                               random_state=args.seed)  # fmt: skip
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25,
                                                        random_state=args.seed)  # fmt: skip
    classes = np.unique(y)

    mlflow.set_experiment(args.experiment)
    history = {"train_loss": [], "train_acc": []}
    with mlflow.start_run(run_name=args.run_name) as run:
        mlflow.log_params({"alpha": args.alpha, "epochs": args.epochs, "loss": "log_loss",
                           "penalty": "l2", "n_features": x.shape[1]})  # fmt: skip
        mlflow.set_tags({"team": "growth", "stage": "baseline"})
        mlflow.set_tag("scratch", "until the evaluation")
        model = SGDClassifier(loss="log_loss", alpha=args.alpha, random_state=args.seed)
        for epoch in range(args.epochs):
            model.partial_fit(x_train, y_train, classes=classes)
            loss = float(log_loss(y_train, model.predict_proba(x_train)))
            acc = float(accuracy_score(y_train, model.predict(x_train)))
            history["train_loss"].append(loss)
            history["train_acc"].append(acc)
            mlflow.log_metric("train_loss", loss, step=epoch)
            mlflow.log_metric("train_acc", acc, step=epoch)
        joblib.dump(model, args.model)
        mlflow.log_artifact(args.model)
        with open("history.json", "w") as f:
            json.dump(history, f)
        mlflow.log_artifact("history.json", artifact_path="reports")

        with mlflow.start_run(run_name="evaluate", nested=True) as child:
            test_acc = float(accuracy_score(y_test, model.predict(x_test)))
            mlflow.log_param("split", "test")
            mlflow.log_metric("test_acc", test_acc)
        history["test_acc"] = test_acc
        with open("history.json", "w") as f:
            json.dump(history, f)
        mlflow.log_metric("test_acc", test_acc)
    ids = {"run": run.info.run_id, "child": child.info.run_id}
    if args.reopen:
        ids["shown_before_reopen"] = wait_for_metrics(run.info.run_id, args.epochs)
        test_loss = float(log_loss(y_test, model.predict_proba(x_test)))
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.delete_tag("scratch")
            mlflow.log_metric("test_loss", test_loss)
        history["test_loss"] = test_loss
        with open("history.json", "w") as f:
            json.dump(history, f)
    with open("ids.json", "w") as f:
        json.dump(ids, f)
    print(f"run {run.info.run_id}: test accuracy {test_acc:.3f}")


def wait_for_metrics(run_id, epochs, patience=120.0):
    """Whether the tracking server shows the run's train_loss history within
    ``patience`` seconds (another process may be the one sending it)."""
    client = mlflow.MlflowClient()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if len(client.get_metric_history(run_id, "train_loss")) == epochs:
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    main()
