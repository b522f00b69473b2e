import os
import tempfile
import unittest

import pandas as pd


def task_func(csv_path, column):
    """Summary statistics of a numeric column of a CSV file, as a dict."""
    df = pd.read_csv(csv_path)
    if column not in df.columns:
        raise ValueError(f"no column {column!r}")
    values = df[column].dropna()
    return {
        "count": int(values.count()),
        "mean": round(float(values.mean()), 3),
        "median": float(values.median()),
        "max": float(values.max()),
    }


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "data.csv")
        pd.DataFrame({"a": [1, 2, 3, None, 10], "b": list("vwxyz")}).to_csv(self.path, index=False)

    def test_summary(self):
        self.assertEqual(
            task_func(self.path, "a"), {"count": 4, "mean": 4.0, "median": 2.5, "max": 10.0}
        )

    def test_missing_column(self):
        with self.assertRaises(ValueError):
            task_func(self.path, "c")

    def test_missing_file(self):
        with self.assertRaises(FileNotFoundError):
            task_func(os.path.join(self.dir, "nope.csv"), "a")


if __name__ == "__main__":
    unittest.main()
