"""Secrets never reach the store, in any form."""

from __future__ import annotations

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
