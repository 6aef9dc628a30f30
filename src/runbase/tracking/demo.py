"""``runbase demo``: a small project (git repo, data file, argparse training script)
with a few tracked runs, on the embedded default store."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

TRAIN_PY = '''"""Fit y = w*x + b by gradient descent on data.csv."""
import argparse
import csv
import math

import runbase  # optional: argparse params, stdout and the code are captured anyway

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--data", default="data.csv")
args = parser.parse_args()

with open(args.data) as f:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]

w = b = 0.0
for epoch in range(args.epochs):
    gw = sum(2 * (w * x + b - y) * x for x, y in rows) / len(rows)
    gb = sum(2 * (w * x + b - y) for x, y in rows) / len(rows)
    w, b = w - args.lr * gw, b - args.lr * gb
    loss = sum((w * x + b - y) ** 2 for x, y in rows) / len(rows)
    runbase.log(loss=loss, w=w, step=epoch)
    print(f"epoch {epoch:2d}  loss {loss:.4f}")

runbase.summary(rmse=math.sqrt(loss))
print(f"w={w:.3f} b={b:.3f}")
'''


def _data() -> str:
    lines = ["x,y"]
    for i in range(50):
        x = i / 10
        lines.append(f"{x:.2f},{3 * x + 1 + ((i * 7919) % 13 - 6) / 20:.3f}")
    return "\n".join(lines) + "\n"


def run_demo(directory: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Create the project, run three tracked runs (one with an uncommitted edit), list them."""
    root = Path(directory or tempfile.mkdtemp(prefix="runbase-demo-")).absolute()
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN_PY)
    (root / "data.csv").write_text(_data())
    git = ["git", "-c", "user.name=runbase demo", "-c", "user.email=demo@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "add", "train.py", "data.csv"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "-m", "demo project"], check=True)
    env = {**os.environ}
    env.pop("RUNBASE_DIR", None)
    echo(f"demo project: {root}\n")
    for i, (lr, epochs) in enumerate(((0.01, 20), (0.05, 20), (0.05, 40))):
        if i == 2:  # an uncommitted edit: recorded in the run's patch
            text = (
                (root / "train.py")
                .read_text()
                .replace("w = b = 0.0", "w, b = 1.0, 0.0  # warm start")
            )
            (root / "train.py").write_text(text)
        cmd = [
            sys.executable,
            "-m",
            "runbase",
            "run",
            "--name",
            f"demo-{i + 1}",
            "--",
            sys.executable,
            "train.py",
            "--lr",
            str(lr),
            "--epochs",
            str(epochs),
        ]
        echo(f"$ runbase run -- python train.py --lr {lr} --epochs {epochs}")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout else []
        echo("  " + (tail[0] if tail else proc.stderr.strip()[-300:]))
        if proc.returncode != 0:
            raise RuntimeError(f"demo run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    echo("")
    out = subprocess.run(
        [sys.executable, "-m", "runbase", "ls"], cwd=root, env=env, capture_output=True, text=True
    )
    echo(out.stdout.rstrip())
    echo(f"\nstore: {root / '.runbase'}")
    echo(
        f"next:  cd {root} && runbase show && runbase show --json | head -50 && runbase metrics latest loss"
    )
    return root
