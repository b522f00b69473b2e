import unittest

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def task_func(df, column, bins=10):
    """Histogram of one numeric column with its mean marked; returns the Axes."""
    if column not in df.columns or not pd.api.types.is_numeric_dtype(df[column]):
        raise ValueError(f"{column!r} is not a numeric column")
    _fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    ax.hist(df[column].dropna(), bins=bins, color="steelblue", edgecolor="black")
    ax.axvline(df[column].mean(), color="red", linestyle="--", label="mean")
    ax.set_title(f"Distribution of {column}")
    ax.set_xlabel(column)
    ax.set_ylabel("Frequency")
    ax.legend()
    return ax


class TestCases(unittest.TestCase):
    # Like many generated test suites: every case draws a figure and none closes it.
    def setUp(self):
        rng = np.random.default_rng(3)
        self.df = pd.DataFrame(
            {"a": rng.normal(size=500), "b": rng.exponential(size=500)}
        )

    def _check(self, column, bins):
        ax = task_func(self.df, column, bins)
        self.assertEqual(ax.get_title(), f"Distribution of {column}")
        self.assertEqual(len(ax.patches), bins)
        self.assertAlmostEqual(ax.lines[0].get_xdata()[0], self.df[column].mean())

    def test_bins(self):
        for bins in (5, 10, 20, 30, 40, 50):
            for column in ("a", "b"):
                with self.subTest(bins=bins, column=column):
                    self._check(column, bins)

    def test_more_bins(self):
        for bins in range(60, 130, 10):
            for column in ("a", "b"):
                self._check(column, bins)

    def test_not_numeric(self):
        with self.assertRaises(ValueError):
            task_func(self.df.assign(c="x"), "c")


if __name__ == "__main__":
    unittest.main()
