"""MLflow artifacts, logged models and the model registry on the team server (issue 20,
docs/mlflow.md), driven by the real MLflow client against a real `runbase server`
subprocess (SQLite + a directory of objects): artifacts are the run's outputs, the
same bytes are one object, a sklearn model logged with ``mlflow.sklearn.log_model``
loads back, and registered models and aliases are runbase's registry and stages."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from runbase.store.hashing import hash_bytes
from serverkit import PROJECT, mlflow_client_env, team_server
from serverkit import TeamServer as Mlflow

mlflow = require("mlflow")  # the test extra has both: a missing one fails, never skips
require("sklearn")

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    """One server with a writer (alice), an approver (carol) and a reader (rita)."""
    base = tmp_path_factory.mktemp("mlflow-artifacts")
    users = (("alice", "writer"), ("carol", "approver"), ("rita", "reader"), ("adam", "admin"))
    with team_server(base, users) as m, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", m.uri)
        for key, value in mlflow_client_env(m.tokens["alice"]).items():
            mp.setenv(key, value)
        mlflow.set_tracking_uri(m.uri)
        yield m


def _run_files(srv: Mlflow, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's outputs as the server's runbase API gives them to `runbase pull`."""
    status, bundle = srv.request("alice", "GET", f"/p/{PROJECT}/api/runs/{run_id}/bundle")
    assert status == 200, bundle
    return {f["path"]: f for f in bundle["run_files"] if f["role"] == "output"}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_artifacts_round_trip_and_are_run_outputs(srv: Mlflow, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello artifacts\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    (src / "sub" / "empty.txt").write_bytes(b"")
    (src / "données été.csv").write_text("x,y\n1,2\n")
    single = tmp_path / "report.json"
    single.write_text('{"acc": 0.9}')
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(src), artifact_path="data")
    rid = run.info.run_id
    client = mlflow.MlflowClient()
    top = {(f.path, f.is_dir) for f in client.list_artifacts(rid)}
    assert top == {("report.json", False), ("data", True)}
    listed = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid, "data")}
    assert listed == {
        ("data/a.txt", False, 16),
        ("data/données été.csv", False, 8),
        ("data/sub", True, None),
    }
    out = Path(client.download_artifacts(rid, "data", str(tmp_path / "dl")))
    assert _tree(out) == _tree(src)  # byte-exact
    got = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{rid}/report.json", dst_path=str(tmp_path / "one")
        )
    )
    assert got.read_bytes() == single.read_bytes()

    outputs = _run_files(srv, rid)
    assert set(outputs) == {
        "report.json",
        "data/a.txt",
        "data/données été.csv",
        "data/sub/b.bin",
        "data/sub/empty.txt",
    }
    assert outputs["data/a.txt"]["oid"] == hash_bytes(b"hello artifacts\n")
    assert outputs["data/a.txt"]["source"] == "mlflow"
    assert outputs["data/a.txt"]["stored"] in (1, True)


def test_same_bytes_are_one_object(srv: Mlflow, tmp_path: Path) -> None:
    payload = b"the same bytes, twice " * 100
    path = tmp_path / "same.bin"
    path.write_bytes(payload)
    ids = []
    for _ in range(2):
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(path), artifact_path="copy")
        ids.append(run.info.run_id)
    oids = {_run_files(srv, rid)["copy/same.bin"]["oid"] for rid in ids}
    assert oids == {hash_bytes(payload)}
    copies = [p for p in srv.objects.rglob("*") if p.is_file() and p.read_bytes() == payload]
    assert len(copies) == 1


def test_unsafe_paths_and_roles(srv: Mlflow, tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        mlflow.log_param("x", "1")
    rid, exp = run.info.run_id, run.info.experiment_id
    base = f"/p/{PROJECT}/mlflow/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts"
    for bad in ("a/../../b", "%2e%2e/secret", "a//b", ".git/config"):
        status, body = srv.request("alice", "PUT", f"{base}/{bad}", b"x")
        assert status == 400, (bad, body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    long = "d/" * 600 + "f"
    assert srv.request("alice", "PUT", f"{base}/{long}", b"x")[0] == 400

    # a reader reads but may not upload
    status, body = srv.request("rita", "PUT", f"{base}/r.txt", b"x")
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    assert srv.request("alice", "PUT", f"{base}/r.txt", b"x")[0] == 200
    query = urllib.parse.urlencode({"path": f"{exp}/{rid}/artifacts"})
    status, body = srv.request(
        "rita", "GET", f"/p/{PROJECT}/mlflow/api/2.0/mlflow-artifacts/artifacts?{query}"
    )
    assert status == 200 and body["files"] == [{"path": "r.txt", "is_dir": False, "file_size": 1}]
    assert srv.request("rita", "GET", f"{base}/r.txt") == (200, b"x")

    # a run in another experiment than the path says, and an unknown run: not found
    status, body = srv.request(
        "alice",
        "PUT",
        f"/p/{PROJECT}/mlflow/api/2.0/mlflow-artifacts/artifacts/987/{rid}/artifacts/f",
        b"x",
    )
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_only_the_author_or_an_admin_writes(srv: Mlflow) -> None:
    """review1 M1, M2 (review2 A2): another writer cannot replace a run's artifact,
    link a logged model to someone's run (``runs:/<run>/model`` would load theirs), or
    change, fill or delete someone's logged model (403, the bytes unchanged); the run's
    author, the model's creator and a project admin can; a deleted run takes no uploads."""
    with mlflow.start_run() as run:
        mlflow.log_param("x", "1")
    rid, exp = run.info.run_id, run.info.experiment_id
    api = f"/p/{PROJECT}/mlflow/api/2.0"
    art = f"{api}/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/model.pkl"
    assert srv.request("alice", "PUT", art, b"GOOD")[0] == 200
    status, body = srv.request("carol", "PUT", art, b"EVIL")  # carol: an approver, not the author
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED"), body
    assert srv.request("rita", "GET", art) == (200, b"GOOD")
    assert srv.request("adam", "PUT", art, b"ADMIN")[0] == 200  # a project admin may
    assert srv.request("rita", "GET", art) == (200, b"ADMIN")
    mlflow.MlflowClient().delete_run(rid)
    status, body = srv.request("alice", "PUT", art, b"LATE")  # a deleted run: as MLflow, 400
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), body
    mlflow.MlflowClient().restore_run(rid)

    def call(user: str, method: str, path: str, body: Any = None) -> int:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return srv.request(user, method, f"{api}{path}", data)[0]

    made = srv.request("alice", "POST", f"{api}/mlflow/logged-models",
                   json.dumps({"experiment_id": exp, "source_run_id": rid}).encode())  # fmt: skip
    assert made[0] == 200, made
    mid = made[1]["model"]["info"]["model_id"]
    files = f"/mlflow-artifacts/artifacts/{exp}/models/{mid}/artifacts/MLmodel"
    tags = {"tags": [{"key": "k", "value": "v"}]}
    refused = [
        ("PATCH", f"/mlflow/logged-models/{mid}/tags", tags),
        ("POST", f"/mlflow/logged-models/{mid}/params", {"params": [{"key": "p", "value": "1"}]}),
        ("PATCH", f"/mlflow/logged-models/{mid}", {"status": "LOGGED_MODEL_READY"}),
        ("PUT", files, b"EVIL"),
        ("DELETE", f"/mlflow/logged-models/{mid}/tags/k", None),
        ("DELETE", f"/mlflow/logged-models/{mid}", None),
    ]
    assert call("alice", "PUT", files, b"GOOD") == 200
    assert call("alice", "PATCH", f"/mlflow/logged-models/{mid}/tags", tags) == 200
    for method, path, body in refused:
        assert call("carol", method, path, body) == 403, (method, path)
    assert srv.request("rita", "GET", f"{api}{files}") == (200, b"GOOD")
    assert call("adam", "PATCH", f"/mlflow/logged-models/{mid}/tags", tags) == 200
    # linking a model to a run is a write to that run: not to alice's by carol, nor to
    # a run that does not exist
    models = "/mlflow/logged-models"
    assert call("carol", "POST", models, {"experiment_id": exp, "source_run_id": rid}) == 403
    assert call("carol", "POST", models, {"experiment_id": exp, "source_run_id": "0" * 16}) == 404
    linked = mlflow.MlflowClient().search_logged_models(
        [exp], filter_string=f"source_run_id='{rid}'"
    )
    assert [m.model_id for m in linked] == [mid]  # nothing of carol's reached alice's run
    # the creator of a model may change it (carol's, linked to no run; alice may not)
    made = srv.request(
        "carol", "POST", f"{api}{models}", json.dumps({"experiment_id": exp}).encode()
    )
    assert made[0] == 200, made
    own = made[1]["model"]["info"]["model_id"]
    assert call("carol", "PATCH", f"{models}/{own}/tags", tags) == 200
    assert call("alice", "PATCH", f"{models}/{own}/tags", tags) == 403
    # and so may the author of its source run (a model an admin linked to alice's run)
    made = srv.request("adam", "POST", f"{api}{models}",
                   json.dumps({"experiment_id": exp, "source_run_id": rid}).encode())  # fmt: skip
    assert made[0] == 200, made
    other = made[1]["model"]["info"]["model_id"]
    assert call("alice", "DELETE", f"{models}/{other}") == 200


def _fit(c: float) -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.5, 0.2]] * 4)
    y = np.array([0, 1, 1, 0, 1] * 4)
    return LogisticRegression(C=c).fit(x, y), x


def _log_model(c: float) -> tuple[str, str, Any, Any]:
    """A run that logs a fitted LogisticRegression: (run id, model id, model, X)."""
    import mlflow.sklearn

    model, x = _fit(c)
    with mlflow.start_run() as run:
        mlflow.log_param("C", str(c))
        # skops (MLflow's default format) is not installed here: cloudpickle, as before 3.x
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # no inference: it runs a subprocess
        )
    return run.info.run_id, str(info.model_id), model, x


def test_sklearn_log_model_loads_back(srv: Mlflow) -> None:
    import mlflow.sklearn

    rid, model_id, model, x = _log_model(1.0)
    client = mlflow.MlflowClient()
    logged = client.get_logged_model(model_id)
    assert (logged.source_run_id, logged.name) == (rid, "model")
    assert logged.status.to_proto() == mlflow.entities.LoggedModelStatus.READY.to_proto()
    assert logged.params.get("C") == "1.0"  # the run's params, copied by the client
    files = {f.path for f in client.list_logged_model_artifacts(model_id)}
    assert {"MLmodel", "model.pkl"} <= files
    for uri in (f"models:/{model_id}", f"runs:/{rid}/model"):
        back = mlflow.sklearn.load_model(uri)
        assert (back.predict(x) == model.predict(x)).all(), uri
        assert (back.predict_proba(x) == model.predict_proba(x)).all(), uri
    found = client.search_logged_models(
        experiment_ids=["0"], filter_string=f"source_run_id = '{rid}'"
    )
    assert [m.model_id for m in found] == [model_id]
    client.set_logged_model_tags(model_id, {"team": "ml"})
    assert client.get_logged_model(model_id).tags["team"] == "ml"
    client.delete_logged_model_tag(model_id, "team")
    assert "team" not in client.get_logged_model(model_id).tags

    # registered as it is logged; a deleted logged model is gone
    import mlflow.sklearn

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="again",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
            registered_model_name="logged-and-registered",
        )
    latest = client.get_registered_model("logged-and-registered").latest_versions
    assert [(v.version, v.source) for v in latest] == [("1", info.artifact_path)]
    client.delete_logged_model(model_id)
    with pytest.raises(mlflow.exceptions.MlflowException) as e:
        client.get_logged_model(model_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_artifact_over_one_mib(srv: Mlflow, tmp_path: Path) -> None:
    # streamed into the object store: not held to the 1 MiB of JSON bodies
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (9 << 12))  # 9 MiB
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big))
    got = mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/big.bin", dst_path=str(tmp_path / "d")
    )
    assert Path(got).read_bytes() == big.read_bytes()


def test_registry_versions_and_aliases_are_runbase_stages(
    srv: Mlflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    rid1, _, model1, x = _log_model(0.5)
    rid2, model_id2, model2, _ = _log_model(0.25)
    v1 = mlflow.register_model(f"runs:/{rid1}/model", "churn-clf")
    v2 = mlflow.register_model(f"models:/{model_id2}", "churn-clf")
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.run_id == rid1
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn-clf", "champion", "1")
    assert client.get_model_version_by_alias("churn-clf", "champion").version == "1"
    back = mlflow.sklearn.load_model("models:/churn-clf@champion")
    assert (back.predict_proba(x) == model1.predict_proba(x)).all()
    back = mlflow.sklearn.load_model("models:/churn-clf/2")
    assert (back.predict_proba(x) == model2.predict_proba(x)).all()

    # the runbase registry holds the same versions and stages (`runbase model show`)
    status, ver = srv.request(
        "alice", "GET", f"/p/{PROJECT}/api/models/resolve?ref=churn-clf@champion"
    )
    assert status == 200, ver
    assert (ver["version"], ver["run"], ver["kind"], ver["user"]) == (
        "v0.0.1",
        rid1,
        "dir",
        "alice",
    )
    status, shown = srv.request("alice", "GET", f"/p/{PROJECT}/api/models/churn-clf")
    assert status == 200, shown
    assert json.dumps(shown).count("v0.0.2") >= 1
    rm = client.get_registered_model("churn-clf")
    assert rm.aliases == {"champion": "1"}
    assert [v.version for v in client.search_model_versions("name='churn-clf'")] == ["2", "1"]

    # a protected stage needs an approver, as runbase's own API does
    srv.admin("stages", "protect", "production", "--project", PROJECT)
    with pytest.raises(MlflowException) as e:
        client.set_registered_model_alias("churn-clf", "production", "2")
    assert e.value.error_code == "PERMISSION_DENIED"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.tokens["carol"])
    client.set_registered_model_alias("churn-clf", "production", "2")
    status, ver = srv.request(
        "alice", "GET", f"/p/{PROJECT}/api/models/resolve?ref=churn-clf@production"
    )
    assert (status, ver["version"]) == (200, "v0.0.2")
    client.delete_registered_model_alias("churn-clf", "production")
    status, _ = srv.request(
        "alice", "GET", f"/p/{PROJECT}/api/models/resolve?ref=churn-clf@production"
    )
    assert status == 404

    # an MLflow 2 style model: a saved model directory logged as a run's artifacts
    mlflow.sklearn.save_model(
        model1,
        str(tmp_path / "saved"),
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
    )
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "saved"), artifact_path="legacy")
    v3 = mlflow.register_model(f"runs:/{run.info.run_id}/legacy", "churn-clf")
    assert (v3.version, v3.source) == ("3", f"{run.info.artifact_uri}/legacy")
    back = mlflow.sklearn.load_model("models:/churn-clf/3")
    assert (back.predict_proba(x) == model1.predict_proba(x)).all()
    status, ver = srv.request(
        "alice", "GET", f"/p/{PROJECT}/api/models/resolve?ref=churn-clf@v0.0.3"
    )
    assert (status, ver["run"], ver["path"], ver["kind"]) == (200, run.info.run_id, "legacy", "dir")

    # a two-person stage: the alias is a request an approver approves
    srv.admin("stages", "protect", "release", "--project", PROJECT, "--approvals", "2")
    with pytest.raises(MlflowException) as e:
        client.set_registered_model_alias("churn-clf", "release", "3")
    assert "request" in e.value.message
    status, reqs = srv.request("alice", "GET", f"/p/{PROJECT}/api/models/churn-clf")
    assert "release" in json.dumps(reqs)

    # what runbase's registry cannot hold is refused clearly
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.tokens["alice"])
    with pytest.raises(MlflowException) as e:
        mlflow.register_model(f"models:/{model_id2}", "ChurnModel")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE" and "lower-case" in e.value.message
    with pytest.raises(MlflowException) as e:
        client.delete_model_version("churn-clf", "1")
    assert "not supported" in e.value.message
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.tokens["rita"])
    with pytest.raises(MlflowException) as e:
        client.set_registered_model_alias("churn-clf", "staging", "1")
    assert e.value.error_code == "PERMISSION_DENIED"
