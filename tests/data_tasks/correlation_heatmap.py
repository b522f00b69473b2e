import unittest

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def task_func(df):
    """The correlation matrix of the numeric columns and its annotated heatmap."""
    if df.empty:
        raise ValueError("empty DataFrame")
    corr = df.select_dtypes("number").corr()
    ax = sns.heatmap(corr, annot=True, cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_title("Correlation Matrix")
    return corr, ax


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=200)
        self.df = pd.DataFrame({"x": x, "y": 2 * x + 1, "z": -x, "label": ["a"] * 200})

    def test_matrix(self):
        corr, _ = task_func(self.df)
        self.assertEqual(list(corr.columns), ["x", "y", "z"])
        self.assertAlmostEqual(corr.loc["x", "y"], 1.0)
        self.assertAlmostEqual(corr.loc["x", "z"], -1.0)

    def test_axes(self):
        _, ax = task_func(self.df)
        self.assertEqual(ax.get_title(), "Correlation Matrix")
        self.assertEqual(len(ax.texts), 9)

    def test_empty(self):
        with self.assertRaises(ValueError):
            task_func(pd.DataFrame())

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
