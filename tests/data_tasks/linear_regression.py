import unittest

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split


def task_func(df, target, test_size=0.2, seed=42):
    """Fit a linear regression of target on the other columns; (coefficients, test R^2)."""
    features = df.drop(columns=[target])
    X_train, X_test, y_train, y_test = train_test_split(
        features, df[target], test_size=test_size, random_state=seed
    )
    model = LinearRegression().fit(X_train, y_train)
    return dict(zip(features.columns, np.round(model.coef_, 3))), model.score(X_test, y_test)


class TestCases(unittest.TestCase):
    def test_exact_relation(self):
        rng = np.random.default_rng(0)
        df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
        df["y"] = 3 * df["a"] - 2 * df["b"] + 5
        coefs, score = task_func(df, "y")
        self.assertEqual(coefs, {"a": 3.0, "b": -2.0})
        self.assertAlmostEqual(score, 1.0)

    def test_noisy_relation(self):
        rng = np.random.default_rng(1)
        df = pd.DataFrame({"a": rng.normal(size=500)})
        df["y"] = df["a"] + rng.normal(scale=0.1, size=500)
        coefs, score = task_func(df, "y")
        self.assertAlmostEqual(coefs["a"], 1.0, delta=0.05)
        self.assertGreater(score, 0.95)


if __name__ == "__main__":
    unittest.main()
