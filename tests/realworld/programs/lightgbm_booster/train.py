"""Regression with LightGBM's native API, as in microsoft/LightGBM's examples/python-guide:
a Dataset with a validation set, ``lgb.train`` with early stopping and a log callback, the
model saved to a text file, then loaded into a new ``Booster`` to predict."""

import argparse

import lightgbm as lgb
import numpy as np
import pandas as pd


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/housing.csv")
    parser.add_argument("--num-leaves", type=int, default=7)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--num-boost-round", type=int, default=30)
    parser.add_argument("--output", default="model.txt")
    args = parser.parse_args()

    df = pd.read_csv(args.data)
    train, valid = df.iloc[:240], df.iloc[240:]
    features = ["rooms", "age", "distance", "income"]
    lgb_train = lgb.Dataset(train[features], train["price"])
    lgb_eval = lgb.Dataset(valid[features], valid["price"], reference=lgb_train)
    params = {
        "objective": "regression",
        "metric": ["l2", "l1"],
        "num_leaves": args.num_leaves,
        "learning_rate": args.learning_rate,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 5,
        "seed": 3,
        "num_threads": 1,
        "verbose": -1,
    }
    gbm = lgb.train(
        params,
        lgb_train,
        num_boost_round=args.num_boost_round,
        valid_sets=[lgb_eval],
        callbacks=[lgb.early_stopping(stopping_rounds=5), lgb.log_evaluation(10)],
    )
    gbm.save_model(args.output)

    bst = lgb.Booster(model_file=args.output)
    pred = bst.predict(valid[features], num_iteration=gbm.best_iteration)
    rmse = float(np.sqrt(((pred - valid["price"]) ** 2).mean()))
    pd.DataFrame({"price": valid["price"], "pred": pred}).to_csv("predictions.csv", index=False)
    print(f"rmse of the reloaded model: {rmse:.3f}")


if __name__ == "__main__":
    main()
