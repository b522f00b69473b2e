import unittest

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def task_func(df, title="Correlation Matrix"):
    """Heatmap of the numeric columns' correlations, annotated; returns the Axes."""
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df must be a non-empty DataFrame")
    corr = df.select_dtypes("number").corr()
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.heatmap(corr, annot=True, fmt=".2f", cmap="coolwarm", vmin=-1, vmax=1, ax=ax)
    ax.set_title(title)
    return ax


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=50)
        self.df = pd.DataFrame({"a": x, "b": 2 * x + rng.normal(scale=0.1, size=50),
                                "c": rng.normal(size=50), "label": ["x"] * 50})

    def tearDown(self):
        plt.close("all")

    def test_axes_and_labels(self):
        ax = task_func(self.df)
        self.assertIsInstance(ax, plt.Axes)
        self.assertEqual(ax.get_title(), "Correlation Matrix")
        self.assertEqual([t.get_text() for t in ax.get_xticklabels()], ["a", "b", "c"])
        self.assertEqual([t.get_text() for t in ax.get_yticklabels()], ["a", "b", "c"])

    def test_annotations(self):
        ax = task_func(self.df, title="T")
        texts = [t.get_text() for t in ax.texts]
        self.assertEqual(len(texts), 9)
        self.assertEqual(texts[0], "1.00")
        self.assertGreater(float(texts[1]), 0.95)

    def test_colorbar(self):
        ax = task_func(self.df)
        self.assertEqual(len(ax.figure.axes), 2)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            task_func(pd.DataFrame())


if __name__ == "__main__":
    unittest.main()
