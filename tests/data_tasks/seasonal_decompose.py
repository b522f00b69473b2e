import unittest

import numpy as np
import pandas as pd
from statsmodels.tsa.seasonal import seasonal_decompose


def task_func(values, period=12):
    """Additive decomposition of a monthly series; the trend, seasonal and residual Series."""
    series = pd.Series(values, index=pd.date_range("2020-01-01", periods=len(values), freq="MS"))
    result = seasonal_decompose(series, model="additive", period=period)
    return result.trend, result.seasonal, result.resid


class TestCases(unittest.TestCase):
    def test_components(self):
        months = np.arange(48)
        values = 10 + 0.5 * months + 3 * np.sin(2 * np.pi * months / 12)
        trend, seasonal, resid = task_func(values)
        self.assertEqual(len(trend), 48)
        self.assertTrue(np.isnan(trend.iloc[0]))
        self.assertAlmostEqual(trend.iloc[24], 10 + 0.5 * 24, places=6)
        self.assertAlmostEqual(seasonal.iloc[3] - seasonal.iloc[9], 6.0, delta=0.1)
        self.assertLess(np.nanmax(np.abs(resid)), 0.1)

    def test_too_short(self):
        with self.assertRaises(ValueError):
            task_func([1.0, 2.0, 3.0])


if __name__ == "__main__":
    unittest.main()
