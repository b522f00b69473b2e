import os
import tempfile
import unittest

import pandas as pd
from docx import Document
from docx.shared import Pt


def task_func(df, path, title="Quarterly report"):
    """Write a Word report: a title, one sentence of summary and a table of the mean and
    total of "amount" per "team", largest total first. Returns the table as a DataFrame."""
    if df.empty:
        raise ValueError("empty data")
    summary = (
        df.groupby("team")["amount"]
        .agg(mean="mean", total="sum")
        .sort_values("total", ascending=False)
        .reset_index()
    )
    document = Document()
    document.add_heading(title, level=1)
    paragraph = document.add_paragraph(f"{len(df)} rows from {df['team'].nunique()} teams. ")
    run = paragraph.add_run(f"Top team: {summary.loc[0, 'team']}.")
    run.bold = True
    run.font.size = Pt(12)
    table = document.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, name in zip(table.rows[0].cells, ["Team", "Mean", "Total"]):
        cell.text = name
    for row in summary.itertuples(index=False):
        cells = table.add_row().cells
        cells[0].text = row.team
        cells[1].text = f"{row.mean:.2f}"
        cells[2].text = f"{row.total:.2f}"
    document.save(path)
    return summary


class TestCases(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(tempfile.mkdtemp(), "report.docx")
        self.df = pd.DataFrame(
            {"team": ["a", "b", "a", "c", "b", "a"], "amount": [10, 40, 20, 5, 15, 30]}
        )

    def test_table_in_document(self):
        task_func(self.df, self.path)
        document = Document(self.path)
        rows = [[cell.text for cell in row.cells] for row in document.tables[0].rows]
        self.assertEqual(rows[0], ["Team", "Mean", "Total"])
        self.assertEqual(rows[1:], [["a", "20.00", "60.00"], ["b", "27.50", "55.00"],
                                    ["c", "5.00", "5.00"]])

    def test_title_and_summary(self):
        task_func(self.df, self.path, title="Q3")
        paragraphs = Document(self.path).paragraphs
        self.assertEqual(paragraphs[0].text, "Q3")
        self.assertEqual(paragraphs[0].style.name, "Heading 1")
        self.assertEqual(paragraphs[1].text, "6 rows from 3 teams. Top team: a.")
        self.assertTrue(paragraphs[1].runs[1].bold)

    def test_returns_summary(self):
        summary = task_func(self.df, self.path)
        self.assertEqual(summary["team"].tolist(), ["a", "b", "c"])
        self.assertTrue(os.path.getsize(self.path) > 0)

    def test_empty(self):
        with self.assertRaises(ValueError):
            task_func(self.df.iloc[0:0], self.path)


if __name__ == "__main__":
    unittest.main()
