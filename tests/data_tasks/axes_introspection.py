import io
import unittest

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def task_func(sales):
    """Monthly sales: a bar chart (DataFrame.plot) and a line of the cumulative total; PNG bytes."""
    df = pd.DataFrame(sales).set_index("month")
    fig, (ax_bar, ax_line) = plt.subplots(1, 2, figsize=(10, 4))
    df.plot(kind="bar", ax=ax_bar, legend=True, title="Sales per month", rot=45)
    ax_bar.set_ylabel("Units")
    df.cumsum().plot(kind="line", ax=ax_line, marker="o", title="Cumulative")
    ax_line.axhline(df.values.sum(), color="red", linestyle="--", label="total")
    ax_line.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return ax_bar, ax_line, buf.getvalue()


class TestCases(unittest.TestCase):
    sales = {"month": ["Jan", "Feb", "Mar", "Apr"], "north": [3, 5, 2, 7], "south": [1, 1, 4, 2]}

    def tearDown(self):
        plt.close("all")

    def test_bars(self):
        ax_bar, _, _ = task_func(self.sales)
        self.assertEqual(ax_bar.get_title(), "Sales per month")
        self.assertEqual(len(ax_bar.patches), 8)
        heights = [p.get_height() for p in ax_bar.patches]
        self.assertEqual(heights, [3, 5, 2, 7, 1, 1, 4, 2])
        self.assertEqual([t.get_text() for t in ax_bar.get_xticklabels()], self.sales["month"])
        self.assertEqual(ax_bar.get_xticklabels()[0].get_rotation(), 45)
        self.assertEqual([t.get_text() for t in ax_bar.get_legend().get_texts()], ["north", "south"])

    def test_lines(self):
        _, ax_line, _ = task_func(self.sales)
        lines = ax_line.get_lines()
        self.assertEqual(len(lines), 3)
        np.testing.assert_array_equal(lines[0].get_ydata(), [3, 8, 10, 17])
        self.assertEqual(lines[2].get_linestyle(), "--")
        self.assertEqual(matplotlib.colors.to_hex(lines[2].get_color()), "#ff0000")

    def test_png(self):
        _, _, png = task_func(self.sales)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        width = int.from_bytes(png[16:20], "big")
        self.assertEqual(width, 500)


if __name__ == "__main__":
    unittest.main()
