"""Train a tiny character-level language model, shaped like nanoGPT's train.py: settings
are module globals, overridden by configurator.py from a config file and ``--key=value``
arguments; the data are uint16 memmaps; the best checkpoint goes to out_dir/ckpt.pt, and
``--init_from=resume`` continues from it. Instead of wandb, the run logs to runbase."""

import os
import pickle
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# -----------------------------------------------------------------------------
# default config values
out_dir = "out"
eval_interval = 100
eval_iters = 20
log_interval = 1
always_save_checkpoint = True
init_from = "scratch"  # 'scratch' or 'resume'
runbase_log = True  # log to runbase (where nanoGPT has wandb_log)
dataset = "shakespeare_char"
batch_size = 12
block_size = 64
n_embd = 64
dropout = 0.0
learning_rate = 6e-4
max_iters = 200
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.99
grad_clip = 1.0
seed = 1337
# -----------------------------------------------------------------------------
config_keys = [
    k
    for k, v in globals().items()
    if not k.startswith("_") and isinstance(v, (int, float, bool, str))
]
exec(open("configurator.py").read())  # noqa: SIM115 - overrides from the command line
config = {k: globals()[k] for k in config_keys}  # useful for logging
# -----------------------------------------------------------------------------

torch.manual_seed(seed)
data_dir = os.path.join("data", dataset)


def get_batch(split):
    # recreate the memmap every batch to avoid a memory leak, as nanoGPT does
    path = os.path.join(data_dir, "train.bin" if split == "train" else "val.bin")
    data = np.memmap(path, dtype=np.uint16, mode="r")
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in ix])
    y = torch.stack(
        [torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix]
    )
    return x, y


with open(os.path.join(data_dir, "meta.pkl"), "rb") as f:
    meta_vocab_size = pickle.load(f)["vocab_size"]


class TinyLM(nn.Module):
    """A bigram-plus-context model: embeddings, one causal averaging layer, a head."""

    def __init__(self, vocab_size, n_embd, block_size, dropout):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.mix = nn.Linear(n_embd, n_embd)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t))
        causal = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1).unsqueeze(1)
        h = h + self.drop(F.gelu(self.mix(causal @ h)))
        logits = self.head(h)
        loss = (
            None
            if targets is None
            else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        )
        return logits, loss


iter_num = 0
best_val_loss = 1e9
model_args = dict(vocab_size=meta_vocab_size, n_embd=n_embd, block_size=block_size, dropout=dropout)
if init_from == "scratch":
    model = TinyLM(**model_args)
elif init_from == "resume":
    print(f"Resuming training from {out_dir}")
    checkpoint = torch.load(os.path.join(out_dir, "ckpt.pt"), map_location="cpu")
    model_args = checkpoint["model_args"]
    model = TinyLM(**model_args)
    model.load_state_dict(checkpoint["model"])
    iter_num = checkpoint["iter_num"]
    best_val_loss = checkpoint["best_val_loss"]
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(beta1, beta2),
                              weight_decay=weight_decay)  # fmt: skip
if init_from == "resume":
    optimizer.load_state_dict(checkpoint["optimizer"])
    checkpoint = None

if runbase_log:
    import runbase

    runbase.params(config)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            x, y = get_batch(split)
            losses[k] = model(x, y)[1].item()
        out[split] = losses.mean().item()
    model.train()
    return out


os.makedirs(out_dir, exist_ok=True)
x, y = get_batch("train")
t0 = time.time()
while True:
    if iter_num % eval_interval == 0:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if runbase_log:
            runbase.log(**{"train/loss": losses["train"], "val/loss": losses["val"]}, step=iter_num)
        if losses["val"] < best_val_loss or always_save_checkpoint:
            best_val_loss = losses["val"]
            if iter_num > 0:
                checkpoint = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "model_args": model_args,
                    "iter_num": iter_num,
                    "best_val_loss": best_val_loss,
                    "config": config,
                }
                print(f"saving checkpoint to {out_dir}")
                torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))
    if iter_num >= max_iters:
        break
    _, loss = model(x, y)
    x, y = get_batch("train")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if iter_num % log_interval == 0:
        dt, t0 = time.time() - t0, time.time()
        print(f"iter {iter_num}: loss {loss.item():.4f}, time {dt * 1000:.2f}ms")
    iter_num += 1
