"""A small MLP on a CSV of features, in the style of pytorch/examples: argparse, a fixed
seed, a checkpoint (model + optimizer + epoch) saved every epoch, ``--resume`` to continue
from it, and the last checkpoint loaded back at the end to evaluate what was saved."""

import argparse
import csv
import json
import os
import pickle

import torch
import torch.nn.functional as F
from torch import nn

import runbase


class Net(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def load_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = torch.tensor([[float(r[f"f{i}"]) for i in range(4)] for r in rows])
    y = torch.tensor([int(r["label"]) for r in rows])
    return x, y


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="tabular MLP with checkpoints")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--gamma", type=float, default=0.7, help="learning rate step gamma")
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default="data/train.csv")
    parser.add_argument("--checkpoint", default="checkpoints/last.pt")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    args = parser.parse_args()
    try:  # a machine's own settings (a data mount, say), when it has any
        with open("train.local.json") as f:
            vars(args).update(json.load(f))
    except FileNotFoundError:
        pass

    torch.manual_seed(args.seed)
    x, y = load_csv(args.data)
    model = Net(args.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.gamma)
    start = 0
    if args.resume:
        state = torch.load(args.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"] + 1
        print(f"resumed from {args.checkpoint} at epoch {start}")

    history = []
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(start, start + args.epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=g).split(args.batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
        val_loss, acc = evaluate(model, x, y)
        history.append({"epoch": epoch, "loss": val_loss, "acc": acc})
        runbase.log(loss=val_loss, acc=acc, step=epoch)
        print(f"epoch {epoch}: loss {val_loss:.4f} acc {acc:.3f}")
        os.makedirs(os.path.dirname(args.checkpoint), exist_ok=True)
        torch.save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            args.checkpoint,
        )

    with open("history.pkl", "wb") as f:
        pickle.dump(history, f)
    # evaluate what was saved, not what is in memory (as a separate eval script would)
    restored = Net(args.hidden)
    restored.load_state_dict(torch.load(args.checkpoint)["model"])
    with open("history.pkl", "rb") as f:
        assert pickle.load(f) == history
    val_loss, acc = evaluate(restored, x, y)
    runbase.summary(final_loss=val_loss, final_acc=acc)


if __name__ == "__main__":
    main()
