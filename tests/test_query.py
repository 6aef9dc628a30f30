"""--where / --sort expressions, compiled to SQL and run on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbase.errors import QueryError
from runbase.records import lifecycle
from runbase.records.read import list_runs
from runbase.store import Store
from runbase.tracking.tracker import Tracker


def _make(
    store: Store,
    name: str,
    params: dict,
    metrics: dict,
    tags: dict | None = None,
    status: str = "finished",
) -> str:
    run_id = lifecycle.create_run(store, command=["x"], mode="api", name=name, tags=tags)
    t = Tracker(run_id, str(store.root))
    for k, v in params.items():
        from runbase.capture.params import encode_value

        t.event("param", key=k, value=encode_value(k, v), source="inline")
    for k, values in metrics.items():
        for i, v in enumerate(values):
            t.buf.append({k: v, "\x00t": 1.0 + i, "\x00s": i})
    t.close()
    lifecycle.finalize(store, run_id, status, exit_code=0 if status == "finished" else 1)
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / ".runbase", create=True)
    _make(
        s,
        "a",
        {"lr": 0.01, "opt": "adam", "flag": True},
        {"acc": [0.5, 0.95], "loss": [1.0, 0.1]},
        {"baseline": ""},
    )
    _make(
        s, "b", {"lr": 0.1, "opt": "sgd", "flag": False}, {"acc": [0.7, 0.85], "loss": [0.9, 0.3]}
    )
    _make(s, "c", {"lr": 1.0, "opt": "adam"}, {"acc": [0.2, float("nan")]}, status="failed")
    return s


def names(rows: list[dict]) -> list[str]:
    return sorted(r["name"] for r in rows)


@pytest.mark.parametrize(
    "where,expected",
    [
        ("params.lr < 0.1", ["a"]),
        ("params.lr < 0.1 and metrics.acc > 0.9", ["a"]),
        ("params.lr >= 0.1 or metrics.acc > 0.9", ["a", "b", "c"]),
        ('params.opt == "adam"', ["a", "c"]),
        ("params.opt == adam and not params.lr > 0.5", ["a"]),
        ("params.opt != 'adam'", ["b"]),
        ("params.flag == true", ["a"]),
        ("params.opt in ('sgd', 'rmsprop')", ["b"]),
        ("metrics.loss.min <= 0.1", ["a"]),
        ("metrics.acc.max > 0.8", ["a", "b"]),
        ("metrics.acc.count == 2", ["a", "b", "c"]),
        ("status == failed", ["c"]),
        ("tags.baseline", ["a"]),
        ("params.flag", ["a", "b"]),
        ("name ~ 'a*' or name ~ '?'", ["a", "b", "c"]),
        ("(status == finished) and (params.lr > 0.05)", ["b"]),
        ("metrics.acc > 0", ["a", "b"]),  # c's last acc is NaN: not comparable
        ("started_at > '2020-01-01' and duration >= 0", ["a", "b", "c"]),
        ("exit_code == 1", ["c"]),
    ],
)
def test_where(store: Store, where: str, expected: list[str]) -> None:
    assert names(list_runs(store, where, limit=None)) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "params.lr <",
        "params.lr << 1",
        "bogus == 1",
        "metrics.acc > 'x'",
        "(status == failed",
        "params.",
        "params.lr < 0.1 and",
        "status == failed extra",
        "params.opt > 'adam'",
        "started_at > 'yesterday-ish'",
        "@",
    ],
)
def test_malformed_where_is_a_clear_error(store: Store, bad: str) -> None:
    with pytest.raises(QueryError):
        list_runs(store, bad)


def test_sort(store: Store) -> None:
    assert [r["name"] for r in list_runs(store, sort="-metrics.acc")] == [
        "a",
        "b",
        "c",
    ]  # NaN/NULL last
    assert [r["name"] for r in list_runs(store, sort="metrics.acc")] == ["b", "a", "c"]
    assert [r["name"] for r in list_runs(store, sort="params.lr desc")] == ["c", "b", "a"]
    assert [r["name"] for r in list_runs(store, sort="name")] == ["a", "b", "c"]
    assert [r["name"] for r in list_runs(store, sort="-params.opt, name")][0] == "b"
    assert len(list_runs(store, limit=2)) == 2
    with pytest.raises(QueryError):
        list_runs(store, sort="nosuchfield")


def test_huge_limit_is_clamped(store: Store) -> None:
    assert len(list_runs(store, limit=10**12)) == 3


def test_unknown_keys_name_the_misspelling_and_the_close_keys(store: Store) -> None:
    from runbase.records.listing import unknown_keys

    assert unknown_keys(store, "params.lr < 1 and metrics.loss < 2 and tags.baseline") == []
    assert unknown_keys(store, None) == [] and unknown_keys(store, "status == 'x'") == []
    notes = unknown_keys(store, "params.lrr < 1 or metrics.los.min < 2 or not params.zzz")
    assert notes[0] == "params.lrr exists in no run (did you mean params.lr?)"
    assert notes[1] == "metrics.los exists in no run (did you mean metrics.loss?)"
    assert notes[2] == "params.zzz exists in no run (3 params keys in all)"
    assert len(notes) == 3
