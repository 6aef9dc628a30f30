"""Sentiment classification of short reviews with a scikit-learn text pipeline, the way
most tutorials and Kaggle notebooks do it: pandas reads the CSV, a Pipeline of
TfidfVectorizer (an explicit ``token_pattern``) and LogisticRegression, a GridSearchCV
over the pipeline's params, then the best model dumped with joblib, loaded back and
scored on the held-out split."""

import argparse
import json

import joblib
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline


def main():
    parser = argparse.ArgumentParser(description="tf-idf + logistic regression")
    parser.add_argument("--data", default="data/reviews.csv")
    parser.add_argument("--text-key", default="review", help="column holding the text")
    parser.add_argument("--label-key", default="sentiment", help="column holding the label")
    parser.add_argument("--token-pattern", default=r"(?u)\b\w\w+\b")
    parser.add_argument("--max-features", type=int, default=200)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--model", default="model.joblib")
    args = parser.parse_args()

    df = pd.read_csv(args.data)
    x_train, x_test, y_train, y_test = train_test_split(
        df[args.text_key], df[args.label_key], test_size=args.test_size,
        random_state=args.random_state, stratify=df[args.label_key],
    )  # fmt: skip
    pipe = Pipeline(
        [
            ("tfidf", TfidfVectorizer(token_pattern=args.token_pattern,
                                      max_features=args.max_features, sublinear_tf=True)),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )  # fmt: skip
    grid = {"tfidf__ngram_range": [(1, 1), (1, 2)], "clf__C": [0.5, 5.0]}
    search = GridSearchCV(pipe, grid, cv=args.cv, scoring="accuracy", n_jobs=1)
    search.fit(x_train, y_train)
    print("best params:", search.best_params_)
    joblib.dump(search.best_estimator_, args.model)

    model = joblib.load(args.model)
    accuracy = model.score(x_test, y_test)
    with open("metrics.json", "w") as f:
        json.dump({"accuracy": accuracy, "best_params": str(search.best_params_)}, f)
    print(f"held-out accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
