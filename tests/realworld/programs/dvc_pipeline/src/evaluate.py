"""Stage 3: score the model on the test set; DVC reads eval/metrics.json."""

import json
import os
import pickle
import sys

import numpy as np
from sklearn import metrics

if len(sys.argv) != 3:
    sys.stderr.write("usage: python evaluate.py model features\n")
    sys.exit(1)

model_file, input_dir = sys.argv[1], sys.argv[2]
with open(model_file, "rb") as fd:
    model = pickle.load(fd)
data = np.genfromtxt(os.path.join(input_dir, "test.csv"), delimiter=",", skip_header=1, dtype=str)
x, y = data[:, 1:5].astype(float), data[:, 5]
predictions = model.predict(x)

os.makedirs("eval", exist_ok=True)
with open(os.path.join("eval", "metrics.json"), "w") as fd:
    json.dump(
        {"accuracy": metrics.accuracy_score(y, predictions),
         "f1_macro": metrics.f1_score(y, predictions, average="macro")},
        fd, indent=2,
    )  # fmt: skip
