import unittest

import matplotlib.pyplot as plt
import numpy as np


def task_func(steps=1000, seed=None):
    """A ±1 random walk, its descriptive statistics and a line plot of it."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError("steps must be a positive integer")
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.choice([-1, 1], size=steps))
    stats = {"min": int(walk.min()), "max": int(walk.max()), "mean": float(walk.mean())}
    fig, ax = plt.subplots()
    ax.plot(walk)
    ax.set_title("Random Walk")
    return stats, ax


class TestCases(unittest.TestCase):
    def test_reproducible(self):
        first, _ = task_func(500, seed=3)
        second, ax = task_func(500, seed=3)
        self.assertEqual(first, second)
        self.assertEqual(len(ax.lines[0].get_ydata()), 500)

    def test_steps_are_unit(self):
        _, ax = task_func(200, seed=1)
        ys = ax.lines[0].get_ydata()
        self.assertTrue(set(np.abs(np.diff(ys))) <= {1})

    def test_invalid(self):
        with self.assertRaises(ValueError):
            task_func(0)

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
