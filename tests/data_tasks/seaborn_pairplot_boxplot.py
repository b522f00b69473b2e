import unittest

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def task_func(df, target):
    """A pairplot of the numeric columns coloured by target, and a boxplot of the first one."""
    grid = sns.pairplot(df, hue=target, diag_kind="hist")
    fig, ax = plt.subplots()
    first = df.select_dtypes("number").columns[0]
    sns.boxplot(data=df, x=target, y=first, ax=ax)
    ax.set_title(f"{first} by {target}")
    ax.set_xlabel(target.capitalize())
    return grid, ax


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(1)
        self.df = pd.DataFrame({
            "length": np.r_[rng.normal(5, 0.3, 30), rng.normal(7, 0.3, 30)],
            "width": np.r_[rng.normal(2, 0.2, 30), rng.normal(3, 0.2, 30)],
            "species": ["setosa"] * 30 + ["virginica"] * 30,
        })

    def tearDown(self):
        plt.close("all")

    def test_pairplot(self):
        grid, _ = task_func(self.df, "species")
        self.assertIsInstance(grid, sns.axisgrid.PairGrid)
        self.assertEqual(grid.axes.shape, (2, 2))
        self.assertEqual(grid.axes[1, 0].get_xlabel(), "length")
        self.assertEqual(grid.axes[1, 0].get_ylabel(), "width")
        self.assertEqual([t.get_text() for t in grid.legend.get_texts()], ["setosa", "virginica"])

    def test_boxplot(self):
        _, ax = task_func(self.df, "species")
        self.assertEqual(ax.get_title(), "length by species")
        self.assertEqual(ax.get_xlabel(), "Species")
        self.assertEqual(ax.get_ylabel(), "length")
        self.assertEqual([t.get_text() for t in ax.get_xticklabels()], ["setosa", "virginica"])
        self.assertEqual(len(ax.patches), 2)


if __name__ == "__main__":
    unittest.main()
