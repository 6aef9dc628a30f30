"""Binary classification with XGBoost's native API, as in dmlc/xgboost's demo/guide-python:
DMatrix from the data files, a params dict, ``xgb.train`` with a watchlist, then the booster
saved, loaded back into a fresh ``Booster`` and checked to predict the same."""

import argparse
import json

import numpy as np
import xgboost as xgb


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return xgb.DMatrix(data[:, :-1], label=data[:, -1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", default="data/train.csv")
    parser.add_argument("--test", default="data/test.csv")
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--num-round", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="model.json")
    args = parser.parse_args()

    dtrain, dtest = load(args.train), load(args.test)
    param = {
        "max_depth": args.max_depth,
        "eta": args.eta,
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "error"],
        "seed": args.seed,
        "nthread": 1,
    }
    watchlist = [(dtrain, "train"), (dtest, "eval")]
    bst = xgb.train(param, dtrain, num_boost_round=args.num_round, evals=watchlist)
    bst.save_model(args.model)

    # load the saved model back, as a serving or evaluation script does
    bst2 = xgb.Booster(model_file=args.model)
    preds = bst2.predict(dtest)
    assert np.allclose(preds, bst.predict(dtest))
    labels = dtest.get_label()
    error = float(((preds > 0.5) != labels).mean())
    with open("eval.json", "w") as f:
        json.dump({"error": error}, f)
    print(f"test error {error:.4f}")


if __name__ == "__main__":
    main()
