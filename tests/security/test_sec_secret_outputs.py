"""Issues 14.7 and 15.1: a value runbase redacted never reaches the store through a file
the run writes. Hydra writes ``+api_token=...`` verbatim into ``.hydra/config.yaml`` and
``.hydra/overrides.yaml``; a script dumps ``vars(args)`` to ``out/args.json``. Such a
file is recorded by name and hash only, withheld like a secret file, while an ordinary
output of the same run is stored.

Real ``runbase run`` of a real Hydra app (a single run, and a ``-m`` multirun whose jobs
are runs of their own) and of an argparse script; every byte under ``.runbase`` is
searched for the token.
"""

from __future__ import annotations

import json
import secrets
import string
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import commit, require, runbase_cmd, write
from runbase.store.hashing import hash_bytes


def _token(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


# fresh each run: a token found in the store can only have come from this test
GH_TOKEN = "ghp_" + _token(36)
HF_TOKEN = "hf_" + _token(36)

HYDRA_APP = """\
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    Path("metrics.json").write_text(json.dumps({"lr": cfg.lr, "loss": 0.25}))


if __name__ == "__main__":
    main()
"""

ARGS_APP = """\
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--hf-token")
p.add_argument("--lr", type=float, default=0.1)
args = p.parse_args()
os.makedirs("out", exist_ok=True)
json.dump(vars(args), open("out/args.json", "w"))
with open("out/model.txt", "w") as f:
    f.write("weights 0.5 0.25\\n")
"""


def _store_holding(project: Path, token: str) -> list[str]:
    """Every file under the store holding ``token``'s bytes."""
    needle = token.encode()
    return [
        str(f)
        for f in (project / ".runbase").rglob("*")
        if f.is_file() and needle in f.read_bytes()
    ]


def _records(project: Path) -> list[dict[str, Any]]:
    listed = json.loads(runbase_cmd("ls", "--json", "--limit", "0", cwd=project, check=True).stdout)
    return [
        json.loads(runbase_cmd("show", r["id"], "--json", cwd=project, check=True).stdout)
        for r in listed
    ]


def _outputs(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["path"]: o for o in rec["outputs"]}


def _assert_withheld(item: dict[str, Any], on_disk: Path) -> None:
    assert item["hash"] == hash_bytes(on_disk.read_bytes()), item  # recorded by its hash
    assert item["stored"] is False and item.get("withheld") is True, item
    assert item.get("withheld_reason") == "holds a redacted value", item
    assert item["source"] == "redacted", item  # the record says why, in a pulled copy too


def _hydra_project(project: Path) -> None:
    require("hydra")
    write(project, "app.py", HYDRA_APP)
    # each job in its own directory: metrics.json is written next to .hydra/
    write(project, "conf/config.yaml", "lr: 0.1\nepochs: 2\nhydra:\n  job:\n    chdir: true\n")
    (project / ".gitignore").write_text("outputs/\nmultirun/\n")
    commit(project, "hydra app")


def _hydra_files(project: Path, base: str) -> dict[str, Path]:
    """The job directories' files that hold the token, and metrics.json, by path."""
    return {
        str(p.relative_to(project)): p
        for p in (project / base).rglob("*")
        if p.is_file() and (p.name in ("config.yaml", "overrides.yaml", "metrics.json"))
    }


def test_hydra_run_config_and_overrides_are_withheld(project: Path) -> None:
    _hydra_project(project)
    proc = runbase_cmd(
        "run", "--", sys.executable, "app.py", f"+api_token={GH_TOKEN}", cwd=project, check=True
    )
    assert "runbase: warning" not in proc.stderr, proc.stderr[-3000:]
    (rec,) = _records(project)
    assert rec["params"].get("api_token") == "***"
    outputs = _outputs(rec)
    files = _hydra_files(project, "outputs")
    assert len(files) == 3, sorted(files)
    for rel, path in files.items():
        if path.name == "metrics.json":
            assert outputs[rel]["stored"] is True and "withheld" not in outputs[rel]
        else:
            assert GH_TOKEN.encode() in path.read_bytes()  # Hydra did write it
            _assert_withheld(outputs[rel], path)
    assert _store_holding(project, GH_TOKEN) == []
    text = runbase_cmd("show", cwd=project, check=True).stdout
    assert "withheld: holds a redacted value" in text, text


def test_hydra_multirun_jobs_outputs_are_withheld(project: Path) -> None:
    _hydra_project(project)
    runbase_cmd(
        "run", "--name", "mr", "--", sys.executable, "app.py", "-m",
        f"+api_token={GH_TOKEN}", "lr=0.1,0.2",
        cwd=project, check=True, timeout=300,
    )  # fmt: skip
    records = _records(project)
    jobs = [r for r in records if r["mode"] == "job"]
    assert len(jobs) == 2, [r["name"] for r in records]
    recorded = {path: item for r in records for path, item in _outputs(r).items()}
    files = _hydra_files(project, "multirun")
    # two jobs: each a config.yaml, an overrides.yaml (holding the token) and metrics.json
    assert len(files) == 6, sorted(files)
    for rel, path in files.items():
        assert rel in recorded, f"{rel} not recorded: {sorted(recorded)}"
        if path.name == "metrics.json":
            assert recorded[rel]["stored"] is True
        else:
            _assert_withheld(recorded[rel], path)
    assert _store_holding(project, GH_TOKEN) == []


def test_dumped_args_are_withheld_and_other_outputs_stored(project: Path) -> None:
    write(project, "train.py", ARGS_APP)
    commit(project, "train")
    write(project, "notes.md", f"ran with {HF_TOKEN}\n")  # untracked: in the code snapshot
    runbase_cmd(
        "run", "--", sys.executable, "train.py", "--hf-token", HF_TOKEN, "--lr", "0.2",
        cwd=project, check=True,
    )  # fmt: skip
    (rec,) = _records(project)
    outputs = _outputs(rec)
    args = project / "out/args.json"
    assert HF_TOKEN in args.read_text()
    _assert_withheld(outputs["out/args.json"], args)
    model = outputs["out/model.txt"]
    assert model["stored"] is True and "withheld" not in model
    skipped = {s["path"]: s["reason"] for s in rec["code"]["skipped"]}
    assert skipped.get("notes.md") == "holds a redacted value", skipped
    assert _store_holding(project, HF_TOKEN) == []
    listing = runbase_cmd("show", cwd=project, check=True).stdout
    assert any("out/args.json" in line and "withheld" in line for line in listing.splitlines())


@pytest.mark.parametrize("size", [1 << 10, 1 << 20])
def test_scan_finds_a_value_anywhere_in_a_file(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search itself: a value at the very end of a file is found, a file without it
    is not flagged, and a file over the limit is not searched (documented)."""
    from runbase.capture import withhold

    monkeypatch.setattr(withhold, "_sources", [])  # this test's values only, then none
    values = {HF_TOKEN}
    withhold.guard(values)
    hit, miss, big = tmp_path / "hit", tmp_path / "miss", tmp_path / "big"
    hit.write_bytes(b"x" * size + HF_TOKEN.encode())
    miss.write_bytes(b"x" * size + HF_TOKEN[:-1].encode())
    big.write_bytes(b"x" * withhold.MAX_SCAN_BYTES + HF_TOKEN.encode())
    assert withhold.holds_secret(str(hit)) and not withhold.holds_secret(str(miss))
    assert not withhold.holds_secret(str(big))
    values.add(GH_TOKEN)  # a value reported later is searched for from then on
    miss.write_bytes(GH_TOKEN.encode())
    assert withhold.holds_secret(str(miss))


def test_many_values_are_searched_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a few values the search is one compiled alternation: each value is found."""
    from runbase.capture import withhold

    monkeypatch.setattr(withhold, "_sources", [])
    values = {f"tok{i:03d}-" + _token(20) for i in range(30)}
    withhold.guard(values)
    f = tmp_path / "dump.json"
    for v in sorted(values):
        f.write_text(json.dumps({"lr": 0.1, "key": v}))
        assert withhold.holds_secret(str(f)), v
    f.write_text(json.dumps({"lr": 0.1, "key": "tok000-" + "x" * 20}))
    assert not withhold.holds_secret(str(f))


LATE_APP = """\
import sys, runbase
key = sys.stdin.readline().strip()
with open("data/users.csv") as f:
    f.read()
runbase.param("api_key", key)  # redacted, and reported, after the file was read
with open("data/plain.csv") as f:
    f.read()
"""


def test_input_holding_a_value_reported_later_is_withheld(project: Path) -> None:
    """A value the command redacts once running is known to the supervisor at the end:
    an input holding it is withheld whenever it was read (never pushed)."""
    key = "rk-" + _token(32)
    write(project, "train.py", LATE_APP)
    write(project, "data/users.csv", f"user,key\nbob,{key}\n")
    write(project, "data/plain.csv", "a,b\n1,2\n")
    commit(project, "train")
    runbase_cmd("run", "--", sys.executable, "train.py", cwd=project, check=True, input=key + "\n")
    (rec,) = _records(project)
    assert rec["params"]["api_key"] == "***"
    inputs = {i["path"]: i for i in rec["inputs"]}
    _assert_withheld(inputs["data/users.csv"], project / "data/users.csv")
    assert inputs["data/plain.csv"]["stored"] is True
