import os
import tempfile
import unittest

import pandas as pd
from natsort import natsorted


def task_func(directory, pattern=".csv"):
    """Concatenate the CSV files of a directory in natural order of their names.

    Returns a DataFrame with the files' rows, a "source" column naming the file, and
    the files' names in the order used.
    """
    names = natsorted(n for n in os.listdir(directory) if n.endswith(pattern))
    if not names:
        raise ValueError(f"no {pattern} files in {directory}")
    frames = [pd.read_csv(os.path.join(directory, n)).assign(source=n) for n in names]
    return pd.concat(frames, ignore_index=True), names


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for part in (10, 2, 1, 21, 3):
            pd.DataFrame({"part": [part, part], "value": [part * 1.5, part * 2.0]}).to_csv(
                os.path.join(self.dir, f"batch_{part}.csv"), index=False
            )
        with open(os.path.join(self.dir, "notes.txt"), "w") as handle:
            handle.write("not data")

    def test_natural_order(self):
        df, names = task_func(self.dir)
        self.assertEqual(
            names, ["batch_1.csv", "batch_2.csv", "batch_3.csv", "batch_10.csv", "batch_21.csv"]
        )
        self.assertEqual(df["part"].drop_duplicates().tolist(), [1, 2, 3, 10, 21])
        self.assertEqual(len(df), 10)
        self.assertEqual(df.loc[df["source"] == "batch_10.csv", "value"].tolist(), [15.0, 20.0])

    def test_lexical_order_would_differ(self):
        _, names = task_func(self.dir)
        self.assertNotEqual(names, sorted(names))

    def test_totals_per_file(self):
        df, _ = task_func(self.dir)
        totals = df.groupby("source", sort=False)["value"].sum()
        self.assertAlmostEqual(totals["batch_21.csv"], 21 * 3.5)
        self.assertEqual(list(totals.index)[0], "batch_1.csv")

    def test_empty_directory(self):
        with self.assertRaises(ValueError):
            task_func(tempfile.mkdtemp())


if __name__ == "__main__":
    unittest.main()
