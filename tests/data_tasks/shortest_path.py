import unittest

import networkx as nx


def task_func(edges, source, target):
    """The cheapest path and its cost in a weighted, undirected graph."""
    graph = nx.Graph()
    graph.add_weighted_edges_from(edges)
    path = nx.dijkstra_path(graph, source, target)
    return path, nx.path_weight(graph, path, weight="weight")


class TestCases(unittest.TestCase):
    EDGES = [("a", "b", 1), ("b", "c", 2), ("a", "c", 5), ("c", "d", 1)]

    def test_path(self):
        self.assertEqual(task_func(self.EDGES, "a", "d"), (["a", "b", "c", "d"], 4))

    def test_unreachable(self):
        with self.assertRaises(nx.NetworkXNoPath):
            task_func(self.EDGES + [("x", "y", 1)], "a", "y")


if __name__ == "__main__":
    unittest.main()
