"""Data read in worker processes: a spawn-context multiprocessing Pool parses one file per
sample (ImageFolder style) into shards, then a torch DataLoader with two workers streams
the shards (only the workers open them). Every file a worker read is an input of the run,
with its hash; the shards chain the two runs in ``trace``."""

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
    run,
)


def test_files_read_by_worker_processes_are_inputs(tmp_path: Path) -> None:
    root = make_project(tmp_path, "mp_loader", ignore=["data/", "model.pt"])
    raw = sorted(str(p.relative_to(root)) for p in (root / "data/raw").rglob("*.txt"))
    assert len(raw) == 20
    raw_hashes = {p: b3(root / p) for p in raw}

    prep = run(root, "python", "preprocess.py")
    assert prep["params"] == {"raw": "data/raw", "out": "data/shards", "shards": 4, "workers": 2}
    assert_files(prep, "inputs", raw_hashes)  # each read by a spawned pool worker
    shards = {
        f"data/shards/shard-{i}.npy": b3(root / f"data/shards/shard-{i}.npy") for i in range(4)
    }
    assert_files(prep, "outputs", shards)

    train = run(root, "python", "train.py", "--epochs", "2")
    assert train["params"] == {"shards": "data/shards/shard-*.npy", "num_workers": 2,
                               "batch_size": 4, "epochs": 2, "lr": 0.1}  # fmt: skip
    assert_no_redaction(train)
    assert_files(train, "inputs", shards)  # opened only by the DataLoader's workers
    assert_files(train, "outputs", {"model.pt": b3(root / "model.pt")})
    for rec in (prep, train):
        assert rec["status"] == "finished"
        assert_no_self_inputs(rec)
    assert model_metrics(train)["loss"]["count"] == 12  # 2 epochs x 6 batches
    assert lineage(root, "model.pt") == [train["id"], prep["id"]]
