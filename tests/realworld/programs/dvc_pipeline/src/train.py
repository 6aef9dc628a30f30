"""Stage 2: fit a random forest on the prepared training set, pickle it."""

import os
import pickle
import sys

import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier

with open("params.yaml") as fd:
    params = yaml.safe_load(fd)["train"]

if len(sys.argv) != 3:
    sys.stderr.write("usage: python train.py features model\n")
    sys.exit(1)

input_dir, output = sys.argv[1], sys.argv[2]


def load(path):
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=str)
    return data[:, 1:5].astype(float), data[:, 5]


x, y = load(os.path.join(input_dir, "train.csv"))
clf = RandomForestClassifier(
    n_estimators=params["n_est"],
    min_samples_split=params["min_split"],
    max_depth=params["max_depth"],
    n_jobs=1,
    random_state=params["seed"],
)
clf.fit(x, y)
with open(output, "wb") as fd:
    pickle.dump(clf, fd)
