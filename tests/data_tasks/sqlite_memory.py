import sqlite3
import unittest

import pandas as pd


def task_func(orders, customers):
    """Load two DataFrames into in-memory SQLite, join and aggregate in SQL, back as a DataFrame."""
    conn = sqlite3.connect(":memory:")
    try:
        orders.to_sql("orders", conn, index=False)
        customers.to_sql("customers", conn, index=False)
        conn.execute("CREATE INDEX idx_cust ON orders(customer_id)")
        query = """
            SELECT c.country, COUNT(o.id) AS n_orders, ROUND(SUM(o.amount), 2) AS total,
                   MAX(o.amount) AS biggest
            FROM orders o JOIN customers c ON c.id = o.customer_id
            WHERE o.amount > ?
            GROUP BY c.country
            ORDER BY total DESC
        """
        result = pd.read_sql_query(query, conn, params=(0,))
        cur = conn.cursor()
        cur.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        tables = [row[0] for row in cur.fetchall()]
        with conn:
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", [(9, "Zed", "NO")])
        count = conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    finally:
        conn.close()
    return result, tables, count


class TestCases(unittest.TestCase):
    def setUp(self):
        self.customers = pd.DataFrame({"id": [1, 2, 3], "name": ["Ann", "Bo", "Cy"], "country": ["FR", "FR", "DE"]})
        self.orders = pd.DataFrame({"id": range(1, 7), "customer_id": [1, 1, 2, 3, 3, 3],
                                    "amount": [10.5, 20.0, -5.0, 7.25, 7.25, 100.0]})

    def test_join(self):
        result, tables, count = task_func(self.orders, self.customers)
        self.assertEqual(result["country"].tolist(), ["DE", "FR"])
        self.assertEqual(result["n_orders"].tolist(), [3, 2])
        self.assertAlmostEqual(result.loc[0, "total"], 114.5)
        self.assertEqual(result.loc[1, "biggest"], 20.0)
        self.assertEqual(tables, ["customers", "orders"])
        self.assertEqual(count, 4)

    def test_row_factory(self):
        conn = sqlite3.connect(":memory:")
        conn.row_factory = sqlite3.Row
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'x')")
        row = conn.execute("SELECT * FROM t").fetchone()
        self.assertEqual(dict(row), {"a": 1, "b": "x"})
        conn.close()


if __name__ == "__main__":
    unittest.main()
