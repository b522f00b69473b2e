import random
import statistics
import unittest

import numpy as np
import pandas as pd


def task_func(n_rows=100, seed=None):
    """A synthetic survey: reproducible for a given seed (random and numpy's Generator)."""
    random.seed(seed)
    rng = np.random.default_rng(seed)
    cities = ["Paris", "Oslo", "Lima", "Pune"]
    df = pd.DataFrame({
        "id": random.sample(range(1000, 10000), n_rows),
        "city": [random.choice(cities) for _ in range(n_rows)],
        "age": rng.integers(18, 80, n_rows),
        "score": rng.normal(50, 10, n_rows).round(2),
        "group": rng.choice(["ctrl", "test"], n_rows, p=[0.3, 0.7]),
    })
    weights = [random.uniform(0, 1) for _ in range(n_rows)]
    shuffled = cities[:]
    random.shuffle(shuffled)
    return df, statistics.median(weights), shuffled, rng.permutation(5)


class TestCases(unittest.TestCase):
    def test_reproducible(self):
        a = task_func(50, seed=42)
        b = task_func(50, seed=42)
        pd.testing.assert_frame_equal(a[0], b[0])
        self.assertEqual(a[1], b[1])
        self.assertEqual(a[2], b[2])
        np.testing.assert_array_equal(a[3], b[3])

    def test_different_seed(self):
        a, _, _, _ = task_func(50, seed=1)
        b, _, _, _ = task_func(50, seed=2)
        self.assertFalse(a["score"].equals(b["score"]))

    def test_values(self):
        df, med, shuffled, perm = task_func(200, seed=0)
        self.assertEqual(df["id"].nunique(), 200)
        self.assertTrue(df["age"].between(18, 79).all())
        self.assertAlmostEqual(df["score"].mean(), 50, delta=3)
        self.assertGreater((df["group"] == "test").mean(), 0.55)
        self.assertTrue(0 < med < 1)
        self.assertEqual(sorted(shuffled), ["Lima", "Oslo", "Paris", "Pune"])
        self.assertEqual(sorted(perm), [0, 1, 2, 3, 4])

    def test_unseeded(self):
        df, _, _, _ = task_func(10)
        self.assertEqual(len(df), 10)


if __name__ == "__main__":
    unittest.main()
