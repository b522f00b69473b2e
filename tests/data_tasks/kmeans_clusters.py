import unittest

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs


def task_func(data, n_clusters=3, seed=0):
    """KMeans labels for the points and a scatter plot coloured by cluster with centroids."""
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        raise ValueError("data must be a 2-D array")
    model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(data)
    fig, ax = plt.subplots()
    ax.scatter(data[:, 0], data[:, 1], c=model.labels_)
    ax.scatter(*model.cluster_centers_.T, marker="x", s=100, c="red", label="Centroids")
    ax.set_title("K-Means Clustering")
    ax.legend()
    return model.labels_, ax


class TestCases(unittest.TestCase):
    def test_recovers_blobs(self):
        data, truth = make_blobs(n_samples=300, centers=3, cluster_std=0.5, random_state=42)
        labels, ax = task_func(data)
        self.assertEqual(len(set(labels)), 3)
        # Every true blob maps onto exactly one found cluster.
        for blob in range(3):
            self.assertEqual(len(set(labels[truth == blob])), 1)
        self.assertEqual(ax.get_title(), "K-Means Clustering")
        self.assertEqual(len(ax.collections), 2)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            task_func([[1, 2], [3, 4]])

    def tearDown(self):
        plt.close("all")


if __name__ == "__main__":
    unittest.main()
