"""Data-parallel training launched by ``torchrun`` (the PyTorch DDP tutorial's shape, as
nanoGPT's multi-GPU runs): every rank parses the same arguments, joins the process group
(gloo on CPU), reads the data and trains its shard through DistributedDataParallel; rank
0 alone saves the model."""

import argparse
import csv
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/train.csv")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    with open(args.data, newline="") as f:
        rows = list(csv.DictReader(f))
    x = torch.tensor([[float(r[f"f{i}"]) for i in range(4)] for r in rows])
    y = torch.tensor([int(r["label"]) for r in rows])
    x, y = x[rank::world], y[rank::world]  # this rank's shard

    model = DDP(torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        for i in range(0, len(y), args.batch_size):
            loss = F.cross_entropy(model(x[i : i + args.batch_size]), y[i : i + args.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if rank == 0:
            print(f"epoch {epoch}: loss {loss.item():.4f}")
    if rank == 0:
        torch.save(model.module.state_dict(), "model.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
