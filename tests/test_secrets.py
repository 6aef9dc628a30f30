"""Secrets never reach the store, in any form."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from conftest import runbase_cmd, write
from runbase.capture.secrets import (
    StreamScrubber,
    is_secret_name,
    redact_argv,
    redact_env,
    redact_url_credentials,
)


def test_secret_names() -> None:
    for name in (
        "HF_TOKEN",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "OPENAI_API_KEY",
        "DB_PASSWORD",
        "--api-key",
        "apiKey",
        "WANDB_API_KEY",
        "SENTRY_DSN",
        "my_secret",
        "passwd",
    ):
        assert is_secret_name(name), name
    for name in (
        "PATH",
        "HOME",
        "lr",
        "monkey",
        "author",
        "KEYBOARD",
        "tokenizer",
        "PWD",
        "SSH_AUTH_SOCK",
    ):
        assert not is_secret_name(name), name


def test_redact_argv_and_urls() -> None:
    argv, secrets = redact_argv(
        [
            "train.py",
            "--api-key",
            "K-123456",
            "--token=T-123456",
            "password=P-123456",
            "--lr",
            "0.1",
            "--db",
            "postgresql://bob:pw-123456@db/x",
        ]
    )
    assert argv == [
        "train.py",
        "--api-key",
        "***",
        "--token=***",
        "password=***",
        "--lr",
        "0.1",
        "--db",
        "postgresql://bob:***@db/x",
    ]
    assert secrets == {"K-123456", "T-123456", "P-123456", "pw-123456"}
    assert (
        redact_url_credentials("https://ghp_abcdefghijklmnopqrstuv@github.com/x")
        == "https://***@github.com/x"
    )
    env, found = redact_env(
        {"HF_TOKEN": "hf_abcdef", "PATH": "/bin", "PROXY": "http://u:pw123456@proxy"}
    )
    assert env == {"HF_TOKEN": "***", "PATH": "/bin", "PROXY": "http://u:***@proxy"}
    assert found == {"hf_abcdef", "pw123456"}


def test_stream_scrubber_handles_split_secrets() -> None:
    s = StreamScrubber(["supersecret"])
    out = b"".join(s.feed(c) for c in (b"a super", b"sec", b"ret b supersecret")) + s.flush()
    assert out == b"a *** b ***"


def test_no_secret_reaches_the_store(project: Path) -> None:
    env_secret = "envsecret-XYZ-0123456789"
    argv_secret = "argvsecret-ABC-9876543210"
    url_secret = "urlpw-QQQ-55555"
    write(
        project,
        "train.py",
        """
        import argparse, os, runbase
        p = argparse.ArgumentParser()
        p.add_argument("--api-key")
        p.add_argument("--db")
        p.add_argument("--lr", type=float, default=0.1)
        a = p.parse_args()
        print("token is", os.environ["MY_SERVICE_TOKEN"], "key is", a.api_key)
        runbase.param("copied", "prefix-" + os.environ["MY_SERVICE_TOKEN"])
        runbase.param("password", os.environ["PLAIN_VALUE"])
        runbase.log(loss=0.5)
    """,
    )
    proc = runbase_cmd(
        "run",
        "--",
        sys.executable,
        "train.py",
        "--api-key",
        argv_secret,
        "--db",
        f"postgresql://u:{url_secret}@host/db",
        cwd=project,
        env={"MY_SERVICE_TOKEN": env_secret, "PLAIN_VALUE": "inline-secret-77777"},
    )
    assert proc.returncode == 0, proc.stderr
    assert env_secret in proc.stdout  # the user still sees their own output
    show = runbase_cmd("show", "--json", cwd=project, check=True).stdout
    assert "***" in show
    import json

    rec = json.loads(show)
    assert rec["params"]["password"] == "***" and rec["params"]["api_key"] == "***"
    assert rec["params"]["copied"] == "prefix-***"
    assert rec["env"]["vars"]["MY_SERVICE_TOKEN"] == "***"
    assert "inline-secret-77777" not in json.dumps(rec["params"])
    for secret in (env_secret, argv_secret, url_secret):
        assert secret not in show
        for f in (project / ".runbase").rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f"{secret} found in {f}"


# -- the decision is on the name and the value (issue 15.1) ---------------------------

HF = "hf_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3h"
GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
OPENAI = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQw7e"
AWS = "AKIAIOSFODNN7EXAMPLE"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
RANDOM = "Zq8vN2xLk4Rt7Wm1Yp3Hs6Jd9Fg0Bc5A"  # no known format: high entropy


def test_ml_parameters_are_not_credentials() -> None:
    from runbase.capture.secrets import redact_value

    ordinary = {
        "pad_token_id": 0,
        "eos_token_id": 2,
        "bos_token_id": 1,
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "[UNK]",
        "additional_special_tokens": ["<a>", "<b>"],
        "token_pattern": r"(?u)\b\w\w+\b",
        "max_tokens": 512,
        "max_new_tokens": 64,
        "sort_key": "length",
        "key": "label",
        "primary_key": "id",
        "tokenizer": "bert-base-uncased",
        "model_name_or_path": "meta-llama/Llama-2-7b-hf",
        "output_dir": "runs/exp_2023_10_01_lr0.001",
        "commit": "3f2a9c1b7d8e4f60a1b2c3d4e5f60718293a4b5c",  # hex: a digest, not a key
        "run_uuid": "2f1e0c3b-4a5d-4e6f-8a9b-0c1d2e3f4a5b",
        "password_min_length": 8,
        "secret_santa": True,
        "token_file": "/run/secrets/hf_token",  # a path names where a credential is
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
        "hf_token": "${oc.env:HF_TOKEN}",  # an interpolation, not the value
        "hub_token": "<HUB_TOKEN>",  # transformers' TrainingArguments.to_dict() placeholder
        "lr": 0.1,
    }
    for name, value in ordinary.items():
        found: set[str] = set()
        assert redact_value(name, value, found) == value, name
        assert found == set(), name


def test_credentials_are_redacted_by_shape_whatever_their_name() -> None:
    from runbase.capture.secrets import looks_like_secret, redact_value

    for value in (HF, GH, OPENAI, AWS, JWT, SLACK, RANDOM):
        assert looks_like_secret(value), value
        found: set[str] = set()
        assert redact_value("openai", value, found) == "***", value
        assert value in found
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    assert redact_value("note", key) == "***"
    # inside a longer string only the credential goes
    assert redact_value("header", f"Bearer {GH}") == "Bearer ***"
    assert redact_value("db", "postgresql://bob:pw-123456@db/x") == "postgresql://bob:***@db/x"
    # walked through containers; a mapping's keys are names
    assert redact_value("cfg", {"model": "bert", "auth": {"hf_token": "abcdefgh"}}) == {
        "model": "bert",
        "auth": {"hf_token": "***"},
    }
    assert redact_value("keys", [HF, "plain"]) == ["***", "plain"]


def test_credentials_are_redacted_by_a_clearly_secret_name() -> None:
    from runbase.capture.secrets import redact_value

    for name, value in (
        ("db.password", "hunter2!"),
        ("DB_PASSWORD", "correcthorse"),
        ("api_key", "abc123"),
        ("wandb_api_key", "0123456789abcdef0123456789abcdef01234567"),
        ("client_secret", "s3cr3t"),
        ("HF_TOKEN_VALUE", "short-tok"),
        ("pin_password", 123456),  # a numeric password in YAML
    ):
        found: set[str] = set()
        assert redact_value(name, value, found) == "***", name
        assert found == {str(value)}, name


def test_env_and_argv_redact_by_shape_too() -> None:
    env, found = redact_env({"LABEL": "cnn", "OPENAI": OPENAI, "SOME_URL": f"https://{GH}@x/y"})
    assert env == {"LABEL": "cnn", "OPENAI": "***", "SOME_URL": "https://***@x/y"}
    assert {OPENAI, GH} <= found
    argv, found = redact_argv(["t.py", "--openai", OPENAI, "--key", "label", "--sort-key", "len"])
    assert argv == ["t.py", "--openai", "***", "--key", "label", "--sort-key", "len"]
    assert found == {OPENAI}


def test_stream_scrubber_finds_formats_and_key_blocks_on_lines() -> None:
    s = StreamScrubber([])
    chunks = [
        b"step 1 loss 0.5\nusing tok",  # a format split across chunks
        f"en {HF} now\n".encode(),
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        b"-----END OPENSSH PRIVATE KEY-----\nmodel_epoch_10_step_5000 saved\nno newline",
    ]
    out = b"".join(s.feed(c) for c in chunks) + s.flush()
    assert out == (
        b"step 1 loss 0.5\nusing token *** now\n***\n***\n***\n"
        b"model_epoch_10_step_5000 saved\nno newline"
    )
    later = StreamScrubber(["known-secret-1"])
    first = later.feed(b"known-secret-1 and ")
    later.add(["value-added-later"])  # redacted after the run started
    rest = later.feed(b"value-added-later\n") + later.flush()
    assert first + rest == b"*** and ***\n"


def test_values_redacted_in_the_command_reach_the_supervisor(tmp_path: Path) -> None:
    import os

    from runbase.capture.secrets import SecretsReader, report_secrets, secrets_channel

    r, w, spec = secrets_channel()
    try:
        reader = SecretsReader(r)
        report_secrets(["multi\nline-secret", "s"], {"RUNBASE_SECRETS_FD": spec})
        assert reader.drain() == ["multi\nline-secret"]  # too short ("s"): not sent
        # a process that did not inherit the pipe: the fd number is something else now
        other = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
        fd, dev, ino = spec.split(":")
        report_secrets(["zzzzzzzz"], {"RUNBASE_SECRETS_FD": f"{other}:{dev}:{ino}"})
        assert (tmp_path / "f").read_bytes() == b""
        os.close(other)
        os.close(w)
        assert reader.drain() == [] and reader.fd is None  # closed at its end
    finally:
        with contextlib.suppress(OSError):
            os.close(w)


def test_secret_file_policy_is_shared_and_extendable(tmp_path: Path) -> None:
    from runbase.capture.secretfiles import is_secret_file

    for path in (".env", "conf/.env.prod", "client.pem", "id_rsa", "keys/a.key", ".netrc",
                 ".pgpass", "creds/credentials.json", "secrets.yaml"):  # fmt: skip
        assert is_secret_file(path), path
    for path in ("data/train.csv", "env.py", "keyboard.py", "secrets_test/x.py", "key.txt"):
        assert not is_secret_file(path), path
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.runbase]\nsecret-files = ["*.vault", "conf/p*"]\n')
    assert is_secret_file("a/b.vault", str(root)) and is_secret_file("conf/prod.yaml", str(root))
    assert is_secret_file(str(root / "x.vault"), str(root))
    assert not is_secret_file("other/prod.yaml", str(root)) and not is_secret_file("b.vault")
