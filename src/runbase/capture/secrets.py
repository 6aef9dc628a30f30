"""Secret redaction. A secret must never reach the store in any form.

Applied to environment variables (by name), command lines (``--api-key X``,
``token=X``), parameters (by name), URLs with credentials (``scheme://user:pw@host``)
and, by value, to logs and parameter strings: every value that was redacted by name
is also scrubbed wherever else it appears.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "***"

# Word-ish parts of a name that mark it as secret: API_KEY, HF_TOKEN, db-password, ...
_SECRET_NAME = re.compile(
    r"(?:^|[^a-z0-9])("
    r"token|secret|passwd|password|passphrase|pwd|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|secret[_-]?key|key|credential|credentials|auth|authorization|"
    r"cookie|session[_-]?id|signature|dsn|sas"
    r")(?:$|[^a-z0-9])",
    re.IGNORECASE,
)
# Names that contain a secret word but are known to be harmless.
_SAFE_NAMES = {
    "KEYBOARD",
    "KEYMAP",
    "XDG_SESSION_ID",
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "PWD",
    "OLDPWD",
    "SSH_AGENT_PID",
    "TOKENIZERS_PARALLELISM",
    "PYTHONHASHSEED",
    "AUTHOR",
    "KEY_FN",
    "SORT_KEY",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
}
_URL_CRED = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)
_URL_TOKEN_USER = re.compile(r"(?P<scheme>https?://)(?P<tok>[^:/@\s]{20,})@")
_MIN_SCRUB_LEN = 6


def is_secret_name(name: str) -> bool:
    """``True`` for names like ``HF_TOKEN``, ``--api-key``, ``db_password``."""
    n = name.lstrip("-")
    if n.upper() in _SAFE_NAMES:
        return False
    # split camelCase so apiKey -> api_Key
    n = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", n)
    return bool(_SECRET_NAME.search(n))


def redact_url_credentials(text: str) -> str:
    """``https://u:pw@host`` -> ``https://u:***@host``; token-as-user URLs too."""
    text = _URL_CRED.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _URL_TOKEN_USER.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def redact_env(env: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """Return the redacted environment and the set of secret values that were removed."""
    out: dict[str, str] = {}
    secrets: set[str] = set()
    for k, v in env.items():
        if is_secret_name(k):
            out[k] = REDACTED
            if len(v) >= _MIN_SCRUB_LEN:
                secrets.add(v)
        else:
            red = redact_url_credentials(v)
            if red != v:
                secrets.update(_url_secrets(v))
            out[k] = red
    return out, secrets


def redact_argv(argv: Iterable[str]) -> tuple[list[str], set[str]]:
    """Redact ``--api-key X``, ``--token=X``, ``password=X`` and URL credentials."""
    out: list[str] = []
    secrets: set[str] = set()
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            if len(arg) >= _MIN_SCRUB_LEN:
                secrets.add(arg)
            hide_next = False
            continue
        name, eq, value = arg.partition("=")
        if eq and is_secret_name(name) and not name.startswith("-" * 3):
            out.append(f"{name}={REDACTED}")
            if len(value) >= _MIN_SCRUB_LEN:
                secrets.add(value)
            continue
        if arg.startswith("-") and not eq and is_secret_name(arg) and len(arg) > 1:
            hide_next = True
            out.append(arg)
            continue
        red = redact_url_credentials(arg)
        if red != arg:
            secrets.update(_url_secrets(arg))
        out.append(red)
    return out, secrets


def _url_secrets(text: str) -> set[str]:
    found = {m["pw"] for m in _URL_CRED.finditer(text)}
    found |= {m["tok"] for m in _URL_TOKEN_USER.finditer(text)}
    return {s for s in found if len(s) >= _MIN_SCRUB_LEN}


def known_secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Secret values visible to this process: redacted env values and argv values."""
    import sys

    _, a = redact_env(os.environ if environ is None else environ)
    _, b = redact_argv(sys.argv)
    return a | b


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a known secret value in ``text``."""
    for s in sorted(secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return redact_url_credentials(text)


class StreamScrubber:
    """Scrub secrets from a byte stream cut into arbitrary chunks.

    Keeps back ``max_len - 1`` bytes so a secret split across two chunks is still found.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self.keep = max((len(s) for s in self.secrets), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.secrets:
            return chunk
        data = self._replace(self.pending + chunk)
        if self.keep <= 0:
            self.pending = b""
            return data
        self.pending = data[-self.keep :]
        return data[: -self.keep] if len(data) > self.keep else b""

    def flush(self) -> bytes:
        out, self.pending = self._replace(self.pending), b""
        return out

    def _replace(self, data: bytes) -> bytes:
        for s in self.secrets:
            if s in data:
                data = data.replace(s, REDACTED.encode())
        return data
