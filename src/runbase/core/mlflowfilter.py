"""MLflow's search language (``search_runs`` / ``search_experiments`` filters and
``order_by``), parsed to a small AST and evaluated in Python over loaded runs or
experiments: the team server's MLflow API answers the MLflow client with it
(docs/mlflow.md).

    metrics.acc > 0.9 AND params.lr = '0.1'
    tags.`mlflow.runName` LIKE 'brisk-%' AND attributes.status = 'FINISHED'
    attributes.run_id IN ('0bq3k5x7aaaaaaaa', '0bq3k5x7bbbbbbbb') AND start_time > 1700000000000
    dataset.name = 'iris' AND params.optimizer IS NOT NULL

Clauses are joined by ``AND`` (MLflow has no ``OR``). An identifier is ``TYPE.KEY``
with TYPE one of metric(s), param(s)/parameter(s), tag(s), attribute(s)/attr/run,
dataset(s); a key with other characters is written in backticks or double quotes. A
bare name is an attribute (``status``, ``run_name``, ``start_time``, ...). Values:
numbers for metrics and times (milliseconds), quoted strings for the rest, a
parenthesised list of strings after ``IN`` / ``NOT IN``. ``LIKE`` matches ``%`` (any
text) and ``_`` (one character), ``ILIKE`` ignoring case. A run without the metric,
param or tag a clause names does not match it (except ``IS NULL``).

``order_by`` items: ``IDENTIFIER [ASC|DESC]``; runs without the value sort last either
way. Every mistake is a :class:`~runbase.errors.QueryError` naming what is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from runbase.errors import QueryError

MAX_FILTER = 10_000  # characters of one filter string
MAX_CLAUSES = 100
MAX_ORDER_BY = 20
MAX_IN = 1_000  # values of one IN list

# what the identifiers' types are called (MLflow's spellings) -> the kind of a clause
_KINDS = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}

# attributes of each entity: name -> "str" | "num" (numbers are epoch milliseconds)
_RUN_ATTRIBUTES = {
    "run_id": "str",
    "run_name": "str",
    "status": "str",
    "user_id": "str",
    "artifact_uri": "str",
    "lifecycle_stage": "str",
    "start_time": "num",
    "end_time": "num",
}
_RUN_ALIASES = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
_EXPERIMENT_ATTRIBUTES = {
    "name": "str",
    "experiment_id": "str",
    "creation_time": "num",
    "last_update_time": "num",
}
_ENTITIES = {
    "run": (_RUN_ATTRIBUTES, _RUN_ALIASES, {"metric", "param", "tag", "attribute", "dataset"}),
    "experiment": (_EXPERIMENT_ATTRIBUTES, {}, {"tag", "attribute"}),
}
_DATASET_FIELDS = {"name", "digest", "context"}

_NUM_OPS = {">", ">=", "=", "!=", "<", "<="}
_STR_OPS = {"=", "!=", "LIKE", "ILIKE"}
_NULL_OPS = {"IS NULL", "IS NOT NULL"}
_LIST_OPS = {"IN", "NOT IN"}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
      | (?P<squote>'(?:[^'\\]|\\.|'')*')
      | (?P<dquote>"(?:[^"\\]|\\.|"")*")
      | (?P<tick>`[^`]*`)
      | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_./:\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    """One condition: ``kind`` metric | param | tag | attribute | dataset; ``key`` the
    metric/param/tag name, the attribute or dataset field; ``op`` one of = != < <= > >=
    LIKE ILIKE IN "NOT IN" "IS NULL" "IS NOT NULL"; ``value`` a float, a string, a
    tuple of strings (IN) or None (IS NULL)."""

    kind: str
    key: str
    op: str
    value: float | str | tuple[str, ...] | None


@dataclass(frozen=True)
class OrderKey:
    kind: str
    key: str
    ascending: bool = True


@dataclass
class Subject:
    """What a filter is evaluated against: one run (or experiment) as loaded. Times
    among ``attributes`` are epoch milliseconds; ``datasets`` holds ``{name, digest,
    context}`` per dataset input."""

    id: str
    attributes: Mapping[str, str | float | None] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    datasets: Sequence[Mapping[str, str]] = ()


@dataclass
class _Token:
    kind: str  # num | squote | dquote | tick | op | word | end
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            out.append(_Token("end", "", pos))
            return out
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"unexpected character {text[pos]!r} at position {pos} of the filter")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()


def _unquote(tok: _Token) -> str:
    body = tok.text[1:-1]
    if tok.kind == "tick":
        return body
    quote = tok.text[0]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str, entity: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.attributes, self.aliases, self.kinds = _ENTITIES[entity]
        self.entity = entity

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.upper() in words

    def fail(self, what: str, tok: _Token | None = None) -> QueryError:
        tok = tok or self.peek()
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return QueryError(f"{what} at position {tok.pos} of {self.text!r}, found {found}")

    # -- identifiers -----------------------------------------------------------------
    def identifier(self) -> tuple[str, str]:
        """``(kind, key)`` of the identifier starting here."""
        tok = self.take()
        if tok.kind in ("tick", "dquote"):  # `Run name`: a whole quoted attribute name
            return self.attribute(_unquote(tok), tok)
        if tok.kind != "word":
            raise self.fail("expected a name like metrics.acc, params.lr or attributes.status", tok)
        head, dot, rest = tok.text.partition(".")
        if not dot:
            return self.attribute(head, tok)
        kind = _KINDS.get(head.lower())
        if kind is None or kind not in self.kinds:
            allowed = ", ".join(sorted({k for k, v in _KINDS.items() if v in self.kinds}))
            raise QueryError(
                f"unknown identifier type {head!r} in {self.text!r}: use one of {allowed}"
            )
        if not rest:  # metrics.`my metric` or metrics."my metric"
            key_tok = self.take()
            if key_tok.kind not in ("tick", "dquote", "squote"):
                raise self.fail(f"expected a key after {tok.text!r}", key_tok)
            rest = _unquote(key_tok)
        if not rest:
            raise QueryError(f"empty key after {head}. in {self.text!r}")
        if kind == "attribute":
            return self.attribute(rest, tok)
        if kind == "dataset" and rest not in _DATASET_FIELDS:
            raise QueryError(
                f"unknown dataset field {rest!r}: use one of {', '.join(sorted(_DATASET_FIELDS))}"
            )
        return kind, rest

    def attribute(self, name: str, tok: _Token) -> tuple[str, str]:
        name = self.aliases.get(name, name)
        if name not in self.attributes:
            raise QueryError(
                f"unknown attribute {name!r} (at position {tok.pos}): "
                f"searchable attributes are {', '.join(sorted(self.attributes))}"
            )
        return "attribute", name

    # -- clauses ---------------------------------------------------------------------
    def clauses(self) -> list[Clause]:
        out: list[Clause] = []
        while True:
            out.append(self.clause())
            if len(out) > MAX_CLAUSES:
                raise QueryError(f"a filter has at most {MAX_CLAUSES} conditions")
            if self.peek().kind == "end":
                return out
            if self.word("OR"):
                raise QueryError("MLflow filters join conditions with AND only; OR is not supported")
            if not self.word("AND"):
                raise self.fail("expected AND between conditions")
            self.take()

    def clause(self) -> Clause:
        kind, key = self.identifier()
        op = self.operator()
        typ = self.value_type(kind, key)
        allowed = {
            "num": _NUM_OPS,
            "str": _STR_OPS | (_NULL_OPS if kind in ("param", "tag") else _LIST_OPS),
        }[typ]
        if op not in allowed:
            raise QueryError(
                f"{op} cannot compare {kind} {key!r} in {self.text!r}: "
                f"use one of {', '.join(sorted(allowed))}"
            )
        if op in _NULL_OPS:
            return Clause(kind, key, op, None)
        if op in _LIST_OPS:
            return Clause(kind, key, op, self.string_list())
        return Clause(kind, key, op, self.number() if typ == "num" else self.string())

    def value_type(self, kind: str, key: str) -> str:
        if kind == "metric":
            return "num"
        if kind == "attribute":
            return str(self.attributes[key])
        return "str"

    def operator(self) -> str:
        tok = self.take()
        if tok.kind == "op" and tok.text in ("=", "!=", "<>", "<", "<=", ">", ">="):
            return "!=" if tok.text == "<>" else tok.text
        if tok.kind == "word":
            up = tok.text.upper()
            if up in ("LIKE", "ILIKE", "IN"):
                return up
            if up == "NOT" and self.word("IN"):
                self.take()
                return "NOT IN"
            if up == "IS":
                negated = self.word("NOT")
                if negated:
                    self.take()
                if not self.word("NULL"):
                    raise self.fail("expected NULL after IS")
                self.take()
                return "IS NOT NULL" if negated else "IS NULL"
        raise self.fail("expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL)", tok)

    def number(self) -> float:
        tok = self.take()
        if tok.kind != "num":
            raise self.fail("expected a number", tok)
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.fail("expected a finite number", tok)
        return value

    def string(self) -> str:
        tok = self.take()
        if tok.kind not in ("squote", "dquote"):
            raise self.fail("expected a quoted string ('...')", tok)
        return _unquote(tok)

    def string_list(self) -> tuple[str, ...]:
        tok = self.take()
        if tok.kind != "op" or tok.text != "(":
            raise self.fail("expected ( after IN", tok)
        values = [self.string()]
        while self.peek().kind == "op" and self.peek().text == ",":
            self.take()
            values.append(self.string())
            if len(values) > MAX_IN:
                raise QueryError(f"an IN list holds at most {MAX_IN} values")
        tok = self.take()
        if tok.kind != "op" or tok.text != ")":
            raise self.fail("expected , or ) in the IN list", tok)
        return tuple(values)


def _check_entity(entity: str) -> None:
    if entity not in _ENTITIES:
        raise ValueError(f"entity must be one of {sorted(_ENTITIES)}, not {entity!r}")


def parse_filter(text: str | None, entity: str = "run") -> list[Clause]:
    """The clauses of ``text`` (none for an empty or absent filter). ``entity``: "run"
    (search_runs) or "experiment" (search_experiments: ``name``, ``creation_time``,
    ``last_update_time``, ``tags.KEY``)."""
    _check_entity(entity)
    if text is None:
        return []
    if not isinstance(text, str):
        raise QueryError("a filter is a string")
    if not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise QueryError(f"a filter is at most {MAX_FILTER} characters")
    return _Parser(text, entity).clauses()


def parse_order_by(items: Sequence[str] | None, entity: str = "run") -> list[OrderKey]:
    """The sort keys of MLflow's ``order_by`` list (``["metrics.acc DESC", "start_time"]``)."""
    _check_entity(entity)
    items = list(items or [])
    if len(items) > MAX_ORDER_BY:
        raise QueryError(f"order_by holds at most {MAX_ORDER_BY} items")
    out: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_FILTER:
            raise QueryError(f"an order_by item is a non-empty string: {item!r}")
        p = _Parser(item, entity)
        kind, key = p.identifier()
        if kind == "dataset":
            raise QueryError(f"runs cannot be ordered by a dataset field: {item!r}")
        ascending = True
        if p.word("ASC", "DESC"):
            ascending = p.take().text.upper() == "ASC"
        if p.peek().kind != "end":
            raise p.fail("expected ASC or DESC at the end of the order_by item")
        out.append(OrderKey(kind, key, ascending))
    return out


# -- evaluation --------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _like_parts(pattern: str, ignore_case: bool) -> tuple[re.Pattern[str], ...]:
    """The pieces of a LIKE pattern between its ``%``: each a regex without quantifiers
    (a character, or ``.`` for ``_``), so each matches exactly its length in characters."""
    flags = re.S | (re.I if ignore_case else 0)
    return tuple(
        re.compile("".join("." if c == "_" else re.escape(c) for c in piece), flags)
        for piece in pattern.split("%")
    )


def like(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """SQL's ``LIKE`` (``ILIKE`` with ``ignore_case``): ``%`` any text, ``_`` one
    character, the whole text. The one matcher of the MLflow layer (runs, experiments,
    the registry): no backtracking regex, so no pattern can make it slow. The pieces
    between ``%`` have fixed lengths, so the first must match at the start, the last at
    the end, and each middle one at its leftmost place after the one before (the
    earliest end leaves the most room): one forward scan, at most
    ``len(text) * len(pattern)`` character steps."""
    parts = _like_parts(pattern, ignore_case)
    if len(parts) == 1:
        return parts[0].fullmatch(text) is not None
    head, tail = parts[0], parts[-1]
    found = head.match(text)
    if found is None:
        return False
    pos = found.end()
    for piece in parts[1:-1]:
        if not piece.pattern:
            continue  # "%%"
        found = piece.search(text, pos)
        if found is None:
            return False
        pos = found.end()
    start = len(text) - len(pattern.rpartition("%")[2])  # the last piece's width
    return start >= pos and tail.fullmatch(text, start) is not None


def value_of(subject: Subject, kind: str, key: str) -> str | float | None:
    """The value a clause or sort key of ``kind``/``key`` reads from ``subject``."""
    if kind == "metric":
        return subject.metrics.get(key)
    if kind == "param":
        return subject.params.get(key)
    if kind == "tag":
        return subject.tags.get(key)
    if kind == "attribute":
        return subject.attributes.get(key)
    return None


def _compare(op: str, have: str | float, want: float | str | tuple[str, ...] | None) -> bool:
    if op in _LIST_OPS:
        inside = isinstance(want, tuple) and have in want
        return inside if op == "IN" else not inside
    if op in ("LIKE", "ILIKE"):
        return like(str(want), str(have), ignore_case=op == "ILIKE")
    if isinstance(want, float) != isinstance(have, (int, float)):
        return False  # a string compared with a number (a hostile row): never a match
    checks = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return bool(checks[op](have, want))


def _matches_one(clause: Clause, subject: Subject) -> bool:
    if clause.kind == "dataset":
        return any(
            clause.key in d and _compare(clause.op, d[clause.key], clause.value)
            for d in subject.datasets
        )
    have = value_of(subject, clause.kind, clause.key)
    if clause.op in _NULL_OPS:
        return (have is None) == (clause.op == "IS NULL")
    if have is None:
        return False
    return _compare(clause.op, have, clause.value)


def matches(clauses: Sequence[Clause], subject: Subject) -> bool:
    """Whether ``subject`` meets every clause."""
    return all(_matches_one(c, subject) for c in clauses)


def _sort_value(value: str | float) -> tuple[int, float | str]:
    if isinstance(value, (int, float)):
        return (1, 0.0) if math.isnan(value) else (0, float(value))  # NaN after numbers
    return (2, value)


def _present(subject: Subject, key: OrderKey) -> str | float:
    value = value_of(subject, key.kind, key.key)
    return "" if value is None else value


def sort_subjects(subjects: Sequence[Subject], keys: Sequence[OrderKey]) -> list[Subject]:
    """``subjects`` ordered by ``keys`` (the first key first); those without a key's
    value after those with it, in either direction; ties keep the given order."""
    out = list(subjects)
    for k in reversed(keys):
        present = [s for s in out if value_of(s, k.kind, k.key) is not None]
        absent = [s for s in out if value_of(s, k.kind, k.key) is None]
        present.sort(key=_sorter(k), reverse=not k.ascending)
        out = present + absent
    return out


def _sorter(key: OrderKey) -> Callable[[Subject], tuple[int, float | str]]:
    return lambda s: _sort_value(_present(s, key))
