"""Stage 1: split the raw data into train and test sets (data/prepared/)."""

import os
import random
import sys

import yaml

with open("params.yaml") as fd:
    params = yaml.safe_load(fd)["prepare"]

if len(sys.argv) != 2:
    sys.stderr.write("usage: python prepare.py data-file\n")
    sys.exit(1)

split = params["split"]
random.seed(params["seed"])
out_dir = os.path.join("data", "prepared")
os.makedirs(out_dir, exist_ok=True)

with open(sys.argv[1]) as fd_in:
    header, *rows = fd_in.read().splitlines()
random.shuffle(rows)
n_test = int(len(rows) * split)
for name, part in (("test.csv", rows[:n_test]), ("train.csv", rows[n_test:])):
    with open(os.path.join(out_dir, name), "w") as fd_out:
        fd_out.write("\n".join([header, *part]) + "\n")
