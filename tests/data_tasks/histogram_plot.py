import unittest

import matplotlib.pyplot as plt
import numpy as np


def task_func(mu=0.0, sigma=1.0, n=1000, bins=30, seed=0):
    """A histogram of n normal samples with the fitted density on top; the Axes."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(mu, sigma, n)
    fig, ax = plt.subplots()
    ax.hist(samples, bins=bins, density=True, alpha=0.6, color="g")
    xs = np.linspace(samples.min(), samples.max(), 100)
    ax.plot(xs, np.exp(-((xs - mu) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi)), "k")
    ax.set_title(f"Normal: mu = {mu:.2f}, sigma = {sigma:.2f}")
    return ax


class TestCases(unittest.TestCase):
    def test_title_and_bins(self):
        ax = task_func(1.0, 2.0, bins=20)
        self.assertEqual(ax.get_title(), "Normal: mu = 1.00, sigma = 2.00")
        self.assertEqual(len(ax.patches), 20)
        self.assertEqual(len(ax.lines), 1)

    def test_density_integrates_to_one(self):
        ax = task_func()
        area = sum(p.get_height() * p.get_width() for p in ax.patches)
        self.assertAlmostEqual(area, 1.0, places=6)

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
