"""Train on .npy shards streamed by a torch IterableDataset with two DataLoader worker
processes, each reading its own share of the shards (the WebDataset/sharded pattern):
only the workers open the data files."""

import argparse
import glob

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import runbase


class Shards(IterableDataset):
    def __init__(self, pattern: str) -> None:
        self.files = sorted(glob.glob(pattern))

    def __iter__(self):
        info = get_worker_info()
        mine = self.files if info is None else self.files[info.id :: info.num_workers]
        for path in mine:
            for row in np.load(path):
                yield torch.from_numpy(row[:-1]), int(row[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", default="data/shards/shard-*.npy")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torch.nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loader = DataLoader(Shards(args.shards), batch_size=args.batch_size,
                        num_workers=args.num_workers)  # fmt: skip
    step = 0
    for _ in range(args.epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            runbase.log(loss=loss.item(), step=step)
            step += 1
    torch.save(model.state_dict(), "model.pt")


if __name__ == "__main__":
    main()
