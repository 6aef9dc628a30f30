"""Record fidelity on realistic scripts (issue 15 items 2, 4, 5, 6): a run's own bytes
read back are not its inputs, probes are not inputs, reproduce verdicts say what was
compared, colliding param names keep both values, an auto-started run records what
``runbase run`` would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import blake3

from conftest import runbase_cmd, write
from runbase.store import Store

PY = sys.executable


def record(project: Path, ref: str = "latest") -> dict:
    return json.loads(
        runbase_cmd("show", ref, "--json", "--no-patch", cwd=project, check=True).stdout
    )


def b3(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def by_path(items: list[dict]) -> dict[str, dict]:
    return {i["path"]: i for i in items}


def no_self_loop(project: Path, rec: dict) -> None:
    """No run is the producer and the consumer of the same bytes."""
    ins = {i["hash"] for i in rec["inputs"] if i["hash"]}
    outs = {o["hash"] for o in rec["outputs"] if o["hash"]}
    assert not ins & outs, (rec["inputs"], rec["outputs"])
    for o in rec["outputs"]:
        graph = json.loads(
            runbase_cmd("trace", o["hash"], "--json", cwd=project, check=True).stdout
        )
        reads = {(e["from"], e["to"]) for e in graph["edges"] if e["kind"] == "read"}
        made = {(e["to"], e["from"]) for e in graph["edges"] if e["kind"] == "produced"}
        assert not reads & made, graph


# -- item 2: own bytes read back, probes, read-then-overwritten ----------------------


def test_checkpoint_saved_then_reloaded_is_an_output_only(project: Path) -> None:
    """The best checkpoint is saved, then reloaded to evaluate (a Python write then read,
    and a write by a non-Python process read back, as XGBoost's save/load_model does)."""
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("".join(f"{i},{i % 3}\n" for i in range(50)))
    write(
        project,
        "train.py",
        """
        import os, pickle, subprocess
        try:
            open("config.local").read()      # an optional local config: absent
        except FileNotFoundError:
            pass
        os.path.exists("settings.override")  # a probe, never opened
        rows = open("data/train.csv").read().splitlines()
        best = {"weights": [len(r) for r in rows]}
        os.makedirs("ckpt", exist_ok=True)
        with open("ckpt/best.pkl", "wb") as f:
            pickle.dump(best, f)
        with open("ckpt/best.pkl", "rb") as f:  # reload the best to evaluate
            model = pickle.load(f)
        # written by a non-Python process (the tree watcher sees it), then read back
        subprocess.run("printf booster > ckpt/booster.bin", shell=True, check=True)
        assert open("ckpt/booster.bin", "rb").read() == b"booster"
        print(sum(model["weights"]))
    """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert set(ins) == {"data/train.csv"}, rec["inputs"]
    assert ins["data/train.csv"]["hash"] == b3(project / "data/train.csv")
    assert set(outs) == {"ckpt/best.pkl", "ckpt/booster.bin"}
    assert outs["ckpt/best.pkl"]["hash"] == b3(project / "ckpt/best.pkl")
    assert outs["ckpt/booster.bin"]["hash"] == b3(project / "ckpt/booster.bin")
    no_self_loop(project, rec)


def test_xgboost_booster_saved_then_loaded(project: Path) -> None:
    (project / "data.csv").write_text(
        "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(200))
    )
    write(
        project,
        "train.py",
        """
        import numpy as np, xgboost as xgb
        d = np.loadtxt("data.csv", delimiter=",")
        dtrain = xgb.DMatrix(d[:, :2], label=d[:, 2])
        bst = xgb.train({"max_depth": 2, "objective": "binary:logistic"}, dtrain, 3)
        bst.save_model("model.json")
        again = xgb.Booster()
        again.load_model("model.json")
        print(float(again.predict(dtrain)[0]))
    """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert set(by_path(rec["inputs"])) == {"data.csv"}
    assert by_path(rec["outputs"])["model.json"]["hash"] == b3(project / "model.json")
    no_self_loop(project, rec)


def test_read_then_overwritten_is_input_and_output(project: Path) -> None:
    """A file read (the bytes from before the run) and then overwritten is an input (old
    bytes) and an output (new bytes); one rewritten unchanged is an input only."""
    (project / "state.json").write_text('{"step": 1}\n')
    (project / "vocab.txt").write_text("a\nb\n")
    old = b3(project / "state.json")
    write(
        project,
        "step.py",
        """
        import json, time
        state = json.load(open("state.json"))
        vocab = open("vocab.txt").read()
        time.sleep(1.5)  # let the supervisor hash what was read
        state["step"] += 1
        json.dump(state, open("state.json", "w"))
        open("vocab.txt", "w").write(vocab)  # rewritten unchanged
    """,
    )
    proc = runbase_cmd("run", "--", PY, "step.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert ins["state.json"]["hash"] == old and ins["state.json"]["changed_during_run"]
    assert outs["state.json"]["hash"] == b3(project / "state.json") != old
    assert ins["vocab.txt"]["hash"] == b3(project / "vocab.txt")
    assert "vocab.txt" not in outs  # these bytes predate the run: it did not produce them
    no_self_loop(project, rec)


def test_read_then_overwritten_at_once_keeps_the_input(project: Path) -> None:
    """Overwritten before the supervisor could hash it: the bytes read are gone, but the
    file is still recorded as an input (flagged changed, without a hash), never dropped
    as if the run had read its own bytes."""
    (project / "counter.txt").write_text("41\n")
    write(
        project,
        "bump.py",
        """
        n = int(open("counter.txt").read())
        open("counter.txt", "w").write(f"{n + 1}\\n")
    """,
    )
    proc = runbase_cmd("run", "--", PY, "bump.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert ins["counter.txt"]["changed_during_run"]
    assert ins["counter.txt"]["hash"] in (None, "blake3:" + blake3.blake3(b"41\n").hexdigest())
    assert outs["counter.txt"]["hash"] == b3(project / "counter.txt")
    store = Store.open(project / ".runbase")
    assert store.objects.get_bytes(outs["counter.txt"]["hash"]) == b"42\n"
