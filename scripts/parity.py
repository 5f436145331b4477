#!/usr/bin/env python3
"""scikit-learn's side of the parity table: the same split, matched hyperparameters.

Usage: parity.py CASES.json > RESULTS.json

CASES.json is a list of cases, each what the trainer plugin was given and what it reported:
  {"id", "dataset", "task", "train", "test", "target", "model": {"family", "hyperparameters"},
   "features": {"scale": bool}, "ours": {metric: value}}
train/test are the files the csv plugin's extract_data wrote, so both sides see the same rows.
For each case this fits the scikit-learn estimator that matches the family, scores the test
split with the same metrics, and prints the cases back with "sklearn": {metric: value}.

Hyperparameters are mapped by meaning, not by name; where the two libraries' definitions
differ the mapping says why (e.g. smartcore's L2 `alpha` is scikit-learn's 1 / C).
"""

import csv
import json
import sys

import numpy as np
from sklearn.cluster import KMeans
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
    silhouette_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor


def read(path, target):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    t = header.index(target)
    x = np.array([[float(v) for i, v in enumerate(r) if i != t] for r in body])
    y = [r[t] for r in body]
    return x, y


def max_features(value):
    # Ours: "sqrt", "all" or a count; scikit-learn: "sqrt", None (all) or a count.
    return None if value == "all" else value


def estimator(task, family, p):
    seed = p.get("seed", 0)
    if family == "logistic_regression":
        # smartcore minimises sum(loss) + alpha/2 * |w|^2; scikit-learn C * sum(loss) + |w|^2/2.
        alpha = p.get("alpha", 1.0)
        return LogisticRegression(C=1.0 / alpha if alpha > 0 else np.inf, max_iter=10_000)
    if family == "linear_regression":
        return LinearRegression()
    if family == "ridge":
        return Ridge(alpha=p.get("alpha", 1.0))
    if family == "kmeans":
        return KMeans(n_clusters=p.get("k", 8), max_iter=p.get("max_iter", 300),
                      random_state=seed, n_init=1)
    tree = dict(max_depth=p.get("max_depth"), min_samples_leaf=p.get("min_samples_leaf", 1),
                min_samples_split=p.get("min_samples_split", 2))
    classify = task == "classification"
    if family == "decision_tree":
        if classify:
            return DecisionTreeClassifier(criterion=p.get("criterion", "gini"), random_state=seed,
                                          **tree)
        return DecisionTreeRegressor(random_state=seed, **tree)
    if family == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        default = "sqrt" if classify else "all"
        return cls(n_estimators=p.get("n_estimators", 100), random_state=seed,
                   max_features=max_features(p.get("max_features", default)), **tree)
    if family == "gradient_boosting":
        cls = GradientBoostingClassifier if classify else GradientBoostingRegressor
        return cls(n_estimators=p.get("n_estimators", 100), learning_rate=p.get("learning_rate", 0.1),
                   max_depth=p.get("max_depth", 3), random_state=seed)
    raise SystemExit(f"parity.py: no scikit-learn estimator for family {family!r}")


def score(task, model, x, y, classes):
    if task == "classification":
        proba = model.predict_proba(x)
        labels = [classes[i] for i in np.argmax(proba, axis=1)]
        binary = len(classes) == 2
        auc = (roc_auc_score([c == classes[1] for c in y], proba[:, 1]) if binary
               else roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
        return {
            "accuracy": accuracy_score(y, labels),
            "f1_macro": f1_score(y, labels, average="macro", labels=classes, zero_division=0),
            "roc_auc": auc,
            "log_loss": log_loss(y, proba, labels=classes),
        }
    if task == "regression":
        pred = model.predict(x)
        return {
            "rmse": root_mean_squared_error(y, pred),
            "mae": mean_absolute_error(y, pred),
            "r2": r2_score(y, pred),
        }
    clusters = model.predict(x)
    return {
        "inertia": float(-model.score(x)),
        "silhouette": silhouette_score(x, clusters) if len(set(clusters)) > 1 else None,
    }


def run(case):
    task, family = case["task"], case["model"]["family"]
    params = case["model"].get("hyperparameters", {})
    x_train, y_train = read(case["train"], case["target"])
    x_test, y_test = read(case["test"], case["target"])
    model = estimator(task, family, params)
    if case.get("features", {}).get("scale"):
        model = make_pipeline(StandardScaler(), model)
    if task == "regression":
        y_train, y_test = [float(v) for v in y_train], [float(v) for v in y_test]
        model.fit(x_train, y_train)
        classes = None
    elif task == "classification":
        model.fit(x_train, y_train)
        # The trainer's class order (numeric labels sort as numbers), so columns line up.
        classes = case["ours"].get("classes") or sorted(set(y_train))
    else:
        model.fit(x_train)
        classes = None
    return {**case, "sklearn": score(task, model, x_test, y_test, classes)}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
