"""Issue 15.1, 14.7, 14.4: redaction decides on the name and the value; every value
redacted anywhere is scrubbed from the logs; secret files are withheld.

Real runs of the real CLI (`runbase run` of a script that reads a Hugging Face-style
YAML config, prints what it read and opens credential files), the store read back byte
by byte, and a real `runbase server` the run is pushed to, whose database and object
directory are searched for every secret.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import _free_port, commit, require, runbase_cmd, start_server, write
from runbase.store.hashing import hash_bytes


def _token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


# fresh each run: a secret found in the store can only have come from this test
HF_TOKEN = "hf_" + _token(34)
DB_PASSWORD = "Tr0ub4dor-" + _token(8)
WANDB_KEY = _token(40, "0123456789abcdef")
OPENAI = "sk-proj-" + _token(48)  # under a harmless name: redacted by its shape
INLINE = "inline-" + _token(20)  # runbase.param("api_key", ...) inside the command
SECRETS = (HF_TOKEN, DB_PASSWORD, WANDB_KEY, OPENAI, INLINE)

CONFIG = f"""\
model:
  name: bert-base-uncased
  pad_token_id: 0
  eos_token_id: 2
  bos_token_id: 1
  vocab_size: 30522
tokenizer:
  pad_token: "<pad>"
  eos_token: "</s>"
  max_tokens: 512
  token_pattern: '(?u)\\b\\w\\w+\\b'
  padding_side: right
data:
  sort_key: length
  key: label
  path: data/train.csv
hf_token: {HF_TOKEN}
db:
  password: "{DB_PASSWORD}"
wandb_api_key: {WANDB_KEY}
openai: {OPENAI}
"""

SECRET_FILES = {
    ".env": "API_TOKEN=",
    "client.pem": "-----BEGIN PRIVATE KEY-----\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    "keys/service.key": "",
    "creds/credentials.json": '{"k": "',
    ".netrc": "machine example.com password ",
    ".pgpass": "db:5432:*:bob:",
}

# the inline secret comes on stdin: not in the code, the command line or the environment
TRAIN = """\
import argparse, json, sys, runbase, yaml
p = argparse.ArgumentParser()
p.add_argument("--config")
a = p.parse_args()
cfg = yaml.safe_load(open(a.config))
print("config:", json.dumps(cfg), flush=True)
key = sys.stdin.readline().strip()
runbase.param("api_key", key)
print("inline key:", key, flush=True)
for path in {files}:
    with open(path) as f:
        f.read()
with open("data/train.csv") as f:
    rows = f.read().splitlines()
runbase.log(loss=0.5)
print("trained on", len(rows), "rows")
"""


def _make_project(project: Path) -> dict[str, bytes]:
    """The project: train.py, its config, a data file and the secret files (each with
    unique content, returned)."""
    write(project, "cfg.yaml", CONFIG)
    write(project, "data/train.csv", "text,label\nhi,1\n")
    contents = {}
    for rel, head in SECRET_FILES.items():
        body = f"{head}{_token(32)}\n".encode()
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(body)
        contents[rel] = body
    write(project, "train.py", TRAIN.format(files=sorted(SECRET_FILES)))
    commit(project, "train")  # .gitignore-less: the secret files are untracked, not committed
    return contents


def _run(project: Path) -> dict[str, Any]:
    require("yaml")
    proc = runbase_cmd(
        "run", "--", sys.executable, "train.py", "--config", "cfg.yaml",
        cwd=project, check=True, input=INLINE + "\n",
    )  # fmt: skip
    assert "bert-base-uncased" in proc.stdout and HF_TOKEN in proc.stdout  # the user's own view
    rec: dict[str, Any] = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    return rec


def _files_holding(base: Path, needles: dict[str, bytes]) -> list[str]:
    found = []
    for f in base.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            found += [f"{name} in {f}" for name, n in needles.items() if n in data]
    return found


@pytest.fixture
def made(project: Path) -> tuple[Path, dict[str, Any], dict[str, bytes]]:
    contents = _make_project(project)
    return project, _run(project), contents


def test_ml_params_are_recorded_and_credentials_redacted(
    made: tuple[Path, dict[str, Any], dict[str, bytes]],
) -> None:
    _, rec, _ = made
    params = rec["params"]
    # ordinary ML parameters, whatever their names: as they are
    assert params["model.pad_token_id"] == 0
    assert params["model.eos_token_id"] == 2 and params["model.bos_token_id"] == 1
    assert params["tokenizer.pad_token"] == "<pad>" and params["tokenizer.eos_token"] == "</s>"
    assert params["tokenizer.max_tokens"] == 512
    assert params["tokenizer.token_pattern"] == r"(?u)\b\w\w+\b"
    assert params["data.sort_key"] == "length" and params["data.key"] == "label"
    assert params["model.name"] == "bert-base-uncased"
    # credentials: by name, and by shape under a harmless name
    assert params["hf_token"] == "***"
    assert params["db.password"] == "***"
    assert params["wandb_api_key"] == "***"
    assert params["openai"] == "***"
    assert params["api_key"] == "***"  # runbase.param inside the command
    assert params["config"] == "cfg.yaml"


def test_no_redacted_value_reaches_the_logs_or_the_store(
    made: tuple[Path, dict[str, Any], dict[str, bytes]],
) -> None:
    project, rec, _ = made
    logs = runbase_cmd("logs", cwd=project, check=True).stdout
    assert "bert-base-uncased" in logs and "trained on 2 rows" in logs  # the logs were kept
    assert '"pad_token_id": 0' in logs  # and not over-scrubbed
    for s in SECRETS:
        assert s not in logs, f"{s[:6]}... in the logs"
    assert "inline key: ***" in logs  # redacted in the command: scrubbed by the supervisor
    # every byte of the store: log objects, database, everything
    assert _files_holding(project / ".runbase", {s[:6]: s.encode() for s in SECRETS}) == []


def test_secret_files_are_withheld(made: tuple[Path, dict[str, Any], dict[str, bytes]]) -> None:
    project, rec, contents = made
    inputs = {i["path"]: i for i in rec["inputs"]}
    for rel, body in contents.items():
        item = inputs.get(rel)
        assert item is not None, f"{rel} not recorded: {sorted(inputs)}"
        assert item["hash"] == hash_bytes(body), rel  # recorded by name and hash
        assert item["stored"] is False and item.get("withheld") is True, item
    assert inputs["data/train.csv"]["stored"] is True  # ordinary data: stored as before
    # the config file runbase redacted secrets from is withheld too (and not in the code)
    cfg = inputs["cfg.yaml"]
    assert cfg["withheld"] is True and cfg["stored"] is False and cfg["source"] == "config"
    assert cfg["hash"] == hash_bytes((project / "cfg.yaml").read_bytes())
    skipped = {s["path"]: s["reason"] for s in rec["code"]["skipped"]}
    assert "cfg.yaml" in skipped and ".env" in skipped, skipped
    assert "withheld" not in inputs["data/train.csv"]
    # the bytes are nowhere in the store (not as data, not in the code snapshot)
    assert _files_holding(project / ".runbase", contents) == []
    text = runbase_cmd("show", cwd=project, check=True).stdout
    lines = [line for line in text.splitlines() if ".env" in line or "client.pem" in line]
    assert lines and all("withheld" in line for line in lines), text


def test_pushed_run_carries_no_secret_to_the_server(
    made: tuple[Path, dict[str, Any], dict[str, bytes]], tmp_path: Path
) -> None:
    require("fastapi")
    require("uvicorn")
    project, rec, contents = made
    base = tmp_path / "srv"
    base.mkdir()
    db, objects = str(base / "server.db"), str(base / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, check=True)
    token = runbase_cmd(
        "server", "users", "add", "alice", "--role", "admin", "--db", db, check=True
    ).stdout.strip()
    server = start_server(db, objects, port=_free_port(), log_dir=base)
    try:
        runbase_cmd("login", server.url, "--token", token, cwd=project, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=project, check=True)
        runbase_cmd("push", "--to", "team", rec["id"], cwd=project, check=True)
        pulled = tmp_path / "other"
        pulled.mkdir()
        runbase_cmd("pull", "--from", "team", "--data", rec["id"], cwd=pulled, check=True)
        again = json.loads(runbase_cmd("show", "--json", rec["id"], cwd=pulled, check=True).stdout)
    finally:
        server.stop()
    needles = {s[:6]: s.encode() for s in SECRETS} | contents
    assert _files_holding(base, needles) == []
    # the server has the data input's bytes, and knows the secret files by hash only
    assert (base / "objects").exists() and any((base / "objects").rglob("*"))
    withheld = {i["path"]: i for i in again["inputs"] if i.get("withheld")}
    assert set(withheld) == set(contents) | {"cfg.yaml"}
    assert {i["path"]: i["stored"] for i in again["inputs"]}["data/train.csv"] is True
    assert all(withheld[p]["hash"] == hash_bytes(b) for p, b in contents.items())


def test_runbase_init_runs_scrub_config_and_param_secrets_from_their_console(
    project: Path,
) -> None:
    """Without a supervisor: the process reads its own config files at init and
    scrubs what it redacts (there, and later in runbase.param) from its console log."""
    require("yaml")
    write(project, "cfg.yaml", CONFIG)
    write(
        project,
        "init_run.py",
        """\
        import json, sys, runbase, yaml
        runbase.init()
        cfg = yaml.safe_load(open(sys.argv[2]))
        print("config:", json.dumps(cfg), flush=True)
        key = sys.stdin.readline().strip()
        runbase.param("api_key", key)
        print("inline key:", key, flush=True)
        runbase.finish()
        """,
    )
    commit(project, "init")
    proc = subprocess.run(
        [sys.executable, "init_run.py", "--config", "cfg.yaml"],
        cwd=project, input=INLINE + "\n", capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert HF_TOKEN in proc.stdout  # the user's own terminal is untouched
    rec = json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)
    assert rec["params"]["hf_token"] == "***" and rec["params"]["model.pad_token_id"] == 0
    logs = runbase_cmd("logs", cwd=project, check=True).stdout
    assert "bert-base-uncased" in logs and "inline key: ***" in logs
    assert _files_holding(project / ".runbase", {s[:6]: s.encode() for s in SECRETS}) == []
