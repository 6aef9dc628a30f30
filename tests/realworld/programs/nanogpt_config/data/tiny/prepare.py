"""Character-level encoding of input.txt: train.bin and val.bin hold uint16 token ids,
meta.pkl the vocabulary (nanoGPT's data/shakespeare_char/prepare.py, shortened)."""

import os
import pickle

import numpy as np

here = os.path.dirname(__file__)
with open(os.path.join(here, "input.txt")) as f:
    data = f.read()
chars = sorted(set(data))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = dict(enumerate(chars))
n = len(data)
train_ids = np.array([stoi[c] for c in data[: int(n * 0.9)]], dtype=np.uint16)
val_ids = np.array([stoi[c] for c in data[int(n * 0.9) :]], dtype=np.uint16)
print(f"vocab size {len(chars)}; train has {len(train_ids)} tokens, val {len(val_ids)}")
train_ids.tofile(os.path.join(here, "train.bin"))
val_ids.tofile(os.path.join(here, "val.bin"))
with open(os.path.join(here, "meta.pkl"), "wb") as f:
    pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
