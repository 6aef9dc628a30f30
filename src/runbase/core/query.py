"""Filter and sort expressions over runs, compiled to portable SQL.

    params.lr < 0.1 and metrics.acc > 0.9
    status == "failed" or tags.baseline
    metrics.loss.min <= 0.2 and not params.optimizer == "sgd"
    name ~ "brisk-*" and started_at > "2026-11-01"

Fields: ``params.KEY``, ``metrics.KEY`` (the summary value) or ``metrics.KEY.{last,min,
max,count,value}``, ``tags.KEY``, and the run columns ``id name status user host
command exit_code exit_signal started_at ended_at duration sweep commit mode``. A
bare ``params.KEY``/``metrics.KEY``/``tags.KEY`` means "is present". Operators:
``< <= > >= == != ~`` (``~`` is a glob match) and ``in (v1, v2)``; ``and``, ``or``,
``not``, parentheses. Values: numbers, quoted strings, ``true``/``false``/``null``,
or bare words. Keys with other characters are written in backticks.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from runbase.errors import QueryError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<tick>`[^`]*`)
      | (?P<op><=|>=|==|!=|=|<|>|~|\(|\)|,|\.)
      | (?P<word>[A-Za-z_][A-Za-z0-9_/:\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}
_AGGS = {"last", "min", "max", "count", "value"}
_COLUMNS = {
    "id": "runs.id",
    "name": "runs.name",
    "status": "runs.status",
    "user": "runs.user_name",
    "host": "runs.host",
    "command": "runs.command",
    "exit_code": "runs.exit_code",
    "exit_signal": "runs.exit_signal",
    "started_at": "runs.started_at",
    "ended_at": "runs.ended_at",
    "sweep": "runs.sweep_id",
    "commit": "runs.code_commit",
    "mode": "runs.mode",
    "parent": "runs.parent_id",
    "reproduces": "runs.reproduces",
}
_TIME_COLUMNS = {"started_at", "ended_at"}
_SQL_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "=": "=", "!=": "<>"}


MAX_NESTING = 50  # levels of 'not' and parentheses in one expression
# comparisons in one expression (an 'in' list counts each value): SQL chains them, and
# SQLite refuses an expression tree deeper than 1000
MAX_TERMS = 500


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


@dataclass
class Field:
    scope: str  # "params" | "metrics" | "tags" | "run"
    key: str
    agg: str = "value"


def _tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(
                f"unexpected character {text[pos:].strip()[:1]!r} at position {pos} in {text!r}"
            )
        kind = m.lastgroup or ""
        toks.append(Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0  # nesting of 'not' and parentheses (MAX_NESTING)
        self.terms = 0  # comparisons so far (MAX_TERMS)
        self.args: list[Any] = []
        self.fields: list[Field] = []  # every field named, for named_keys

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError(f"unexpected end of expression {self.text!r}")
        self.i += 1
        return tok

    def accept_word(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def accept_op(self, op: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "op" and tok.text == op:
            self.i += 1
            return True
        return False

    def parse(self) -> str:
        sql = self.or_()
        if self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            raise QueryError(f"unexpected {tok.text!r} at position {tok.pos} in {self.text!r}")
        return sql

    def or_(self) -> str:
        parts = [self.and_()]
        while self.accept_word("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_(self) -> str:
        parts = [self.not_()]
        while self.accept_word("and"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_(self) -> str:
        # every 'not' and '(' is one level of recursion here and of SQL there: bounded,
        # so a hostile or generated expression is a clear error, not a RecursionError
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                tok = self.peek()
                at = f" at position {tok.pos}" if tok else ""
                raise QueryError(
                    f"the expression nests 'not' and parentheses more than {MAX_NESTING} "
                    f"levels deep{at}"
                )
            if self.accept_word("not"):
                return f"NOT ({self.not_()})"
            if self.accept_op("("):
                inner = self.or_()
                if not self.accept_op(")"):
                    raise QueryError(f"missing ')' in {self.text!r}")
                return inner
            return self.comparison()
        finally:
            self.depth -= 1

    def field(self) -> Field:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise QueryError(
                f"expected a field such as params.lr at position {tok.pos} in {self.text!r}"
            )
        name = tok.text
        if name in ("params", "metrics", "tags"):
            if not self.accept_op("."):
                raise QueryError(f"{name} needs a key, e.g. {name}.lr")
            parts = [self.key_part()]
            while self.accept_op("."):
                parts.append(self.key_part())
            agg = "value"
            if name == "metrics" and len(parts) > 1 and parts[-1] in _AGGS:
                agg = parts.pop()
            self.fields.append(Field(name, ".".join(parts), agg))
            return self.fields[-1]
        if name == "duration":
            return Field("run", "duration")
        if name not in _COLUMNS:
            raise QueryError(
                f"unknown field {name!r}; use params.KEY, metrics.KEY, tags.KEY or one of "
                + ", ".join(sorted([*_COLUMNS, "duration"]))
            )
        return Field("run", name)

    def key_part(self) -> str:
        tok = self.take()
        if tok.kind == "tick":
            return tok.text[1:-1]
        if tok.kind in ("word", "num"):
            return tok.text
        raise QueryError(f"expected a key at position {tok.pos} in {self.text!r}")

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "num":
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.kind == "str":
            return (
                json.loads(tok.text) if tok.text[0] == '"' else tok.text[1:-1].replace("\\'", "'")
            )
        if tok.kind == "word":
            low = tok.text.lower()
            return {"true": True, "false": False, "null": None}.get(low, tok.text)
        raise QueryError(f"expected a value at position {tok.pos} in {self.text!r}")

    def comparison(self) -> str:
        self.count_term()
        f = self.field()
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() == "in":
            self.i += 1
            if not self.accept_op("("):
                raise QueryError(f"'in' needs a list: in (1, 2) in {self.text!r}")
            values = [self.value()]
            while self.accept_op(","):
                self.count_term()
                values.append(self.value())
            if not self.accept_op(")"):
                raise QueryError(f"missing ')' after the 'in' list in {self.text!r}")
            return "(" + " OR ".join(self.compile(f, "==", v) for v in values) + ")"
        if tok is None or tok.kind != "op" or tok.text not in (*_SQL_OPS, "~"):
            if f.scope in ("params", "metrics", "tags"):
                return self.exists(f, "1=1", [])
            raise QueryError(f"{f.key} needs a comparison, e.g. {f.key} == value")
        self.i += 1
        return self.compile(f, tok.text, self.value())

    def count_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QueryError(f"the expression has more than {MAX_TERMS} comparisons")

    # -- SQL generation ------------------------------------------------------------
    def exists(self, f: Field, cond: str, args: list[Any]) -> str:
        table = {"params": "params", "metrics": "metrics", "tags": "tags"}[f.scope]
        self.args += [f.key, *args]
        return f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = runs.id AND x.key = ? AND {cond})"

    def compile(self, f: Field, op: str, v: Any) -> str:
        if f.scope == "metrics":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise QueryError(f"metrics.{f.key} compares with numbers, not {v!r}")
            if op == "~":
                raise QueryError("~ (glob) needs a text field")
            return self.exists(f, f"x.{f.agg} {_SQL_OPS[op]} ?", [v])
        if f.scope == "params":
            return self.param_cond(f, op, v)
        if f.scope == "tags":
            return self.exists(f, *self.text_cond("x.value", op, v))
        return self.column_cond(f, op, v)

    def param_cond(self, f: Field, op: str, v: Any) -> str:
        if op == "~":
            return self.exists(f, *self.text_cond("x.value", op, json.dumps(str(v))[:-1] + '"'))
        if isinstance(v, bool) or v is None:
            if op not in ("==", "=", "!="):
                raise QueryError(f"only == and != apply to {json.dumps(v)}")
            return self.exists(f, f"x.value {_SQL_OPS[op]} ?", [json.dumps(v)])
        if isinstance(v, (int, float)):
            return self.exists(f, f"x.num {_SQL_OPS[op]} ?", [v])
        if op not in ("==", "=", "!="):
            raise QueryError(f"params.{f.key} {op} {v!r}: ordering needs a number")
        return self.exists(f, f"x.value {_SQL_OPS[op]} ?", [json.dumps(v, ensure_ascii=False)])

    def text_cond(self, col: str, op: str, v: Any) -> tuple[str, list[Any]]:
        if op == "~":
            # case-insensitive in both dialects (SQLite's LIKE folds ASCII, as its lower())
            return f"lower({col}) LIKE lower(?) ESCAPE '\\'", [_glob_to_like(str(v))]
        if op not in ("==", "=", "!="):
            raise QueryError(f"{op} needs a number; text compares with ==, != or ~")
        return f"{col} {_SQL_OPS[op]} ?", [str(v)]

    def column_cond(self, f: Field, op: str, v: Any) -> str:
        if f.key == "duration":
            col = "(COALESCE(runs.ended_at, runs.heartbeat_at, runs.started_at) - runs.started_at)"
        else:
            col = _COLUMNS[f.key]
        if f.key in _TIME_COLUMNS and isinstance(v, str):
            v = parse_time(v)
        if v is None:
            if op not in ("==", "=", "!="):
                raise QueryError("null compares with == or != only")
            return f"{col} IS {'NOT ' if op == '!=' else ''}NULL"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if op == "~":
                raise QueryError("~ (glob) needs text")
            self.args.append(v)
            return f"{col} {_SQL_OPS[op]} ?"
        cond, args = self.text_cond(col, op, v)
        self.args += args
        return cond


def _glob_to_like(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def parse_time(text: str) -> float:
    """ISO date/time (UTC unless it says otherwise) or a relative age like ``2h`` -> epoch."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
        return time.time() - float(m[1]) * mult
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"not a date/time: {text!r} (use e.g. 2026-11-26, 2026-11-26T10:00 or 3h)")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def compile_where(text: str | None) -> tuple[str, list[Any]]:
    """``"params.lr < 0.1"`` -> ``(sql condition, args)`` over the ``runs`` table."""
    if text is None or not text.strip():
        return "1=1", []
    p = _Parser(text)
    sql = p.parse()
    return sql, p.args


def named_keys(where: str | None) -> list[tuple[str, str]]:
    """Each ``(scope, key)`` a filter names, once, in order: ``params.lr < 0.1 and
    metrics.acc > 0.9`` -> ``[("params", "lr"), ("metrics", "acc")]``."""
    if where is None or not where.strip():
        return []
    p = _Parser(where)
    p.parse()
    return list(dict.fromkeys((f.scope, f.key) for f in p.fields))


def compile_sort(text: str | None) -> tuple[str, list[Any]]:
    """``"-metrics.acc"`` / ``"metrics.acc desc"`` / ``"started_at"`` -> ORDER BY clause.

    Runs without the sort key come last whatever the direction.
    """
    if text is None or not text.strip():
        return "runs.started_at DESC, runs.id DESC", []
    clauses: list[str] = []
    args: list[Any] = []
    for f, desc in parse_sort(text):
        for expr, expr_args in _sort_exprs(f):
            clauses.append(f"CASE WHEN {expr} IS NULL THEN 1 ELSE 0 END")
            clauses.append(f"{expr} {'DESC' if desc else 'ASC'}")
            args += expr_args * 2
    clauses.append("runs.started_at DESC")
    return ", ".join(clauses), args


def parse_sort(text: str) -> list[tuple[Field, bool]]:
    """``"-metrics.acc, name"`` -> ``[(Field, descending), ...]`` (what
    :func:`compile_sort` orders by, before its ``started_at`` tiebreaker)."""
    out: list[tuple[Field, bool]] = []
    for part in text.split(","):
        part = part.strip()
        desc = part.startswith("-")
        part = part.lstrip("-").strip()
        low = part.lower()
        if low.endswith(" desc") or low.endswith(" asc"):
            desc = low.endswith(" desc")
            part = part.rsplit(" ", 1)[0].strip()
        p = _Parser(part)
        f = p.field()
        if p.peek() is not None:
            raise QueryError(f"cannot sort by {part!r}")
        out.append((f, desc))
    return out


def _sort_exprs(f: Field) -> list[tuple[str, list[Any]]]:
    sub = "(SELECT x.{col} FROM {table} x WHERE x.run_id = runs.id AND x.key = ?)"
    if f.scope == "metrics":
        return [(sub.format(col=f.agg, table="metrics"), [f.key])]
    if f.scope == "params":  # numbers by value, then text
        return [
            (sub.format(col="num", table="params"), [f.key]),
            (sub.format(col="value", table="params"), [f.key]),
        ]
    if f.scope == "tags":
        return [(sub.format(col="value", table="tags"), [f.key])]
    if f.key == "duration":
        return [
            ("(COALESCE(runs.ended_at, runs.heartbeat_at, runs.started_at) - runs.started_at)", [])
        ]
    return [(_COLUMNS[f.key], [])]
