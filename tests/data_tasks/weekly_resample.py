import unittest

import numpy as np
import pandas as pd


def task_func(start, days, seed=0):
    """Daily random sales from start for days, summed per week (weeks end on Sunday)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=days, freq="D")
    daily = pd.Series(rng.integers(0, 100, days), index=index, name="sales")
    return daily.resample("W-SUN").sum()


class TestCases(unittest.TestCase):
    def test_weeks(self):
        weekly = task_func("2024-01-01", 14)  # a Monday
        self.assertEqual(len(weekly), 2)
        self.assertEqual(str(weekly.index[0].date()), "2024-01-07")
        self.assertEqual(weekly.name, "sales")

    def test_total_preserved(self):
        rng = np.random.default_rng(0)
        self.assertEqual(task_func("2024-03-05", 30).sum(), rng.integers(0, 100, 30).sum())


if __name__ == "__main__":
    unittest.main()
