"""A nanoGPT-style script: module globals overridden by ``exec(open("configurator.py")
.read())`` from a config file and ``--key=value`` arguments, uint16 memmaps made by a
separate prepare step, the best checkpoint saved and resumed from. The params are the
final config with its types, ``--key=value`` values are typed (``False`` is a bool),
the memmapped data are inputs with the prepare run's hashes, and resuming makes a chain
prepare -> train -> resume in ``trace``, without a loop."""

from __future__ import annotations

from pathlib import Path

from rwkit import (
    assert_files,
    assert_no_redaction,
    assert_no_self_inputs,
    b3,
    lineage,
    make_project,
    model_metrics,
    rb,
    reproduce,
    run,
)

CONFIG = {
    # train.py's defaults, then config/train_tiny.py, then the command line
    "out_dir": "out-tiny", "eval_interval": 10, "eval_iters": 5, "log_interval": 1,
    "always_save_checkpoint": False, "init_from": "scratch", "runbase_log": True,
    "dataset": "tiny", "batch_size": 8, "block_size": 16, "n_embd": 24, "dropout": 0.0,
    "learning_rate": 0.02, "max_iters": 20, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99,
    "grad_clip": 1.0, "seed": 1337,
}  # fmt: skip
DATA = ["data/tiny/train.bin", "data/tiny/val.bin", "data/tiny/meta.pkl"]


def test_configurator_exec_and_resume(tmp_path: Path) -> None:
    root = make_project(tmp_path, "nanogpt_config", ignore=["*.bin", "*.pkl", "out-*/"])
    prepare = run(root, "python", "data/tiny/prepare.py")
    data = {p: b3(root / p) for p in DATA}
    assert_files(prepare, "inputs", {"data/tiny/input.txt": b3(root / "data/tiny/input.txt")})
    assert_files(prepare, "outputs", data)

    train = run(root, "python", "train.py", "config/train_tiny.py",
                "--max_iters=20", "--learning_rate=0.02")  # fmt: skip
    assert train["params"] == CONFIG  # runbase.params(config), where nanoGPT has wandb
    assert_no_redaction(train)
    assert_no_self_inputs(train)
    # the config file and configurator.py are code (in the snapshot), not data inputs
    tree = {"configurator.py", "config/train_tiny.py", "train.py"}
    assert tree <= set(_code_files(root, train))
    assert_files(train, "inputs", data)
    ckpt_v1 = b3(root / "out-tiny/ckpt.pt")
    assert_files(train, "outputs", {"out-tiny/ckpt.pt": ckpt_v1})
    m = model_metrics(train)
    assert set(m) == {"train/loss", "val/loss"} and m["val/loss"]["count"] == 3

    resume = run(root, "python", "train.py", "config/train_tiny.py",
                 "--init_from=resume", "--max_iters=30")  # fmt: skip
    assert resume["params"] == {**CONFIG, "init_from": "resume", "max_iters": 30,
                                "learning_rate": 0.01}  # fmt: skip
    assert_no_self_inputs(resume)
    ckpt_v2 = b3(root / "out-tiny/ckpt.pt")
    assert ckpt_v2 != ckpt_v1
    assert_files(resume, "inputs", {**data, "out-tiny/ckpt.pt": ckpt_v1})
    assert_files(resume, "outputs", {"out-tiny/ckpt.pt": ckpt_v2})
    assert model_metrics(resume)["val/loss"]["step"] == 30
    assert lineage(root, "out-tiny/ckpt.pt") == [resume["id"], prepare["id"], train["id"]]

    # the resumed run re-runs from the stored first checkpoint, to the same numbers
    code, verdict = reproduce(root, resume["id"])
    assert (code, verdict["verdict"]) == (0, "reproduced"), verdict
    assert verdict["not_restorable"] == []

    # unmodified nanoGPT (no runbase call): the command line's --key=value, typed
    plain = run(root, "python", "train.py", "config/train_tiny.py", "--runbase_log=False",
                "--max_iters=10", "--dropout=0.1")  # fmt: skip
    assert plain["params"] == {"runbase_log": False, "max_iters": 10, "dropout": 0.1}
    assert_files(plain, "inputs", data)


def _code_files(root: Path, rec: dict) -> list[str]:
    """The Python files of the run's code snapshot, as `runbase checkout` restores them."""
    into = root.parent / f"checkout-{rec['id']}"
    rb(root, "checkout", rec["id"], "--into", str(into))
    return [str(p.relative_to(into)) for p in into.rglob("*.py")]
