#!/usr/bin/env python3
"""Rebuild data/{breast_cancer,iris,wine,digits,diabetes}.csv from a scikit-learn wheel.

Usage: python3 data/convert.py /path/to/scikit_learn-*.whl [output_dir]

Get the wheel with `pip download --no-deps scikit-learn -d /tmp/skl`. Uses only the
standard library and reads the wheel as a zip, so nothing is installed or imported.

scikit-learn's bundled CSVs start with a count line ("569,30,malignant,benign"): the
number of rows, the number of features, then the class names in label order. The
feature names live in sklearn/datasets/_base.py; they are listed here and checked
against that file so a renamed column fails loudly instead of silently drifting.
Numeric fields are copied as text, byte for byte, so nothing is re-rounded.

digits.csv.gz is different: gzipped, no count line, the class is the digit itself (0-9,
which load_digits uses as its target names) and the 64 pixel columns are named
pixel_<row>_<col> by a format string in _base.py rather than listed.

diabetes is the one regression dataset: diabetes_data_raw.csv.gz holds the unscaled features
(load_diabetes(scaled=False)) space-separated, diabetes_target.csv.gz the target, one value a
line in %.18e notation; every target is a whole number, written without the exponent.
"""

import csv
import gzip
import io
import os
import sys
import zipfile

BREAST_CANCER_FEATURES = [
    f"{prefix}{name}{suffix}"
    for prefix, suffix in (("mean ", ""), ("", " error"), ("worst ", ""))
    for name in (
        "radius", "texture", "perimeter", "area", "smoothness", "compactness",
        "concavity", "concave points", "symmetry", "fractal dimension",
    )
]

IRIS_FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]

DIGITS_FEATURES = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]
DIGITS_ROWS = 1797

WINE_FEATURES = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
]

DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DIABETES_ROWS = 442

DATASETS = [
    ("breast_cancer.csv", BREAST_CANCER_FEATURES),
    ("iris.csv", IRIS_FEATURES),
    ("wine_data.csv", WINE_FEATURES),
]

# The bundled file name -> the name written here.
OUTPUT_NAMES = {"wine_data.csv": "wine.csv"}


def convert(wheel: zipfile.ZipFile, name: str, features: list[str]) -> list[list[str]]:
    text = wheel.read(f"sklearn/datasets/data/{name}").decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    n_rows, n_features, *class_names = rows[0]
    data = rows[1:]
    assert int(n_rows) == len(data), f"{name}: count line says {n_rows} rows, found {len(data)}"
    assert int(n_features) == len(features), f"{name}: {n_features} features, expected {len(features)}"
    out = [features + ["target"]]
    for row in data:
        assert len(row) == len(features) + 1, f"{name}: ragged row {row}"
        # The last field is the class index into the count line's class names.
        out.append(row[:-1] + [class_names[int(row[-1])]])
    return out


def convert_digits(wheel: zipfile.ZipFile) -> list[list[str]]:
    text = gzip.decompress(wheel.read("sklearn/datasets/data/digits.csv.gz")).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == DIGITS_ROWS, f"digits: {len(rows)} rows, expected {DIGITS_ROWS}"
    for row in rows:
        assert len(row) == len(DIGITS_FEATURES) + 1, f"digits: ragged row {row}"
        assert row[-1] in "0123456789" and len(row[-1]) == 1, f"digits: class {row[-1]!r}"
    return [DIGITS_FEATURES + ["target"]] + rows


def convert_diabetes(wheel: zipfile.ZipFile) -> list[list[str]]:
    def lines(name: str) -> list[str]:
        text = gzip.decompress(wheel.read(f"sklearn/datasets/data/{name}")).decode("utf-8")
        return text.splitlines()

    data = [line.split() for line in lines("diabetes_data_raw.csv.gz")]
    target = lines("diabetes_target.csv.gz")
    assert len(data) == len(target) == DIABETES_ROWS, f"diabetes: {len(data)}/{len(target)} rows"
    out = [DIABETES_FEATURES + ["target"]]
    for row, value in zip(data, target):
        assert len(row) == len(DIABETES_FEATURES), f"diabetes: ragged row {row}"
        number = float(value)
        assert number == int(number), f"diabetes: target {value!r} is not a whole number"
        out.append(row + [str(int(number))])
    return out


def write(path: str, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    print(f"wrote {path}: {len(rows) - 1} rows, {len(rows[0]) - 1} features")


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(os.path.abspath(__file__))
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        base = wheel.read("sklearn/datasets/_base.py").decode("utf-8")
        for name, features in DATASETS:
            for feature in features:
                assert f'"{feature}"' in base, f"feature name {feature!r} not in sklearn's _base.py"
            out_name = OUTPUT_NAMES.get(name, name)
            write(os.path.join(out_dir, out_name), convert(wheel, name, features))
        assert '"pixel_{}_{}".format(row_idx, col_idx)' in base, "digits feature names changed"
        write(os.path.join(out_dir, "digits.csv"), convert_digits(wheel))
        for feature in DIABETES_FEATURES:
            assert f'"{feature}"' in base, f"feature name {feature!r} not in sklearn's _base.py"
        write(os.path.join(out_dir, "diabetes.csv"), convert_diabetes(wheel))


if __name__ == "__main__":
    main()
