"""Record fidelity on realistic scripts (issue 15 items 2, 4, 5, 6): a run's own bytes
read back are not its inputs, probes are not inputs, reproduce verdicts say what was
compared, colliding param names keep both values, an auto-started run records what
``runbase run`` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import blake3

from conftest import WAIT_FOR_RECORD, require, runbase_cmd, write
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
        WAIT_FOR_RECORD
        + """
import json
state = json.load(open("state.json"))
vocab = open("vocab.txt").read()
wait_for_record(  # the supervisor has hashed and kept the bytes read
    lambda rec: stored_input(rec, "state.json") and stored_input(rec, "vocab.txt"),
    "the inputs to be hashed",
)
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


def test_a_copy_is_not_the_producer_of_the_bytes_it_copied(project: Path) -> None:
    """A run that reads bytes and writes the same bytes elsewhere (a cache, a copy into
    a dataset folder) did not produce them: trace follows them to the run that did."""
    (project / "raw.txt").write_text("3 1 2\n")
    write(
        project,
        "prep.py",
        "open('clean.txt', 'w').write(' '.join(sorted(open('raw.txt').read().split())))\n",
    )
    write(
        project,
        "cache.py",
        "import shutil, os\nos.makedirs('cache', exist_ok=True)\nshutil.copyfile('clean.txt', 'cache/clean.txt')\n",
    )
    runbase_cmd("run", "--", PY, "prep.py", cwd=project, check=True)
    prep = record(project)["id"]
    runbase_cmd("run", "--", PY, "cache.py", cwd=project, check=True)
    copy = record(project)
    oid = b3(project / "clean.txt")
    assert by_path(copy["inputs"])["clean.txt"]["hash"] == oid
    assert by_path(copy["outputs"])["cache/clean.txt"]["hash"] == oid
    graph = json.loads(runbase_cmd("trace", oid, "--json", cwd=project, check=True).stdout)
    made = [e["from"] for e in graph["edges"] if e["kind"] == "produced"]
    assert made == [f"run:{prep}"], graph
    reads = {(e["from"], e["to"]) for e in graph["edges"] if e["kind"] == "read"}
    assert not reads & {(e["to"], e["from"]) for e in graph["edges"] if e["kind"] == "produced"}


def test_read_then_overwritten_at_once_keeps_the_input(project: Path) -> None:
    """Overwritten at once, before the supervisor could hash it: the process hashed (and
    stored) the bytes it read as it opened the file for writing, so the input has the
    old bytes' hash and copy, never dropped as if the run had read its own bytes."""
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
    assert ins["counter.txt"]["hash"] == "blake3:" + blake3.blake3(b"41\n").hexdigest()
    assert ins["counter.txt"]["stored"] is True and ins["counter.txt"]["size"] == 3
    assert outs["counter.txt"]["hash"] == b3(project / "counter.txt")
    store = Store.open(project / ".runbase")
    assert store.objects.get_bytes(ins["counter.txt"]["hash"]) == b"41\n"
    assert store.objects.get_bytes(outs["counter.txt"]["hash"]) == b"42\n"
    no_self_loop(project, rec)


def test_replaced_at_once_hash_only_keeps_the_input_hash(project: Path) -> None:
    """The atomic-save pattern (write a temp file, ``os.replace`` it over the file read)
    under ``--hash-only``: the bytes read are hashed before the replace, and not stored."""
    (project / "ignored").mkdir()  # data, not code: not in the code snapshot either
    (project / "ignored" / "state.json").write_text('{"step": 1}\n')
    old = b3(project / "ignored" / "state.json")
    write(
        project,
        "step.py",
        """
        import json, os
        state = json.load(open("ignored/state.json"))
        state["step"] += 1
        with open("ignored/state.json.tmp", "w") as f:
            json.dump(state, f)
        os.replace("ignored/state.json.tmp", "ignored/state.json")
    """,
    )
    proc = runbase_cmd("run", "--hash-only", "--", PY, "step.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert ins["ignored/state.json"]["hash"] == old
    assert ins["ignored/state.json"]["stored"] is False
    assert outs["ignored/state.json"]["hash"] == b3(project / "ignored/state.json") != old
    assert not Store.open(project / ".runbase").objects.exists(old)
    no_self_loop(project, rec)


def test_torch_checkpoint_loaded_then_saved_over_at_once(project: Path) -> None:
    """``torch.save`` writes through C++ (no audit event): the torch integration says it
    is about to write, so a checkpoint resumed from keeps its input hash and copy, and
    reloading what was saved is the run's own bytes."""
    torch = require("torch")  # in the test extra: missing, the test fails (not skips)
    (project / "ignored").mkdir()
    ckpt = project / "ignored" / "last.pt"
    torch.save({"epoch": 0}, ckpt)
    old, old_bytes = b3(ckpt), ckpt.read_bytes()
    write(
        project,
        "resume.py",
        """
        import torch
        state = torch.load("ignored/last.pt")
        state["epoch"] += 1
        torch.save(state, "ignored/last.pt")
        assert torch.load("ignored/last.pt")["epoch"] == 1
    """,
    )
    proc = runbase_cmd("run", "--", PY, "resume.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert set(ins) == {"ignored/last.pt"} and ins["ignored/last.pt"]["hash"] == old
    assert ins["ignored/last.pt"]["stored"] is True
    assert outs["ignored/last.pt"]["hash"] == b3(ckpt) != old
    store = Store.open(project / ".runbase")
    assert store.objects.get_bytes(old) == old_bytes
    no_self_loop(project, rec)


# -- item 4: reproduce verdicts ------------------------------------------------------

TRAINER = """
import argparse, random, time
import runbase
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--report", default="none")
args = p.parse_args()
random.seed(args.seed)
t0 = time.time()
loss = 1.0
for step in range(20):
    loss *= 0.9 + random.random() * 0.05
    print(f"{{'loss': {loss:.4f}, 'epoch': {step / 20}}}")  # a framework's progress on stdout
    runbase.log(loss=loss, step=step)
elapsed = time.time() - t0 + random.random()  # wall clock: differs on every run
runbase.summary(train_runtime=elapsed, train_samples_per_second=640 / elapsed,
                epoch_time=elapsed / 3, eval_loss=loss * 1.1)
"""


def _trainer_run(project: Path) -> str:
    write(project, "train.py", TRAINER)
    proc = runbase_cmd("run", "--", PY, "train.py", "--seed", "7", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return str(record(project)["id"])


def test_seeded_trainer_reproduces_despite_timing_metrics(project: Path) -> None:
    """Wall-clock figures (train_runtime, *_per_second, epoch_time, sys/*) are listed
    apart and never decide; --json prints the JSON alone on stdout (a real subprocess
    whose command prints progress to stdout)."""
    orig = _trainer_run(project)
    r = runbase_cmd("reproduce", orig, "--json", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)  # nothing but the JSON
    assert report["verdict"] == "reproduced"
    assert {m["key"] for m in report["metrics"]} == {"eval_loss", "loss"}
    timing = {m["key"] for m in report["timing_metrics"]}
    assert {"train_runtime", "train_samples_per_second", "epoch_time"} <= timing
    assert not any(m["ok"] for m in report["timing_metrics"] if m["key"] == "train_runtime")
    assert "'loss'" in r.stderr  # the command's own output went to stderr
    text = runbase_cmd("reproduce", orig, cwd=project)
    assert text.returncode == 0 and "\nreproduced: run " in text.stdout
    assert "timing, not compared: " in text.stdout and "train_runtime" in text.stdout


def test_override_is_changed_by_request_and_no_metric_is_nothing_to_compare(
    project: Path,
) -> None:
    orig = _trainer_run(project)
    # the override changes nothing the metrics see: still not "reproduced"
    r = runbase_cmd("reproduce", orig, "-p", "report=tensorboard", "--json", cwd=project)
    assert r.returncode == 4, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["verdict"] == "changed by request"
    assert report["changed_by_request"] == ["report"]
    assert all(m["ok"] for m in report["metrics"])

    write(project, "copy.py", "open('out.txt', 'w').write(open('README.md').read())\n")
    runbase_cmd("run", "--", PY, "copy.py", cwd=project, check=True)
    quiet = record(project)["id"]
    r = runbase_cmd("reproduce", quiet, "--json", cwd=project)
    assert r.returncode == 3, r.stdout + r.stderr
    assert json.loads(r.stdout)["verdict"] == "nothing to compare"
    r = runbase_cmd("reproduce", quiet, cwd=project)
    assert r.returncode == 3 and "nothing to compare: run " in r.stdout


# -- item 5: param name collisions ----------------------------------------------------


def test_argparse_and_sklearn_disagreeing_keep_both(project: Path) -> None:
    """argparse says what the user asked for, sklearn what the estimator used: both are
    kept under the documented rule (docs/capture.md), equal values stay one param."""
    write(
        project,
        "train.py",
        """
        import argparse
        from sklearn.datasets import make_classification
        from sklearn.ensemble import RandomForestClassifier
        p = argparse.ArgumentParser()
        p.add_argument("--n_estimators", type=int, default=10)
        p.add_argument("--max_depth", type=int, default=0, help="0: unlimited")
        p.add_argument("--random_state", type=float, default=0)
        args = p.parse_args()
        X, y = make_classification(n_samples=60, random_state=0)
        clf = RandomForestClassifier(
            n_estimators=args.n_estimators,
            max_depth=args.max_depth or None,      # the framework gets None, not 0
            random_state=int(args.random_state),
        ).fit(X, y)
        print(clf.score(X, y))
    """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", "--n_estimators", "7", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    params, sources = rec["params"], rec["param_sources"]
    assert (params["max_depth"], sources["max_depth"]) == (0, "argparse")
    assert ("sklearn.max_depth" in params) and params["sklearn.max_depth"] is None
    assert sources["sklearn.max_depth"] == "sklearn"
    # equal values (7 and 7, 0.0 and 0): one param, the parser's
    assert (params["n_estimators"], sources["n_estimators"]) == (7, "argparse")
    assert "sklearn.n_estimators" not in params and "sklearn.random_state" not in params
    assert sources["criterion"] == "sklearn"  # no collision: the bare name

    # a second run where the two agree: diff shows the real change, not an order effect
    proc = runbase_cmd("run", "--", PY, "train.py", "--max_depth", "4", cwd=project)
    assert proc.returncode == 0, proc.stderr
    again = record(project)
    assert again["params"]["max_depth"] == 4 and "sklearn.max_depth" not in again["params"]


def test_framework_reported_first_moves_aside(project: Path) -> None:
    """The order of reports does not matter: a framework's value recorded before the
    user's own (runbase.param after the fit) moves to ``<framework>.<name>``."""
    write(
        project,
        "train.py",
        """
        import runbase
        from sklearn.datasets import make_regression
        from sklearn.linear_model import Ridge
        X, y = make_regression(n_samples=40, n_features=3, random_state=0)
        Ridge(alpha=0.5).fit(X, y)
        runbase.param("alpha", 2.0)          # what the user meant to record
        runbase.param("fit_intercept", True)  # equal to the framework's: one param
    """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    params, sources = rec["params"], rec["param_sources"]
    assert (params["alpha"], sources["alpha"]) == (2.0, "inline")
    assert (params["sklearn.alpha"], sources["sklearn.alpha"]) == (0.5, "sklearn")
    assert (params["fit_intercept"], sources["fit_intercept"]) == (True, "inline")
    assert "sklearn.fit_intercept" not in params


# -- item 6: a run auto-started by runbase.log ---------------------------------------

PLAIN = """
import argparse, os
import runbase
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--data", default="data/points.csv")
args = p.parse_args()
if os.path.exists("config.local"):          # an optional local config: absent
    raise SystemExit("unexpected")
rows = [float(x) for x in open(args.data).read().split()]
os.makedirs("out", exist_ok=True)
with open("out/model.txt", "w") as f:        # written, then read back, before the run
    f.write(str(sum(rows) * args.lr))
check = float(open("out/model.txt").read())
for e in range(args.epochs):
    runbase.log(loss=check / (e + 1))         # the run starts here
runbase.summary(score=check)
assert float(open("out/model.txt").read()) == check  # read back after the run started
"""


def test_plain_python_script_records_what_runbase_run_would(project: Path) -> None:
    """``python train.py`` (no ``runbase run``, no ``init``): the argparse params
    (defaults included) and the data read before the first ``runbase.log`` are recorded,
    so ``reproduce`` restores the data; the record says what it could not see."""
    (project / "data").mkdir()
    (project / "data" / "points.csv").write_text("1 2 3 4\n")
    write(project, "train.py", PLAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run(
        [PY, "train.py", "--lr", "0.5"], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["mode"] == "api"
    assert rec["params"] == {"lr": 0.5, "epochs": 3, "data": "data/points.csv"}
    assert set(rec["param_sources"].values()) == {"argparse"}
    ins, outs = by_path(rec["inputs"]), by_path(rec["outputs"])
    assert set(ins) == {"data/points.csv"}
    assert ins["data/points.csv"]["hash"] == b3(project / "data/points.csv")
    assert ins["data/points.csv"]["stored"]
    assert outs["out/model.txt"]["hash"] == b3(project / "out/model.txt")
    assert "import runbase" in rec["tags"]["capture"]
    shown = runbase_cmd("show", rec["id"], cwd=project, check=True).stdout
    assert "capture" in shown and "import runbase" in shown

    (project / "data" / "points.csv").unlink()  # the data moved on: the record has it
    r = runbase_cmd("reproduce", rec["id"], "--json", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["verdict"] == "reproduced"


def test_explicit_init_at_the_top_has_no_capture_note(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import argparse, runbase
        runbase.init()
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        args = p.parse_args()
        runbase.log(loss=args.lr)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run([PY, "train.py"], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["params"] == {"lr": 0.1} and rec["param_sources"] == {"lr": "argparse"}
    assert "capture" not in rec["tags"]


def test_argparse_and_lightning_hparams_keep_both(project: Path) -> None:
    """A Lightning script whose argparse ``--hidden`` is scaled before it reaches the
    module: ``hidden`` is what the command line said, ``lightning.hidden`` what the
    module's hparams hold; ``lr`` agrees and stays one param."""
    write(
        project,
        "train.py",
        """
        import argparse
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        import lightning.pytorch as pl

        class Net(pl.LightningModule):
            def __init__(self, lr=0.05, hidden=8):
                super().__init__()
                self.save_hyperparameters()
                self.net = torch.nn.Linear(4, 1)

            def training_step(self, batch, i):
                x, y = batch
                return torch.nn.functional.mse_loss(self.net(x), y)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.05)
        p.add_argument("--hidden", type=int, default=4)
        args = p.parse_args()
        torch.manual_seed(0)
        data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=8)
        trainer = pl.Trainer(max_epochs=1, enable_progress_bar=False, enable_model_summary=False,
                             accelerator="cpu", enable_checkpointing=False, logger=True,
                             default_root_dir="logs")
        trainer.fit(Net(lr=args.lr, hidden=args.hidden * 2), data)
        """,
    )
    proc = runbase_cmd("run", "--", PY, "train.py", "--hidden", "6", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    params, sources = rec["params"], rec["param_sources"]
    assert (params["hidden"], sources["hidden"]) == (6, "argparse")
    assert (params["lightning.hidden"], sources["lightning.hidden"]) == (12, "lightning")
    assert (params["lr"], sources["lr"]) == (0.05, "argparse")
    assert "lightning.lr" not in params


def test_parse_before_import_runbase_is_recovered_from_main(project: Path) -> None:
    """The command line was parsed before runbase was imported (a script that imports
    its tracking lazily): the parsed namespace of the main module gives the params,
    defaults included, and the capture note says where they came from."""
    (project / "points.csv").write_text("1 2 3\n")
    write(
        project,
        "train.py",
        """
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--epochs", type=int, default=2)
        args = p.parse_args()

        def main():
            import runbase  # imported late
            rows = [float(x) for x in open("points.csv").read().split()]
            for e in range(args.epochs):
                runbase.log(loss=sum(rows) * args.lr / (e + 1))

        main()
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")}
    proc = subprocess.run(
        [PY, "train.py", "--lr", "0.5"], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["params"] == {"lr": 0.5, "epochs": 2}
    assert rec["param_sources"] == {"lr": "argparse", "epochs": "argparse"}
    assert [i["path"] for i in rec["inputs"]] == ["points.csv"]
    assert "parsed namespace `args`" in rec["tags"]["capture"]
