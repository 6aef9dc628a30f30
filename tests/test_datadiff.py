"""What changed inside a data file (analysis.datadiff): on objects put into a real store,
and through `runbase diff` between real runs that read the files."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import commit, require, runbase_cmd, write
from runbase.analysis import datadiff
from runbase.analysis.datadiff import content_diff, describe_content
from runbase.capture.manifest import put_manifest
from runbase.store import Store

PY = sys.executable


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store", create=True)


def side(store: Store, data: bytes | str) -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    return {"oid": store.objects.put_bytes(raw), "kind": "file", "size": len(raw)}


def diff(store: Store, path: str, old: bytes | str | None, new: bytes | str | None) -> Any:
    return content_diff(
        store,
        path,
        None if old is None else side(store, old),
        None if new is None else side(store, new),
    )


def csv_text(rows: list[tuple[Any, ...]], header: str = "id,x,y") -> str:
    return header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


BASE = [(i, i * 2, i % 3) for i in range(10)]


# -- tables ------------------------------------------------------------------------


def test_csv_cells_edited_in_place_are_matched_by_position(store: Store) -> None:
    edited = [(i, 0 if i < 3 else x, 9 if i == 0 else y) for i, x, y in BASE]
    c = diff(store, "data/train.csv", csv_text(BASE), csv_text(edited))
    # row 0's x was 0 already: its y changed; rows 1 and 2 changed in x
    assert c == {
        "format": "csv",
        "rows": {"old": 10, "new": 10, "added": 0, "removed": 0, "changed": 3},
        "columns": {
            "old": 3,
            "new": 3,
            "added": [],
            "removed": [],
            "changed_values": {"x": 2, "y": 1},
        },
        "matched_by": "position",
    }
    assert describe_content(c) == "3 of 10 rows differ"


def test_columns_are_matched_by_name_and_rows_compared_on_shared_ones(store: Store) -> None:
    # y dropped, label added, columns reordered: the shared values are unchanged
    new = "label,x,id\n" + "".join(f"L{i},{x},{i}\n" for i, x, _ in BASE)
    c = diff(store, "d.csv", csv_text(BASE), new)
    assert c["columns"]["added"] == ["label"] and c["columns"]["removed"] == ["y"]
    assert c["rows"] == {"old": 10, "new": 10, "added": 0, "removed": 0, "changed": 0}
    assert describe_content(c) == "same 10 rows, column 'label' added, column 'y' removed"


def test_a_row_inserted_at_the_top_is_matched_by_content(store: Store) -> None:
    # by position every row would have changed; by content one row was added
    c = diff(store, "d.csv", csv_text(BASE), csv_text([(99, 0, 0), *BASE]))
    assert c["matched_by"] == "content"
    assert c["rows"] == {"old": 10, "new": 11, "added": 1, "removed": 0, "changed": 0}
    assert c["columns"]["changed_values"] == {}
    assert describe_content(c) == "1 row added (matched by content)"


def test_rows_deleted_from_the_middle_and_a_shuffle(store: Store) -> None:
    c = diff(store, "d.csv", csv_text(BASE), csv_text(BASE[:3] + BASE[6:]))
    assert c["matched_by"] == "content" and (c["rows"]["removed"], c["rows"]["added"]) == (3, 0)
    shuffled = diff(store, "d.csv", csv_text(BASE), csv_text(BASE[::-1]))
    assert shuffled["matched_by"] == "content" and shuffled["reordered"] is True
    assert shuffled["rows"]["added"] == shuffled["rows"]["removed"] == 0
    assert describe_content(shuffled) == "same rows, reordered"


def test_appended_rows_and_an_edit_stay_positional(store: Store) -> None:
    new = [(0, -1, 0), *BASE[1:], (10, 20, 1), (11, 22, 2)]
    c = diff(store, "d.csv", csv_text(BASE), csv_text(new))
    assert c["matched_by"] == "position"
    assert c["rows"] == {"old": 10, "new": 12, "added": 2, "removed": 0, "changed": 1}
    assert c["columns"]["changed_values"] == {"x": 1}
    assert describe_content(c) == "1 of 10 rows differ, 2 rows added"


def test_duplicate_rows_count_as_many(store: Store) -> None:
    # a multiset, not a set: a second copy of a row is a row added
    c = diff(store, "d.csv", csv_text([(1, 1, 1)] * 2), csv_text([(1, 1, 1)] * 5))
    assert c["rows"]["added"] == 3 and c["rows"]["removed"] == 0


def test_tsv_delimiter_by_extension_and_ragged_rows(store: Store) -> None:
    old = "a\tb\n1\t2\n3\t4\n"
    new = "a\tb\n1\t2\n3\t4\textra\n"  # a cell beyond the header is a change too
    c = diff(store, "d.tsv", old, new)
    assert c["format"] == "tsv" and c["columns"]["old"] == 2 and c["columns"]["added"] == []
    assert c["rows"]["changed"] == 1
    assert c["columns"]["changed_values"] == {datadiff.EXTRA: 1}
    short = diff(store, "d.tsv", old, "a\tb\n1\n3\t4\n")  # padded with an empty cell
    assert short["columns"]["changed_values"] == {"b": 1}


def test_repeated_header_names(store: Store) -> None:
    c = diff(store, "d.csv", "x,x,x (2)\n1,2,3\n", "x,x,x (2)\n1,5,3\n")
    assert c["columns"]["old"] == 3 and c["columns"]["changed_values"] == {"x (2)": 1}
    c = diff(store, "d.csv", "x,x,x (2)\n1,2,3\n", "x,x,x (2)\n1,2,4\n")
    assert c["columns"]["changed_values"] == {"x (2) (2)": 1}


def test_no_column_in_common(store: Store) -> None:
    c = diff(store, "d.csv", "a\n1\n", "b\n1\n2\n")
    assert c["matched_by"] is None and c["rows"]["changed"] == 0
    assert (
        describe_content(c)
        == "no column in common, 1 → 2 rows, column 'b' added, column 'a' removed"
    )


def test_untrusted_names_and_messages_are_printable(store: Store) -> None:
    # a header is the file's text: a terminal must not see its escape sequences
    evil = "\x1b[2J" + "n" * 100
    c = diff(store, "d.csv", "a\n1\n", f"a,{evil}\n1,2\n")
    line = describe_content(c)
    assert "\x1b" not in line and "\\x1b[2J" in line and len(line) < 120
    bad = diff(store, "d.jsonl", '{"a": 1}\n', '{"a": \x1b[2J}\n')
    assert "\x1b" not in bad["skipped"] and bad["skipped"].isprintable()


def test_json_lines_keys_are_columns(store: Store) -> None:
    old = '{"a": 1, "b": null}\n{"a": 2, "b": "x"}\n\n{"a": 3}\n'
    new = '{"a": 1}\n{"a": 2, "b": "y", "c": [1]}\n{"a": 3.0}\n'
    c = diff(store, "d.jsonl", old, new)
    assert c["format"] == "jsonl" and c["matched_by"] == "position"
    # row 1: b null -> absent; row 2: b changed; row 3: 3 -> 3.0 (other JSON)
    assert c["rows"]["changed"] == 3
    assert c["columns"]["changed_values"] == {"a": 1, "b": 2}
    assert c["columns"]["added"] == ["c"]


def test_json_lines_values_compare_as_json(store: Store) -> None:
    old = '{"a": NaN, "b": true, "c": {"x": 1, "y": 2}, "d": "1"}\n'
    new = '{"a": NaN, "b": 1, "c": {"y": 2, "x": 1}, "d": 1}\n'
    c = diff(store, "d.jsonl", old, new)
    # a string value can never pass for a missing key
    absent = diff(
        store,
        "d.jsonl",
        '{"a": 1, "b": "x"}\n{"a": 2}\n',
        '{"a": 1, "b": "x"}\n{"a": 2, "b": "\\u0000absent"}\n',
    )
    assert absent["columns"]["changed_values"] == {"b": 1}
    # NaN is the same cell; key order inside an object is not a change; true ≠ 1 ≠ "1"
    assert c["columns"]["changed_values"] == {"b": 1, "d": 1}


@pytest.mark.parametrize(
    "bad",
    ['{"a": 1}\n[1, 2]\n', '{"a": 1}\nnot json\n', "[" * 100_000 + "]" * 100_000 + "\n"],
)
def test_json_lines_that_are_not_records(store: Store, bad: str) -> None:
    c = diff(store, "d.jsonl", '{"a": 1}\n', bad)
    assert c["format"] == "jsonl"
    assert c["skipped"].startswith("could not read the new version as JSON Lines: line ")


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def test_parquet_columns_and_values(store: Store) -> None:
    old = parquet_bytes({"id": [1, 2, 3], "v": [0.5, float("nan"), 1.5]})
    new = parquet_bytes({"id": [1, 2, 3], "v": [0.5, float("nan"), 2.5], "w": ["a", "b", "c"]})
    c = diff(store, "part-0.parquet", old, new)
    # NaN is the same cell on both sides: only the last row's v changed
    assert c["format"] == "parquet" and c["matched_by"] == "position"
    assert c["rows"] == {"old": 3, "new": 3, "added": 0, "removed": 0, "changed": 1}
    assert c["columns"]["added"] == ["w"] and c["columns"]["changed_values"] == {"v": 1}
    assert c["columns"]["types_changed"] == {}
    # a type change is said even where every value compares equal (1 == 1.0)
    retyped = diff(
        store, "p.parquet", parquet_bytes({"id": [1, 2]}), parquet_bytes({"id": [1.0, 2.0]})
    )
    assert retyped["rows"]["changed"] == 0
    assert retyped["columns"]["types_changed"] == {"id": {"old": "int64", "new": "double"}}
    assert describe_content(retyped) == "same 2 rows, column 'id' int64 → double"


def test_parquet_over_the_row_cap(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datadiff, "MAX_PARQUET_ROWS", 2)
    c = diff(store, "x.parquet", parquet_bytes({"a": [1, 2]}), parquet_bytes({"a": [1, 2, 3]}))
    assert c == {"format": "parquet", "skipped": "over 2 rows (3)"}


def test_parquet_that_is_not_parquet(store: Store) -> None:
    c = diff(store, "x.parquet", parquet_bytes({"a": [1]}), b"PAR1 not really PAR1")
    assert c["format"] == "parquet"
    assert c["skipped"].startswith("could not read the new version as Parquet: ")


def test_parquet_without_pyarrow(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = parquet_bytes({"a": [1]}), parquet_bytes({"a": [2]})
    # None in sys.modules makes `import pyarrow.parquet` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    c = diff(store, "x.parquet", old, new)
    assert c == {"format": "parquet", "skipped": "install runbase[data] to diff Parquet contents"}
    assert describe_content(c).startswith("contents not compared: install runbase[data]")


# -- text, unknown formats ---------------------------------------------------------


def test_text_lines(store: Store) -> None:
    c = diff(store, "notes.txt", "a\nb\nc\n", "a\nc\nd\ne\n")
    assert c == {
        "format": "text",
        "matched_by": "sequence",
        "lines": {"old": 3, "new": 4, "added": 2, "removed": 1},
    }
    assert describe_content(c) == "+2 −1 lines (of 3 → 4)"


def test_many_lines_are_counted_by_content(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datadiff, "MAX_DIFFLIB_LINES", 5)
    lines = [f"line {i}\n" for i in range(10)]
    c = diff(store, "log.txt", "".join(lines), "".join(lines[::-1]))
    assert c["matched_by"] == "content" and c["reordered"] is True
    assert c["lines"]["added"] == c["lines"]["removed"] == 0


def test_unknown_extension_is_text_when_both_sides_are(store: Store) -> None:
    c = diff(store, "vocab", "a\nb\n", "a\nb\nc\n")
    assert c is not None and c["format"] == "text" and c["lines"]["added"] == 1
    assert diff(store, "model.bin", b"\0\1\2", b"\0\1\3") is None
    assert diff(store, "model.bin", "text", b"\xff\xfe") is None


def test_invalid_utf8_is_a_note(store: Store) -> None:
    for path, old in (("notes.txt", "a\n1\n"), ("d.csv", "a\n1\n"), ("d.jsonl", '{"a": 1}\n')):
        c = diff(store, path, old, b"a\n\xff\xfe\n")
        assert c["skipped"].startswith("could not read the new version as "), c
        assert "not UTF-8" in c["skipped"]


def test_a_field_over_the_csv_limit_is_a_note(store: Store) -> None:
    c = diff(store, "d.csv", "a\n1\n", "a\n" + "x" * 200_000 + "\n")
    assert c["skipped"] == (
        "could not read the new version as CSV: field larger than field limit (131072)"
    )


def test_malformed_csv_quotes_are_a_note_or_a_count(store: Store) -> None:
    # csv reads an unterminated quote to the end: a count, never an exception
    c = diff(store, "d.csv", "a,b\n1,2\n", 'a,b\n"1,2\n3,4\n')
    assert c["format"] == "csv" and ("rows" in c or "skipped" in c)


def test_gzipped_files_are_read_inflated(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = csv_text(BASE), csv_text([*BASE, (10, 20, 1)])
    c = diff(store, "d.csv.gz", gzip.compress(old.encode()), gzip.compress(new.encode()))
    assert c["format"] == "csv" and c["compression"] == "gzip"
    assert c["rows"]["added"] == 1 and c["matched_by"] == "position"
    c = diff(store, "d.csv.gz", gzip.compress(old.encode()), b"not gzip at all")
    assert c["compression"] == "gzip"
    assert c["skipped"].startswith("could not read the new version as gzip: ")
    # a few hundred bytes that inflate beyond the cap are read no further
    monkeypatch.setattr(datadiff, "MAX_BYTES", 1000)
    bomb = gzip.compress(b"a\n" + b"1\n" * 100_000)
    c = diff(store, "d.csv.gz", gzip.compress(old.encode()), bomb)
    assert c["skipped"] == "the new version inflates to over 0 MiB"
    assert diff(store, "model.bin.gz", gzip.compress(b"x"), gzip.compress(b"y")) is None


# -- sides, caps, the store --------------------------------------------------------


def test_an_added_file_and_absent_sides(store: Store) -> None:
    c = diff(store, "d.csv", None, csv_text(BASE[:4]))
    assert c["rows"] == {"old": 0, "new": 4, "added": 4, "removed": 0, "changed": 0}
    assert c["columns"]["added"] == ["id", "x", "y"]
    assert content_diff(store, "d.csv", None, None) is None


def test_not_stored_corrupt_and_too_large(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = {"oid": "blake3:" + "0" * 64, "kind": "file", "size": 3}
    c = content_diff(store, "d.csv", absent, side(store, "a\n1\n"))
    assert c == {"format": "csv", "skipped": "the bytes of blake3:000000000000… are not stored"}
    bad = side(store, "a\n2\n")
    os.chmod(store.objects.path(bad["oid"]), 0o644)
    store.objects.path(bad["oid"]).write_bytes(b"a\n3\n")  # the store's copy is damaged
    c = content_diff(store, "d.csv", bad, side(store, "a\n1\n"))
    assert "are corrupted" in c["skipped"]
    monkeypatch.setattr(datadiff, "MAX_BYTES", 3)
    c = diff(store, "d.csv", "a\n1\n", "a\n2\n")
    assert c == {"format": "csv", "skipped": "over 0 MiB (4 bytes)"}


def test_unknown_format_over_the_sniff_cap_is_not_read(store: Store) -> None:
    big = {"oid": "blake3:" + "1" * 64, "kind": "file", "size": datadiff.MAX_SNIFFED + 1}
    # not even looked up: a checkpoint of some GiB is not read to find out it is binary
    assert content_diff(store, "model.ckpt", big, side(store, "x")) is None


def manifest(store: Store, files: dict[str, str]) -> dict[str, Any]:
    entries = [
        {"path": p, "type": "f", "oid": store.objects.put_bytes(t.encode()), "size": len(t)}
        for p, t in sorted(files.items())
    ]
    return {"oid": put_manifest(store, entries), "kind": "dir", "size": 0}


def test_directories_compare_their_manifests(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    old = manifest(store, {"a.csv": "1", "b.csv": "2", "c.csv": "3"})
    new = manifest(store, {"a.csv": "1", "b.csv": "changed", "d.csv": "4", "e.csv": "5"})
    c = content_diff(store, "data", old, new)
    assert c == {
        "format": "dir",
        "files": {"old": 3, "new": 4, "added": 2, "removed": 1, "changed": 1},
        "paths": {"added": ["d.csv", "e.csv"], "removed": ["c.csv"], "changed": ["b.csv"]},
        "paths_truncated": False,
    }
    assert describe_content(c) == "2 files added, 1 file removed, 1 file changed (of 3 → 4)"
    monkeypatch.setattr(datadiff, "MAX_PATHS", 1)
    c = content_diff(store, "data", old, new)
    assert c["paths"]["added"] == ["d.csv"] and c["paths_truncated"] is True
    mixed = content_diff(store, "data", old, side(store, "x"))
    assert mixed == {"format": "dir", "skipped": "a file on one side and a directory on the other"}
    not_a_manifest = {**side(store, "[1, 2]"), "kind": "dir"}
    c = content_diff(store, "data", old, not_a_manifest)
    assert c["format"] == "dir" and c["skipped"].startswith("could not read the manifest ")


# -- through runbase diff ----------------------------------------------------------

READER = """
import io, pathlib, sys
for p in sorted(pathlib.Path("data").iterdir()):
    print(p.name, len(open(p, "rb").read()))
"""


def run(project: Path) -> str:
    runbase_cmd("run", "--", PY, "read.py", cwd=project, check=True)
    return json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]


def write_data(project: Path, files: dict[str, bytes | str]) -> None:
    for name, data in files.items():
        path = project / "data" / name
        path.parent.mkdir(exist_ok=True)
        raw = data.encode() if isinstance(data, str) else data
        path.write_bytes(raw)


def test_runbase_diff_reports_content_of_each_format(project: Path) -> None:
    write(project, "read.py", READER)
    commit(project, "reader")
    old_jsonl = '{"a": 1}\n{"a": 2}\n'
    write_data(
        project,
        {
            "train.csv": csv_text(BASE),
            "train.tsv": csv_text(BASE).replace(",", "\t"),
            "rows.jsonl": old_jsonl,
            "part.parquet": parquet_bytes({"id": [1, 2], "v": [1.0, 2.0]}),
            "notes.txt": "a\nb\n",
            "weights.bin": b"\0\1\2",
        },
    )
    a = run(project)
    edited = [(i, 0 if i < 3 else x, y) for i, x, y in BASE]
    write_data(
        project,
        {
            "train.csv": csv_text(edited, header="id,x,label"),
            "train.tsv": csv_text([(99, 0, 0), *BASE]).replace(",", "\t"),
            "rows.jsonl": old_jsonl + '{"a": 3}\n',
            "part.parquet": parquet_bytes({"id": [1, 2], "v": [1.0, 5.0]}),
            "notes.txt": "a\nc\n",
            "weights.bin": b"\0\1\3",
        },
    )
    b = run(project)
    report = json.loads(runbase_cmd("diff", a, b, "--json", cwd=project, check=True).stdout)
    changed = {f["path"]: f["content"] for f in report["data"]["inputs"]["changed"]}
    assert set(changed) == {
        f"data/{n}"
        for n in (
            "train.csv",
            "train.tsv",
            "rows.jsonl",
            "part.parquet",
            "notes.txt",
            "weights.bin",
        )
    }
    csv_c = changed["data/train.csv"]
    assert csv_c["rows"]["changed"] == 2 and csv_c["columns"]["added"] == ["label"]
    assert csv_c["columns"]["removed"] == ["y"] and csv_c["matched_by"] == "position"
    assert changed["data/train.tsv"]["matched_by"] == "content"
    assert changed["data/train.tsv"]["rows"]["added"] == 1
    assert changed["data/rows.jsonl"]["rows"]["added"] == 1
    assert changed["data/part.parquet"]["columns"]["changed_values"] == {"v": 1}
    assert changed["data/notes.txt"]["lines"] == {"old": 2, "new": 2, "added": 1, "removed": 1}
    assert changed["data/weights.bin"] is None  # binary, unknown format: the hash says it
    assert csv_c["summary"] == "2 of 10 rows differ, column 'label' added, column 'y' removed"
    text = runbase_cmd("diff", a, b, cwd=project, check=True).stdout
    assert "    ~ data/train.csv  " in text
    assert "\n        2 of 10 rows differ, column 'label' added, column 'y' removed\n" in text, text
    assert "\n        1 row added (matched by content)\n" in text
    assert "\n        +1 −1 lines (of 2 → 2)\n" in text


def test_runbase_diff_of_a_declared_directory_and_hash_only(project: Path) -> None:
    write(project, "read.py", READER)
    commit(project, "reader")
    write_data(project, {"a.csv": "x\n1\n", "b.csv": "x\n2\n"})
    runbase_cmd("run", "--input", "data", "--", PY, "read.py", cwd=project, check=True)
    a = json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]
    write_data(project, {"b.csv": "x\n3\n", "c.csv": "x\n4\n"})
    runbase_cmd("run", "--input", "data", "--", PY, "read.py", cwd=project, check=True)
    b = json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]
    report = json.loads(runbase_cmd("diff", a, b, "--json", cwd=project, check=True).stdout)
    changed = {f["path"]: f["content"] for f in report["data"]["inputs"]["changed"]}
    assert changed["data"]["files"] == {"old": 2, "new": 3, "added": 1, "removed": 0, "changed": 1}
    assert changed["data"]["paths"]["added"] == ["c.csv"]
    assert changed["data/b.csv"]["rows"]["changed"] == 1
    # bytes hashed but not stored: said, not guessed
    write_data(project, {"b.csv": "x\n5\n"})
    runbase_cmd("run", "--hash-only", "--", PY, "read.py", cwd=project, check=True)
    c = json.loads(runbase_cmd("ls", "--json", "--limit", "1", cwd=project).stdout)[0]["id"]
    report = json.loads(runbase_cmd("diff", b, c, "--json", cwd=project, check=True).stdout)
    changed = {f["path"]: f["content"] for f in report["data"]["inputs"]["changed"]}
    skipped = changed["data/b.csv"]["skipped"]
    assert skipped.startswith("the bytes of blake3:") and skipped.endswith("… are not stored")
    text = runbase_cmd("diff", b, c, cwd=project, check=True).stdout
    assert f"\n        contents not compared: {skipped}\n" in text
