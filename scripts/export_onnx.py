#!/usr/bin/env python3
"""Train scikit-learn models on the bundled datasets and export them to ONNX with skl2onnx,
each beside scikit-learn's own predictions for the same rows, for the scorer plugin's tests.

Usage: tools/ml-venv/bin/python scripts/export_onnx.py OUT_DIR   (`make ml-tools` makes the venv)

Writes into OUT_DIR:
  NAME.onnx           the model: one float input `X` of shape [N, features], zipmap off
  NAME.expected.csv   scikit-learn's predictions for every row of its dataset, in file order:
                      `prediction` (the label, or the value), then `probability_<class>` per
                      class in the model's class order (classifiers)
  diabetes.csv        scikit-learn's bundled diabetes data (the regressors' dataset) as the
                      other datasets are laid out: a header row, `target` last
  models.json         one entry per model: file, dataset, features, kind, classes, what the
                      scorer is expected to do with it

The classification datasets are read from the repository's data/*.csv (header row, `target`
last, the class names as text), so the rows the models see are exactly those the scorer reads.
Every model is fitted with a fixed random_state: the same versions give the same files.
"""

import csv
import json
import os
import sys
import warnings

import numpy as np
import onnx
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import SVC

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
# ai.onnx.ml 3 keeps trees as TreeEnsembleClassifier/Regressor (5 replaces them with
# TreeEnsemble); the default domain at 15 is within what tract implements.
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}


def read_dataset(path):
    """Features as float64 exactly as written, the target column as text."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    if header[-1] != "target":
        sys.exit(f"{path}: the last column is {header[-1]!r}, not 'target'")
    x = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float64)
    y = np.array([r[-1] for r in rows])
    return header[:-1], x, y


def write_diabetes(out_dir):
    """scikit-learn's diabetes data (scaled, as load_diabetes returns it) as OUT_DIR/diabetes.csv.

    repr() of a float64 parses back to the same float64, so the scorer reads the values the
    regressors were fitted and evaluated on."""
    bunch = load_diabetes()
    path = os.path.join(out_dir, "diabetes.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(bunch.feature_names) + ["target"])
        for row, target in zip(bunch.data, bunch.target):
            w.writerow([repr(float(v)) for v in row] + [repr(float(target))])
    return read_dataset(path)


def export(model, n_features, path, zipmap=False):
    with warnings.catch_warnings():
        # skl2onnx reads SVC's probA_/probB_, which scikit-learn 1.9 deprecates loudly.
        warnings.simplefilter("ignore", FutureWarning)
        onx = convert_sklearn(
            model,
            initial_types=[("X", FloatTensorType([None, n_features]))],
            options={type(model): {"zipmap": zipmap}} if hasattr(model, "classes_") else None,
            target_opset=TARGET_OPSET,
        )
    onnx.checker.check_model(onx)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    return onx


def write_expected(model, x, path):
    """scikit-learn's predictions on the float64 features, as a user of the model gets them."""
    prediction = model.predict(x)
    header = ["prediction"]
    columns = [[str(v) if hasattr(model, "classes_") else repr(float(v)) for v in prediction]]
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(x)
        for i, cls in enumerate(model.classes_):
            header.append(f"probability_{cls}")
            columns.append([repr(float(p)) for p in probabilities[:, i]])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(zip(*columns))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)

    datasets = {
        name: read_dataset(os.path.join(DATA_DIR, name))
        for name in ("iris.csv", "breast_cancer.csv", "digits.csv")
    }
    datasets["diabetes.csv"] = write_diabetes(out_dir)

    # name, dataset, estimator, how the target is typed, what the scorer should do with it.
    # digits keeps integer labels (int64 label tensors); the others keep class names (strings).
    specs = [
        ("iris_logreg", "iris.csv", LogisticRegression(max_iter=1000), str, "predict"),
        (
            "iris_forest",
            "iris.csv",
            RandomForestClassifier(n_estimators=30, random_state=0),
            str,
            "predict",
        ),
        (
            "breast_cancer_gboost",
            "breast_cancer.csv",
            GradientBoostingClassifier(n_estimators=50, random_state=0),
            str,
            "predict",
        ),
        (
            "breast_cancer_forest",
            "breast_cancer.csv",
            RandomForestClassifier(n_estimators=30, random_state=0),
            str,
            "predict",
        ),
        (
            "breast_cancer_logreg",
            "breast_cancer.csv",
            LogisticRegression(max_iter=10000),
            str,
            "predict",
        ),
        # Small: tract 0.23.9 walks an ensemble's leaf table from its start for every leaf it
        # reaches, so a forest's cost per row grows with its total leaves (docs/scorer.md).
        (
            "digits_forest",
            "digits.csv",
            RandomForestClassifier(n_estimators=10, max_depth=10, random_state=0),
            int,
            "predict",
        ),
        ("digits_logreg", "digits.csv", LogisticRegression(max_iter=5000), int, "predict"),
        ("diabetes_ridge", "diabetes.csv", Ridge(alpha=0.5), float, "predict"),
        # Operators tract does not implement (TreeEnsembleRegressor, SVMClassifier): the
        # scorer must say so.
        (
            "diabetes_forest",
            "diabetes.csv",
            RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0),
            float,
            "UnsupportedModel",
        ),
        ("iris_svc", "iris.csv", SVC(), str, "UnsupportedModel"),
    ]

    index = []
    for name, dataset, model, target_type, expect in specs:
        features, x, y = datasets[dataset]
        y = y.astype(float) if target_type is float else y.astype(target_type)
        model.fit(x, y)
        onx = export(model, len(features), os.path.join(out_dir, f"{name}.onnx"))
        write_expected(model, x, os.path.join(out_dir, f"{name}.expected.csv"))
        index.append(
            {
                "name": name,
                "model": f"{name}.onnx",
                "expected": f"{name}.expected.csv",
                "dataset": dataset,
                "features": features,
                "rows": len(x),
                "kind": "classifier" if hasattr(model, "classes_") else "regressor",
                "classes": [str(c) for c in getattr(model, "classes_", [])],
                "estimator": type(model).__name__,
                "operators": sorted({n.op_type for n in onx.graph.node}),
                "expect": expect,
            }
        )
        print(f"wrote {name}.onnx: {type(model).__name__} on {dataset}, {len(x)} rows")

    # The same logistic regression with ZipMap left on: its `probabilities` output is a
    # sequence of maps, which the scorer refuses, naming the export option.
    features, x, y = datasets["iris.csv"]
    model = LogisticRegression(max_iter=1000).fit(x, y)
    export(model, len(features), os.path.join(out_dir, "iris_zipmap.onnx"), zipmap=True)
    index.append(
        {
            "name": "iris_zipmap",
            "model": "iris_zipmap.onnx",
            "dataset": "iris.csv",
            "features": features,
            "rows": len(x),
            "kind": "classifier",
            "classes": [str(c) for c in model.classes_],
            "estimator": "LogisticRegression",
            "expect": "UnsupportedModel",
        }
    )

    versions = {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }
    with open(os.path.join(out_dir, "models.json"), "w", encoding="utf-8") as f:
        json.dump({"versions": versions, "models": index}, f, indent=2)
        f.write("\n")
    print(f"{len(index)} models in {out_dir} ({', '.join(f'{k} {v}' for k, v in versions.items())})")


if __name__ == "__main__":
    main()
