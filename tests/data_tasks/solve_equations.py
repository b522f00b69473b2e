import unittest

import sympy as sp


def task_func(expression):
    """The real roots of a polynomial given as text, sorted, and its derivative."""
    x = sp.Symbol("x")
    poly = sp.sympify(expression)
    roots = sorted(r for r in sp.solve(poly, x) if r.is_real)
    return roots, sp.diff(poly, x)


class TestCases(unittest.TestCase):
    def test_quadratic(self):
        roots, derivative = task_func("x**2 - 5*x + 6")
        self.assertEqual(roots, [2, 3])
        self.assertEqual(str(derivative), "2*x - 5")

    def test_no_real_roots(self):
        roots, _ = task_func("x**2 + 1")
        self.assertEqual(roots, [])


if __name__ == "__main__":
    unittest.main()
