"""scikit-learn on exactly the split the csv plugin made, for comparison with the trainer plugin.

Usage: python scripts/sklearn_baseline.py ARTIFACTS/dataset/train.csv ARTIFACTS/dataset/test.csv
(`make baseline` runs the csv plugin for the demo split and then this script.)
"""
import csv
import sys

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    return [[float(v) for v in r[:-1]] for r in rows], [r[-1] for r in rows], header


x_train, y_train, _ = load(sys.argv[1])
x_test, y_test, _ = load(sys.argv[2])
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
model.fit(x_train, y_train)
pred = model.predict(x_test)
print(f"scikit-learn LogisticRegression (StandardScaler, C=1.0, lbfgs) on {len(x_train)}/{len(x_test)} rows")
print(f"test accuracy {accuracy_score(y_test, pred):.4f}")
print(f"macro F1      {f1_score(y_test, pred, average='macro'):.4f}")
print(f"log loss      {log_loss(y_test, model.predict_proba(x_test), labels=model.classes_):.4f}")
