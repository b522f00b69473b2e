import unittest

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import sympy as sp


def task_func(expr_text, edges):
    """Symbolic calculus on an expression, and graph metrics plus a drawing of a weighted graph."""
    x = sp.symbols("x")
    expr = sp.sympify(expr_text)
    deriv = sp.diff(expr, x)
    roots = sorted(float(r) for r in sp.solve(sp.Eq(deriv, 0), x) if r.is_real)
    integral = sp.integrate(expr, (x, 0, 1))
    f = sp.lambdify(x, expr, "numpy")
    values = f(np.array([0.0, 1.0, 2.0]))
    G = nx.Graph()
    G.add_weighted_edges_from(edges)
    path = nx.shortest_path(G, "a", "d", weight="weight")
    rank = nx.pagerank(G)
    central = max(nx.degree_centrality(G).items(), key=lambda kv: kv[1])[0]
    fig, ax = plt.subplots()
    pos = nx.spring_layout(G, seed=1)
    nx.draw(G, pos, ax=ax, with_labels=True, node_color="lightblue")
    nx.draw_networkx_edge_labels(G, pos, edge_labels=nx.get_edge_attributes(G, "weight"), ax=ax)
    return str(deriv), roots, integral, values, path, rank, central, ax


class TestCases(unittest.TestCase):
    edges = [("a", "b", 1), ("b", "c", 2), ("a", "c", 5), ("c", "d", 1), ("b", "e", 1)]

    def tearDown(self):
        plt.close("all")

    def test_calculus(self):
        deriv, roots, integral, values, *_ = task_func("x**3 - 3*x", self.edges)
        self.assertEqual(deriv, "3*x**2 - 3")
        self.assertEqual(roots, [-1.0, 1.0])
        self.assertEqual(integral, sp.Rational(-5, 4))
        np.testing.assert_allclose(values, [0, -2, 2])

    def test_graph(self):
        *_, path, rank, central, ax = task_func("x", self.edges)
        self.assertEqual(path, ["a", "b", "c", "d"])
        self.assertAlmostEqual(sum(rank.values()), 1.0)
        self.assertEqual(central, "b")
        self.assertEqual(len(ax.texts), 5 + 5)


if __name__ == "__main__":
    unittest.main()
