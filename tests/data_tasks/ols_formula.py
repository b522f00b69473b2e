import unittest

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf


def task_func(df):
    """OLS of price on size and a categorical city, with robust errors; coefficient table."""
    model = smf.ols("price ~ size + C(city)", data=df).fit(cov_type="HC3")
    table = pd.DataFrame({"coef": model.params, "p": model.pvalues}).round(4)
    logit = smf.logit("expensive ~ size", data=df.assign(expensive=(df.price > df.price.median()).astype(int))).fit(disp=0)
    return model.rsquared, table, model.summary().as_text(), float(logit.params["size"])


class TestCases(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(7)
        n = 200
        size = rng.uniform(30, 150, n)
        city = rng.choice(["A", "B", "C"], n)
        bump = pd.Series(city).map({"A": 0, "B": 50, "C": 120}).to_numpy()
        self.df = pd.DataFrame({"size": size, "city": city, "price": 3 * size + bump + rng.normal(0, 10, n)})

    def test_fit(self):
        r2, table, summary, slope = task_func(self.df)
        self.assertGreater(r2, 0.95)
        self.assertEqual(list(table.index), ["Intercept", "C(city)[T.B]", "C(city)[T.C]", "size"])
        self.assertAlmostEqual(table.loc["size", "coef"], 3.0, delta=0.1)
        self.assertAlmostEqual(table.loc["C(city)[T.C]", "coef"], 120, delta=8)
        self.assertLess(table.loc["size", "p"], 0.001)
        self.assertIn("OLS Regression Results", summary)
        self.assertIn("HC3", summary)
        self.assertGreater(slope, 0)

    def test_matches_api(self):
        X = pd.get_dummies(self.df[["size", "city"]], drop_first=True, dtype=float)
        res = sm.OLS(self.df.price, sm.add_constant(X)).fit()
        r2, _, _, _ = task_func(self.df)
        self.assertAlmostEqual(res.rsquared, r2, places=8)


if __name__ == "__main__":
    unittest.main()
