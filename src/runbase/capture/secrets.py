"""Secret redaction: one module decides, for env, argv, params, config files and logs.

A value is a secret when its **shape** says so, whatever its name (an AWS, GitHub,
Hugging Face, OpenAI, Slack or JWT token, a private-key block, credentials in a URL, a
long high-entropy string: PyPI ``detect-secrets`` plugins plus a few formats it lacks),
or when a **clearly secret name** (``password``, ``api_key``, ``HF_TOKEN``, ``secret``)
holds a non-trivial string or an integer. A number, a bool, None, a path, a short word
or a regex under an ordinary name is a parameter, never a credential: ``pad_token_id``,
``token_pattern``, ``max_tokens``, ``sort_key``, ``key: label`` are recorded as they are.

Every value redacted anywhere is also scrubbed wherever else it appears (parameter
strings, tracebacks, the captured stdout/stderr), and the log scrubber also looks for
known token formats on each complete line. detect-secrets (with ``requests``) costs
~0.15 s to import, so it is imported only when a string passes a cheap gate (a long
token-like run of characters, ``PRIVATE KEY``, ``://``): most values never need it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
_MIN_SCRUB_LEN = 6

# -- names ---------------------------------------------------------------------------

# Words that make a name secret when they end it: db_password, HF_TOKEN, SENTRY_DSN.
_SECRET_WORDS = frozenset(
    (
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "creds",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "token",
        "auth",
        "authorization",
        "cookie",
        "dsn",
        "sas",
    )
)
# ``key`` is secret only after one of these (api_key, AWS_SECRET_ACCESS_KEY), never
# alone or after anything else (sort_key, key: "label", primary_key).
_KEY_QUALIFIERS = frozenset(
    (
        "api",
        "access",
        "secret",
        "private",
        "ssh",
        "encryption",
        "signing",
        "client",
        "account",
        "master",
        "storage",
        "subscription",
        "app",
        "consumer",
        "license",
        "service",
        "auth",
    )
)
# ``token`` after one of these is a vocabulary item, not a credential (tokenizer
# configs: pad_token "<pad>", eos_token "</s>").
_TOKEN_VOCABULARY = frozenset(
    (
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "start",
        "end",
        "begin",
        "image",
        "audio",
        "video",
        "vision",
        "decoder",
        "max",
        "min",
        "num",
        "n",
        "new",
        "first",
        "last",
    )
)
# Suffixes that keep a secret word secret: HF_TOKEN_VALUE, CLIENT_SECRET_B64.
_VALUE_SUFFIXES = frozenset(("value", "str", "string", "b64", "base64"))
# Names that contain a secret word but are known to be harmless.
_SAFE_NAMES = frozenset(
    (
        "PWD",
        "OLDPWD",
        "SSH_AUTH_SOCK",
        "XDG_SESSION_ID",
        "GPG_AGENT_INFO",
        "TOKENIZERS_PARALLELISM",
    )
)


def _words(name: str) -> list[str]:
    n = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.lstrip("-"))  # apiKey -> api_Key
    return [w.rstrip("0123456789") for w in re.split(r"[^A-Za-z0-9]+", n.lower()) if w]


def is_secret_name(name: str) -> bool:
    """``True`` for names like ``HF_TOKEN``, ``--api-key``, ``db.password``; ``False``
    for ``pad_token_id``, ``eos_token``, ``token_pattern``, ``max_tokens``, ``sort_key``.

    The secret word must end the name (or be followed only by ``_value``-like suffixes):
    ``password_min_length`` is a number about a password, not one.
    """
    if name.lstrip("-").upper() in _SAFE_NAMES:
        return False
    words = _words(name)
    while len(words) > 1 and words[-1] in _VALUE_SUFFIXES:
        words.pop()
    if not words:
        return False
    last, prev = words[-1], words[-2] if len(words) > 1 else ""
    if last == "key":
        return prev in _KEY_QUALIFIERS
    if last == "id":
        return prev == "session"
    if last == "token":
        return prev not in _TOKEN_VOCABULARY
    return last in _SECRET_WORDS


# -- values: shape -------------------------------------------------------------------

_URL_CRED = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@/\s]{1,1024})@"
)
# Bounded repeats: a 5 MiB parameter of token characters must not cost quadratic
# backtracking (an unbounded scheme or user part retried at every start position).
_URL_TOKEN_USER = re.compile(r"(?P<scheme>https?://)(?P<tok>[^:/@\s]{20,1024})@")
# Formats detect-secrets 1.5 lacks (or matches too narrowly: its OpenAI rule needs the
# legacy ``T3BlbkFJ`` marker).
_EXTRA_FORMATS = (
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"),  # OpenAI/Anthropic
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"\brbt_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}"),  # runbase's own API tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{50,}"),  # GitHub fine-grained tokens
)
# The fast exit of find_secrets: every format has a long run of token characters, a
# private-key header or a URL (_may_hold_token then decides on importing detect-secrets).
_GATE = re.compile(r"[A-Za-z0-9+=_-]{16,}|PRIVATE KEY|://")
# The log scrubber's gate, on bytes: distinctive literals of the most common formats
# (Hugging Face, OpenAI and Anthropic, GitHub, GitLab, AWS key ids, Google, Slack, JWT,
# Stripe, runbase's own, private keys). Each is a C substring search, and there are few
# so logs stay fast (a regex alternation of them runs ~100x slower); a line that holds
# one gets the full check (every format), a line with ``://`` the URL-credentials
# check. Other formats and high-entropy strings are found in values (params, env,
# argv), and every value redacted there is scrubbed from the logs by value.
_LOG_LITERALS = tuple(
    lit.encode()
    for lit in (
        "PRIVATE KEY", "hf_", "sk-proj-", "sk-ant-", "T3BlbkFJ", "sk_live", "AIza", "rbt_",
        "ghp_", "github_pat_", "glpat-", "eyJ", "xox", "AKIA", "ASIA",
    )
)  # fmt: skip


def _log_formats(data: bytes) -> bool:
    return any(lit in data for lit in _LOG_LITERALS)


def _lines_with(data: bytes, literals: Iterable[bytes]) -> list[tuple[int, int]]:
    """The ``(start, end)`` of the lines of ``data`` holding any of ``literals``."""
    spans: dict[int, int] = {}
    for lit in literals:
        i = data.find(lit)
        while i != -1:
            start = max(data.rfind(b"\n", 0, i), data.rfind(b"\r", 0, i)) + 1
            ends = [e for e in (data.find(b"\n", i), data.find(b"\r", i)) if e != -1]
            end = min(ends) + 1 if ends else len(data)
            spans[start] = end
            i = data.find(lit, end)
    return sorted(spans.items())


_GATE_RUN = re.compile(r"[A-Za-z0-9+=_-]{16,}")
_AWS_ID = re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}")
_ENTROPY_RUN = re.compile(r"[A-Za-z0-9+=_-]{20,}")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_.=-]")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_.=-]*")
_UPPER, _LOWER, _DIGIT = re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]")
_HEX = re.compile(r"[0-9a-fA-F]+")
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY( BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END[A-Z ]*PRIVATE KEY( BLOCK)?-----")

_plugins: list[Any] | None = None
_entropy: Any = None


def _detectors() -> list[Any]:
    """detect-secrets' known-format plugins (imported on first need; ~0.15 s)."""
    global _plugins, _entropy
    if _plugins is None:
        try:
            # lazy: detect-secrets is optional and takes ~0.15 s
            from detect_secrets.plugins import (
                aws,
                azure_storage_key,
                discord,
                github_token,
                gitlab_token,
                high_entropy_strings,
                jwt,
                mailchimp,
                npm,
                openai,
                private_key,
                pypi_token,
                sendgrid,
                slack,
                square_oauth,
                stripe,
                telegram_token,
                twilio,
            )
        except ImportError:  # an install without it: the formats runbase knows still hold
            _plugins = []
            return _plugins
        # Not IPPublicDetector (an address is no credential), nor the keyword and
        # Artifactory rules (they flag ordinary words in ML configs), nor BasicAuth
        # (_URL_CRED: the same rule, but it keeps the user name and the host).
        _plugins = [
            aws.AWSKeyDetector(),
            azure_storage_key.AzureStorageKeyDetector(),
            discord.DiscordBotTokenDetector(),
            github_token.GitHubTokenDetector(),
            gitlab_token.GitLabTokenDetector(),
            jwt.JwtTokenDetector(),
            mailchimp.MailchimpDetector(),
            npm.NpmDetector(),
            openai.OpenAIDetector(),
            private_key.PrivateKeyDetector(),
            pypi_token.PypiTokenDetector(),
            sendgrid.SendGridDetector(),
            slack.SlackDetector(),
            square_oauth.SquareOAuthDetector(),
            stripe.StripeDetector(),
            telegram_token.TelegramBotTokenDetector(),
            twilio.TwilioKeyDetector(),
        ]
        _entropy = high_entropy_strings.Base64HighEntropyString()
    return _plugins


def find_secrets(text: str, entropy: bool = True) -> set[str]:
    """The parts of ``text`` that look like credentials: known token formats, URL
    credentials, private-key headers and (with ``entropy``) long high-entropy strings.

    >>> sorted(find_secrets("key=ghp_" + "a1B2c3D4e5" * 4 + "abcdef and lr=0.1"))
    ['ghp_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5abcdef']
    >>> find_secrets("bert-base-uncased /data/imagenet/train EleutherAI/gpt-neox-20b")
    set()
    """
    if not _GATE.search(text):
        return set()
    found: set[str] = set()
    for m in _URL_CRED.finditer(text):
        found.add(m["pw"])
    for m in _URL_TOKEN_USER.finditer(text):
        found.add(m["tok"])
    for rx in _EXTRA_FORMATS:
        found.update(_whole(text, m) for m in rx.finditer(text))
    if _PRIVATE_KEY_BEGIN.search(text):
        found.add(text)  # the whole value: a key block is the secret, not its header
    if not _may_hold_token(text):
        return {s.strip() for s in found if len(s.strip()) >= _MIN_SCRUB_LEN}
    for plugin in _detectors():
        # the whole match: a plugin's own analyze_string yields its regex's groups,
        # which for some formats is only the prefix (``ghp``)
        check = getattr(plugin, "is_formally_valid", None)  # JWT: decodes the parts
        for rx in plugin.denylist:
            for m in rx.finditer(text):
                if check is None or check(m.group(0)):
                    found.add(_whole(text, m))
    if entropy:
        found.update(_high_entropy(text))
    return {s.strip() for s in found if len(s.strip()) >= _MIN_SCRUB_LEN}


def _may_hold_token(text: str) -> bool:
    """Whether detect-secrets could find anything in ``text`` (the gate before its
    import): a private-key header, or a run of 16+ token characters that mixes upper
    case, lower case and digits (machine-made tokens do), holds an AWS key id, or is
    20+ characters of high entropy. Paths, model names and ``x86_64-linux-gnu`` in
    $PATH do not pass, so most runs and most processes never import it."""
    if "PRIVATE KEY" in text:
        return True
    for m in _GATE_RUN.finditer(text):
        run = m.group(0)
        # regex searches, not per-character Python: a parameter may be megabytes long
        if _AWS_ID.search(run) or (
            _UPPER.search(run) and _LOWER.search(run) and _DIGIT.search(run)
        ):
            return True
        if len(run) >= 20 and _bits_per_char(run) > 4.5:  # detect-secrets' base64 limit
            return True
    return False


def _bits_per_char(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _whole(text: str, m: re.Match[str]) -> str:
    """The match grown to the end of its token: a format that fixes a length (GitHub's
    36 characters) must not leave a longer token's tail in clear."""
    end = m.end()
    if end and _TOKEN_CHAR.match(text[end - 1]):
        tail = _TOKEN_TAIL.match(text, end)
        end = tail.end() if tail else end
    return text[m.start() : end]


def _high_entropy(text: str) -> set[str]:
    """Long base64-like runs above detect-secrets' entropy limit (4.5 bits/char).

    Path segments are judged one by one (``/`` ends a run), and hex strings are left
    out: digests, commit ids and run ids are what ML code passes around, not keys.
    """
    if _entropy is None and not _detectors():
        return set()
    out: set[str] = set()
    for m in _ENTROPY_RUN.finditer(text):
        run = m.group(0)
        if _HEX.fullmatch(run) or _sequential(run):
            continue
        if _entropy.calculate_shannon_entropy(run) > _entropy.entropy_limit:
            out.add(run)
    return out


def _sequential(s: str) -> bool:
    try:
        # lazy: detect-secrets is optional and takes ~0.15 s
        from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string
    except ImportError:
        return False
    return bool(is_sequential_string(s) or is_potential_uuid(s))


def looks_like_secret(text: str) -> bool:
    """``True`` when the whole of ``text`` is (or holds) a credential by its shape."""
    return bool(find_secrets(text))


# -- values: the decision ------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<[A-Za-z0-9_. -]{1,40}>")
_PLACEHOLDERS = frozenset(("", "none", "null", "true", "false", REDACTED))


def _trivial(value: str) -> bool:
    """A string that cannot be a credential even under a secret name: empty, a
    placeholder (``<HUB_TOKEN>``: what transformers' ``to_dict`` puts in place of a
    token), an interpolation (``${oc.env:HF_TOKEN}``, ``$HF_TOKEN``), a path."""
    v = value.strip()
    if v.lower() in _PLACEHOLDERS or v.startswith("$") or _PLACEHOLDER.fullmatch(v):
        return True
    return _is_path(v)


def _is_path(v: str) -> bool:
    if " " in v:
        return False
    if v.startswith(("/", "./", "../", "~/")) or re.match(r"[A-Za-z]:\\", v):
        return True
    # a relative path with a file suffix: secrets/hf.txt, keys/client.json
    return "/" in v and bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{0,5}$", v))


def redact_value(name: str, value: Any, found: set[str] | None = None) -> Any:
    """``value`` (JSON types) with every secret replaced by ``***``; the removed
    secrets are added to ``found``. Containers are walked: a mapping's keys are names.

    >>> redact_value("pad_token_id", 0), redact_value("token_pattern", "(?u)[a-z]+")
    (0, '(?u)[a-z]+')
    >>> redact_value("db.password", "hunter2!"), redact_value("key", "label")
    ('***', 'label')
    """
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        if is_secret_name(name):  # a numeric PIN or password in a YAML file
            _add(found, str(value))
            return REDACTED
        return value
    if isinstance(value, str):
        return _redact_string(name, value, found)
    if isinstance(value, Mapping):
        secret_parent = is_secret_name(name)
        return {k: redact_value(name if secret_parent else k, v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(name, v, found) for v in value]
    return value


def _redact_string(name: str, value: str, found: set[str] | None) -> str:
    if is_secret_name(name) and not _trivial(value):
        _add(found, value)
        return REDACTED
    hits = find_secrets(value)
    if not hits:
        return value
    for s in hits:
        _add(found, s)
    return _replace(value, hits)


def _add(found: set[str] | None, value: str) -> None:
    if found is None or len(value) < _MIN_SCRUB_LEN:
        return
    found.add(value)
    # a multi-line secret (a key block in an env var) is scrubbed line by line too:
    # the log scrubber works on lines
    found.update(line for line in value.splitlines() if len(line.strip()) >= _MIN_SCRUB_LEN)


def _replace(text: str, secrets: Iterable[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


# -- env, argv, free text --------------------------------------------------------------


def redact_url_credentials(text: str) -> str:
    """``https://u:pw@host`` -> ``https://u:***@host``; token-as-user URLs too."""
    text = _URL_CRED.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _URL_TOKEN_USER.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def redact_env(env: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """Return the redacted environment and the set of secret values that were removed.

    A secret-named variable is redacted whatever it holds (but a path: it names where a
    credential is, ``GOOGLE_APPLICATION_CREDENTIALS=/keys/sa.json``); any other is
    redacted where its value looks like a credential.
    """
    out: dict[str, str] = {}
    secrets: set[str] = set()
    for k, v in env.items():
        if is_secret_name(k) and v and not _is_path(v):
            out[k] = REDACTED
            _add(secrets, v)
        else:
            red = redact_url_credentials(v)
            hits = find_secrets(red)
            if red != v:
                secrets.update(_url_secrets(v))
            for s in hits:
                _add(secrets, s)
            out[k] = _replace(red, hits)
    return out, secrets


def redact_argv(argv: Iterable[str]) -> tuple[list[str], set[str]]:
    """Redact ``--api-key X``, ``--token=X``, ``password=X``, URL credentials and any
    argument that looks like a credential (``--openai sk-...``)."""
    out: list[str] = []
    secrets: set[str] = set()
    hide_next = False
    for arg in argv:
        if hide_next:
            hide_next = False
            if arg and not _trivial(arg):
                out.append(REDACTED)
                _add(secrets, arg)
                continue
        name, eq, value = arg.partition("=")
        if eq and is_secret_name(name) and not name.startswith("---") and not _trivial(value):
            out.append(f"{name}={REDACTED}")
            _add(secrets, value)
            continue
        if arg.startswith("-") and not eq and len(arg) > 1 and is_secret_name(arg):
            hide_next = True
            out.append(arg)
            continue
        out.append(redact_text(arg, secrets))
    return out, secrets


def redact_text(text: str, found: set[str] | None = None, entropy: bool = True) -> str:
    """``text`` with its credential-shaped parts replaced (added to ``found``)."""
    red = redact_url_credentials(text)
    if red != text and found is not None:
        found.update(_url_secrets(text))
    hits = find_secrets(red, entropy=entropy)
    for s in hits:
        _add(found, s)
    return _replace(red, hits) if hits else red


def _url_secrets(text: str) -> set[str]:
    found = {m["pw"] for m in _URL_CRED.finditer(text)}
    found |= {m["tok"] for m in _URL_TOKEN_USER.finditer(text)}
    return {s for s in found if len(s) >= _MIN_SCRUB_LEN}


def known_secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Secret values visible to this process: redacted env values and argv values."""
    _, a = redact_env(os.environ if environ is None else environ)
    _, b = redact_argv(sys.argv)
    return a | b


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a known secret value in ``text``, and anything that
    has a credential's known format (tracebacks, parameter strings)."""
    return redact_text(_replace(text, secrets), entropy=False)


class StreamScrubber:
    """Scrub secrets from a byte stream cut into arbitrary chunks.

    Works on complete lines (``\\n`` or ``\\r`` ends one; a line longer than
    :data:`MAX_LINE` is cut): known secret values are replaced, then each line gets a
    shape pass (known token formats, URL credentials, private-key blocks). Holding back
    the incomplete last line also finds a secret split across two chunks.
    """

    MAX_LINE = 64 * 1024

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets: list[bytes] = []
        self.pending = b""
        self.in_key_block = False
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub these values too from now on (values redacted after the run started)."""
        known = set(self.secrets)
        for s in secrets:
            if not s:
                continue
            known.add(s.encode("utf-8", "surrogateescape"))
            known.update(
                line.encode("utf-8", "surrogateescape")
                for line in s.splitlines()
                if len(line.strip()) >= _MIN_SCRUB_LEN
            )
        self.secrets = sorted(known, key=len, reverse=True)

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) <= self.MAX_LINE:
            self.pending = data
            return b""
        if cut == 0:
            cut = len(data)
        self.pending = data[cut:]
        return self._scrub(data[:cut])

    def flush(self) -> bytes:
        out, self.pending = self._scrub(self.pending), b""
        return out

    def _scrub(self, data: bytes) -> bytes:
        for s in self.secrets:
            if s in data:
                data = data.replace(s, REDACTED.encode())
        if self.in_key_block or b"PRIVATE KEY" in data:
            lines = data.splitlines(keepends=True)  # a key block: line by line, in order
            return b"".join(self._scrub_line(line) for line in lines)
        out: list[bytes] = []
        pos = 0
        for start, end in _lines_with(data, (*_LOG_LITERALS, b"://")):
            out += [data[pos:start], self._scrub_line(data[start:end])]
            pos = end
        return b"".join(out) + data[pos:] if out else data  # mostly: nothing token-like

    def _scrub_line(self, line: bytes) -> bytes:
        formats = _log_formats(line)
        if not self.in_key_block and not formats and b"://" not in line:
            return line
        text = line.decode("utf-8", "surrogateescape")
        body = text.rstrip("\r\n")
        end = text[len(body) :]
        if self.in_key_block:
            if _PRIVATE_KEY_END.search(body):
                self.in_key_block = False
            return (REDACTED + end).encode()
        if _PRIVATE_KEY_BEGIN.search(body):
            self.in_key_block = not _PRIVATE_KEY_END.search(body)
            return (REDACTED + end).encode()
        red = redact_text(body, entropy=False) if formats else redact_url_credentials(body)
        return line if red == body else (red + end).encode("utf-8", "surrogateescape")


# -- values redacted in a run's process, to the supervisor's log scrubbers -------------

# ``runbase run`` tees the command's output; values that its Python process redacts
# later (a Hydra config's db.password, runbase.param("hf_token", ...)) reach it through
# a pipe named here as ``fd:device:inode`` (the inode guards against a reused fd number
# in a process that did not inherit the pipe).
SECRETS_FD_ENV = "RUNBASE_SECRETS_FD"


def secrets_channel() -> tuple[int, int, str]:
    """``(read fd, write fd, env value)``: the supervisor reads, its command writes."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    st = os.fstat(w)
    return r, w, f"{w}:{st.st_dev}:{st.st_ino}"


def report_secrets(values: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Send redacted values to the supervisor's log scrubbers (no-op outside
    ``runbase run``). Never blocks: a full or closed pipe drops them."""
    spec = (os.environ if environ is None else environ).get(SECRETS_FD_ENV, "")
    values = [v for v in values if len(v) >= _MIN_SCRUB_LEN]
    if not spec or not values:
        return
    try:
        fd_s, dev, ino = spec.split(":")
        fd = int(fd_s)
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode) or (str(st.st_dev), str(st.st_ino)) != (dev, ino):
            return  # not our pipe: this process did not inherit it
        os.set_blocking(fd, False)
        data = "".join(json.dumps(v) + "\n" for v in values).encode("utf-8", "surrogateescape")
        os.write(fd, data)
    except (OSError, ValueError):
        return


class SecretsReader:
    """The supervisor's end of :func:`secrets_channel`: JSON lines, one value each."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.buf = b""

    def drain(self) -> list[str]:
        """The values sent so far (non-blocking); closes the pipe at its end."""
        while self.fd is not None:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close()
                break
            self.buf += data
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        out = []
        for line in lines:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, str):
                out.append(v)
        return out

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
