import unittest

import matplotlib.pyplot as plt
import pandas as pd


def task_func(records):
    """Revenue per quarter and region as a pivot table, plotted as grouped bars."""
    df = pd.DataFrame(records, columns=["quarter", "region", "revenue"])
    pivot = df.pivot_table(index="quarter", columns="region", values="revenue", aggfunc="sum")
    ax = pivot.plot(kind="bar", title="Revenue by quarter")
    ax.set_ylabel("Revenue")
    return pivot, ax


class TestCases(unittest.TestCase):
    def test_pivot_and_bars(self):
        records = [("Q1", "EU", 10), ("Q1", "US", 20), ("Q2", "EU", 5), ("Q2", "US", 7), ("Q1", "EU", 1)]
        pivot, ax = task_func(records)
        self.assertEqual(pivot.loc["Q1", "EU"], 11)
        self.assertEqual(ax.get_title(), "Revenue by quarter")
        self.assertEqual(len(ax.patches), 4)
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()], ["EU", "US"])

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
