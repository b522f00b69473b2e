import unittest

import numpy as np
from scipy import stats


def task_func(a, b, alpha=0.05):
    """Welch's t-test between two samples: (t statistic, p value, significant?)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError("each sample needs at least two values")
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p), bool(p < alpha)


class TestCases(unittest.TestCase):
    def test_different_means(self):
        rng = np.random.default_rng(0)
        t, p, significant = task_func(rng.normal(0, 1, 100), rng.normal(1, 1, 100))
        self.assertLess(t, 0)
        self.assertLess(p, 1e-6)
        self.assertTrue(significant)

    def test_same_sample(self):
        _, p, significant = task_func([1, 2, 3, 4], [1, 2, 3, 4])
        self.assertAlmostEqual(p, 1.0)
        self.assertFalse(significant)

    def test_too_small(self):
        with self.assertRaises(ValueError):
            task_func([1], [1, 2])


if __name__ == "__main__":
    unittest.main()
