import unittest

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler


def task_func(X, n_components=2):
    """Standardise X, project onto its principal components; (projection, ratios, Axes)."""
    scaled = StandardScaler().fit_transform(X)
    pca = PCA(n_components=n_components)
    projected = pca.fit_transform(scaled)
    fig, ax = plt.subplots()
    ax.scatter(projected[:, 0], projected[:, 1])
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    return projected, pca.explained_variance_ratio_, ax


class TestCases(unittest.TestCase):
    def test_projection(self):
        rng = np.random.default_rng(0)
        base = rng.normal(size=(200, 1))
        X = np.hstack([base, 2 * base + rng.normal(scale=0.01, size=(200, 1)), rng.normal(size=(200, 1))])
        projected, ratios, ax = task_func(X)
        self.assertEqual(projected.shape, (200, 2))
        self.assertGreater(ratios[0], 0.6)
        self.assertAlmostEqual(sum(ratios), 1.0, delta=0.01)
        self.assertEqual(ax.get_xlabel(), "PC1")

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
