"""A model's release, the way a team ships one (issue 19): the DVC-style pipeline of
``test_rw_dvc_pipeline`` trains a model, the model file is registered (the registry finds
the run that wrote those bytes), promoted, and delivered by a deploy step with ``runbase
model get``; a drift check guards the deployed copy. A params.yaml experiment trains a
second version, which is promoted; the old deployed copy is then out of sync and says
which version it still is. ``trace churn@production`` walks from the served model back
to the raw data, ``diff`` of two versions is the diff of their runs, and a rollback
brings production back with the audit log telling who did what and why."""

from __future__ import annotations

import json
from pathlib import Path

from rwkit import b3, lineage, make_project, rb, run

PREPARE = ["python", "src/prepare.py", "data/data.csv"]
TRAIN = ["python", "src/train.py", "data/prepared", "model.pkl"]


def model(root: Path, *args: str, ok: bool = True) -> tuple[int, dict]:
    proc = rb(root, "model", *args, "--json", ok=ok)
    return proc.returncode, json.loads(proc.stdout)


def test_register_promote_deploy_drift_rollback(tmp_path: Path) -> None:
    root = make_project(tmp_path, "dvc_pipeline", ignore=["/data/", "/model.pkl", "/deploy/"])
    prepare = run(root, *PREPARE)
    train1 = run(root, *TRAIN)
    v1_bytes = b3(root / "model.pkl")

    # the file on disk: the registry finds the run that wrote exactly these bytes
    _, reg = model(root, "register", "churn", "model.pkl", "-m", "baseline forest")
    (ev,) = reg["events"]
    assert (ev["action"], ev["version"], ev["run"], ev["oid"]) == (
        "register", "v0.0.1", train1["id"], v1_bytes,
    )  # fmt: skip
    model(root, "promote", "churn", "v0.0.1", "--to", "production", "-m", "first release")

    # the deploy step fetches what the registry says, and the cron job checks it
    deployed = root / "deploy" / "model.pkl"
    _, got = model(root, "get", "churn@production", "-o", str(deployed))
    assert got["ref"] == "churn@v0.0.1" and b3(deployed) == v1_bytes
    code, status = model(root, "status", "churn@production", str(deployed))
    assert (code, status["state"], status["in_sync"]) == (0, "in_sync", True)

    # an experiment (`dvc exp run -S train.n_est=40`) and its model: registered by run
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(text.replace("n_est: 25", "n_est: 40"))
    train2 = run(root, *TRAIN)
    _, reg2 = model(root, "register", "churn", f"{train2['id']}:model.pkl", "--bump-minor",
                    "-m", "40 trees")  # fmt: skip
    assert reg2["events"][0]["version"] == "v0.1.0"
    model(root, "promote", "churn", "v0.1.0", "--to", "production", "-m", "better recall")

    # the deployed copy is now the previous version: drift, and which version it is
    code, status = model(root, "status", "churn@production", str(deployed), ok=False)
    assert (code, status["state"], status["matches"]) == (1, "other_version", ["churn@v0.0.1"])
    assert status["expected"]["version"] == "v0.1.0"

    # where production came from: its run, that run's input, the run that made it
    assert lineage(root, "churn@production") == [train2["id"], prepare["id"]]
    trace = json.loads(rb(root, "trace", "churn@production", "--json").stdout)
    assert trace["model"]["ref"] == "churn@v0.1.0" and trace["model"]["run"] == train2["id"]
    assert trace["run"]["params"]["n_estimators"] == 40

    # two versions diff as their runs do: the params.yaml change
    diff = json.loads(rb(root, "diff", "churn@v0.0.1", "churn@production", "--json").stdout)
    changed = {c["key"]: (c["old"], c["new"]) for c in diff["params"]["changed"]}
    assert changed["n_estimators"] == (25, 40)

    # production breaks: roll back, the deployed copy is in sync again
    model(root, "rollback", "churn", "production", "-m", "latency regression")
    code, status = model(root, "status", "churn@production", str(deployed))
    assert (code, status["state"]) == (0, "in_sync")
    _, log = model(root, "log", "churn")
    assert [(e["action"], e["from_version"], e["to_version"], e["message"]) for e in log["events"]] == [
        ("register", None, None, "baseline forest"),
        ("promote", None, "v0.0.1", "first release"),
        ("register", None, None, "40 trees"),
        ("promote", "v0.0.1", "v0.1.0", "better recall"),
        ("rollback", "v0.1.0", "v0.0.1", "latency regression"),
    ]  # fmt: skip
    code, verify = model(root, "verify")
    assert code == 0 and verify["ok"] and verify["events"] == 5
    assert rb(root, "fsck").returncode == 0
