"""The features plugin's operations on the bundled datasets and on small tables made here,
natively (the same code the component runs)."""

import csv
import math
import os
import statistics
import tempfile
import unittest

import app as features
from mlx_plugin import UNCAUGHT_EXCEPTION
from mlx_plugin.testing import FakeHost, invoke

from tests import DATA


def read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


class EngineerFeatures(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.dir.name, "out", "features.csv")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as file:
            file.write(text)
        return path

    def run_op(self, host=None, **input):
        input.setdefault("output", self.out)
        return invoke(features.app, "engineer_features", input, host=host)

    def test_iris_is_standardised_column_by_column(self):
        host = FakeHost()
        out = self.run_op(host, source=os.path.join(DATA, "iris.csv"), target="target").unwrap()
        header, rows = read_csv(self.out)
        source_header, source_rows = read_csv(os.path.join(DATA, "iris.csv"))
        self.assertEqual(header, source_header)
        self.assertEqual(out["columns"], header)
        self.assertEqual((out["rows"], len(rows)), (150, 150))
        self.assertEqual([r[-1] for r in rows], [r[-1] for r in source_rows])
        for i, name in enumerate(header[:-1]):
            original = [float(r[i]) for r in source_rows]
            fitted = out["stats"]["numeric"][name]
            self.assertAlmostEqual(fitted["mean"], statistics.fmean(original), places=12)
            self.assertAlmostEqual(fitted["std"], statistics.pstdev(original), places=12)
            scaled = [float(r[i]) for r in rows]
            self.assertAlmostEqual(statistics.fmean(scaled), 0.0, places=12)
            self.assertAlmostEqual(statistics.pstdev(scaled), 1.0, places=12)
        # scikit-learn's StandardScaler on iris, first row, first column.
        self.assertAlmostEqual(float(rows[0][0]), -0.9006811702978088, places=12)
        self.assertEqual(out["stats"]["categorical"], {})
        self.assertTrue(out["fitted"])
        self.assertEqual(host.messages("info"), ["features written"])
        self.assertEqual(host.logs[-1].fields["rows"], "150")
        self.assertEqual(host.heartbeats, [{"phase": "read", "rows": 150}])

    def test_breast_cancer_keeps_every_row_and_column(self):
        out = self.run_op(source=os.path.join(DATA, "breast_cancer.csv"), target="target").unwrap()
        self.assertEqual((out["rows"], len(out["columns"])), (569, 31))
        self.assertEqual(sum(out["imputed"].values()), 0)

    def test_missing_numbers_are_imputed_and_categories_one_hot_encoded(self):
        source = self.write(
            "mixed.csv",
            "age,colour,zip,label\n"
            "10,red,100,a\n"
            ",blue,200,b\n"
            "30,,100,a\n"
            "NA,red,?,b\n",
        )
        out = self.run_op(source=source, target="label", categorical=["zip"]).unwrap()
        header, rows = read_csv(self.out)
        self.assertEqual(
            header, ["age", "colour=blue", "colour=red", "zip=100", "zip=200", "label"]
        )
        self.assertEqual(out["stats"]["numeric"], {"age": {"mean": 20.0, "std": 10.0}})
        self.assertEqual(
            out["stats"]["categorical"],
            {"colour": {"categories": ["blue", "red"]}, "zip": {"categories": ["100", "200"]}},
        )
        self.assertEqual(out["imputed"], {"age": 2})
        self.assertEqual(out["missing_categorical"], {"colour": 1, "zip": 1})
        self.assertEqual(
            rows,
            [
                ["-1.0", "0", "1", "1", "0", "a"],
                ["0.0", "1", "0", "0", "1", "b"],
                ["1.0", "0", "0", "1", "0", "a"],
                ["0.0", "0", "1", "0", "0", "b"],
            ],
        )

    def test_statistics_of_one_file_transform_another(self):
        train = self.write("train.csv", "x,c\n1,u\n3,v\n")
        test = self.write("test.csv", "x,c\n5,w\n,u\n")
        fitted = self.run_op(source=train).unwrap()
        out = self.run_op(source=test, stats=fitted["stats"]).unwrap()
        self.assertFalse(out["fitted"])
        self.assertEqual(out["stats"], fitted["stats"])
        self.assertEqual(out["unseen_categories"], {"c": 1})
        _, rows = read_csv(self.out)
        self.assertEqual(rows, [["3.0", "0", "0"], ["0.0", "1", "0"]])

    def test_options_turn_steps_off_and_constant_columns_stay_finite(self):
        source = self.write("plain.csv", "x,k,c\n1,7,u\n3,7,v\n")
        self.run_op(source=source, standardize=False, one_hot=False).unwrap()
        header, rows = read_csv(self.out)
        self.assertEqual(header, ["x", "k", "c"])
        self.assertEqual(rows, [["1.0", "7.0", "u"], ["3.0", "7.0", "v"]])
        self.run_op(source=source).unwrap()
        _, rows = read_csv(self.out)
        self.assertTrue(all(math.isfinite(float(r[1])) for r in rows))
        self.assertEqual([r[1] for r in rows], ["0.0", "0.0"])

    def test_a_column_without_values_is_dropped_with_a_warning(self):
        source = self.write("empty.csv", "x,notes\n1,\n2,NA\n")
        host = FakeHost()
        out = self.run_op(host, source=source).unwrap()
        self.assertEqual((out["columns"], out["dropped"]), (["x"], ["notes"]))
        self.assertIn("column dropped", host.messages("warn"))

    def test_errors_say_what_to_fix(self):
        good = self.write("good.csv", "x,y\n1,2\n")
        cases = [
            (
                {"source": os.path.join(self.dir.name, "nope.csv")},
                "invalid_input",
                "SourceNotFound",
            ),
            ({"source": good, "target": "label"}, "invalid_input", "ColumnNotFound"),
            ({"source": good, "categorical": ["z"]}, "invalid_input", "ColumnNotFound"),
            ({"source": self.write("bad.csv", "x,y\n1\n")}, "invalid_input", "MalformedCsv"),
            ({"source": self.write("dup.csv", "x,x\n1,2\n")}, "invalid_input", "DuplicateColumn"),
            ({"source": self.write("none.csv", "x,y\n")}, "invalid_input", "NoRows"),
            ({"source": self.write("empty.csv", "")}, "invalid_input", "NoRows"),
            (
                {
                    "source": self.write("text.csv", "x\nabc\n"),
                    "stats": {"numeric": {"x": {"mean": 0, "std": 1}}},
                },
                "invalid_input",
                "NonNumericValue",
            ),
            (
                {"source": good, "stats": {"numeric": {"q": {"mean": 0, "std": 1}}}},
                "invalid_input",
                "ColumnNotFound",
            ),
            (
                {"source": good, "output": os.path.join(good, "under-a-file.csv")},
                "invalid_input",
                "OutputNotWritable",
            ),
            ({"source": good, "standardize": "yes"}, "invalid_input", "InvalidInput"),
        ]
        for input, kind, type_name in cases:
            with self.subTest(input=input):
                input.setdefault("output", self.out)
                error = invoke(features.app, "engineer_features", input).error
                self.assertIsNotNone(error)
                self.assertEqual((error.kind, error.type_name), (kind, type_name), error.message)

    def test_cancellation_stops_it(self):
        host = FakeHost(cancel_after=1)
        error = self.run_op(host, source=os.path.join(DATA, "iris.csv")).error
        self.assertEqual((error.kind, error.type_name), ("retryable", "Cancelled"))
        self.assertFalse(os.path.exists(self.out))


class RaiseError(unittest.TestCase):
    def test_is_a_permanent_uncaught_exception(self):
        error = invoke(features.app, "raise_error", {}).error
        self.assertEqual((error.kind, error.type_name), ("permanent", UNCAUGHT_EXCEPTION))
        self.assertEqual(error.message, "ZeroDivisionError: division by zero")
        self.assertIn("_ratio", error.details["traceback"])


class Describe(unittest.TestCase):
    def test_operations_and_schemas(self):
        info = features.app.info()
        self.assertEqual(info["name"], "features")
        names = [op["name"] for op in info["operations"]]
        self.assertEqual(names, ["engineer_features", "raise_error"])
        engineer = info["operations"][0]
        self.assertEqual(engineer["input_schema"]["required"], ["source"])
        self.assertIn("stats", engineer["output_schema"]["properties"])
        self.assertIn("SourceNotFound", engineer["description"])


if __name__ == "__main__":
    unittest.main()
