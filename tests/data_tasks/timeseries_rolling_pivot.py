import io
import os
import tempfile
import unittest

import numpy as np
import pandas as pd

CSV = """date,store,product,units,price
2024-01-01,A,apple,3,1.5
2024-01-01,B,apple,5,1.5
2024-01-02,A,pear,2,2.0
2024-01-15,B,pear,7,2.0
2024-02-03,A,apple,4,1.6
2024-02-10,B,apple,1,1.6
2024-02-28,A,pear,6,2.1
2024-03-05,B,pear,3,2.1
"""


def task_func(csv_text, out_path):
    """Parse sales, monthly revenue per store, a pivot table, a 2-row rolling mean; save and reload."""
    df = pd.read_csv(io.StringIO(csv_text), parse_dates=["date"])
    df["revenue"] = df["units"] * df["price"]
    monthly = df.set_index("date").groupby("store")["revenue"].resample("MS").sum().unstack(0).fillna(0)
    pivot = pd.pivot_table(df, values="units", index="store", columns="product", aggfunc="sum", fill_value=0, margins=True)
    daily = df.groupby("date")["units"].sum().asfreq("D", fill_value=0)
    rolling = daily.rolling(window=7, min_periods=1).mean()
    df["weekday"] = df["date"].dt.day_name()
    df.to_csv(out_path, index=False, date_format="%Y-%m-%d")
    back = pd.read_csv(out_path, parse_dates=["date"])
    return monthly, pivot, rolling, back


class TestCases(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.out = os.path.join(self.dir, "sales.csv")

    def test_monthly(self):
        monthly, _, _, _ = task_func(CSV, self.out)
        self.assertEqual(list(monthly.index.strftime("%Y-%m")), ["2024-01", "2024-02", "2024-03"])
        self.assertAlmostEqual(monthly.loc["2024-01-01", "B"], 5 * 1.5 + 7 * 2.0)
        self.assertAlmostEqual(monthly.loc["2024-03-01", "A"], 0.0)

    def test_pivot(self):
        _, pivot, _, _ = task_func(CSV, self.out)
        self.assertEqual(pivot.loc["All", "All"], 31)
        self.assertEqual(pivot.loc["A", "pear"], 8)

    def test_rolling(self):
        _, _, rolling, _ = task_func(CSV, self.out)
        self.assertEqual(len(rolling), 65)
        self.assertAlmostEqual(rolling.iloc[0], 8.0)
        self.assertAlmostEqual(rolling.iloc[1], 5.0)

    def test_roundtrip(self):
        _, _, _, back = task_func(CSV, self.out)
        self.assertTrue(pd.api.types.is_datetime64_any_dtype(back["date"]))
        self.assertEqual(back["weekday"].iloc[0], "Monday")
        self.assertEqual(back.shape, (8, 7))
        self.assertTrue(np.isclose(back["revenue"].sum(), 56.9))


if __name__ == "__main__":
    unittest.main()
