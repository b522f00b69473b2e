import sqlite3
import unittest

import pandas as pd


def task_func(rows):
    """Load (name, dept, salary) rows into SQLite; average salary per department by SQL."""
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE staff (name TEXT, dept TEXT, salary REAL)")
        conn.executemany("INSERT INTO staff VALUES (?, ?, ?)", rows)
        return pd.read_sql_query(
            "SELECT dept, AVG(salary) AS avg_salary, COUNT(*) AS n FROM staff "
            "GROUP BY dept ORDER BY avg_salary DESC",
            conn,
        )


class TestCases(unittest.TestCase):
    def test_report(self):
        df = task_func([("a", "eng", 100), ("b", "eng", 120), ("c", "ops", 90)])
        self.assertEqual(df["dept"].tolist(), ["eng", "ops"])
        self.assertEqual(df["avg_salary"].tolist(), [110.0, 90.0])
        self.assertEqual(df["n"].tolist(), [2, 1])

    def test_empty(self):
        self.assertTrue(task_func([]).empty)


if __name__ == "__main__":
    unittest.main()
