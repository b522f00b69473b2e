import os
import tempfile
import unittest

import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter


def task_func(df, path, sheet="Report"):
    """Write df to an xlsx with a bold filled header, widths, number format, a total row and a chart."""
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append(list(row))
    thin = Side(style="thin")
    for cell in ws[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="4F81BD")
        cell.alignment = Alignment(horizontal="center")
        cell.border = Border(bottom=thin)
    for i, col in enumerate(df.columns, start=1):
        width = max(len(str(col)), *(len(str(v)) for v in df[col])) + 2
        ws.column_dimensions[get_column_letter(i)].width = width
    last = ws.max_row
    ws.append(["Total", f"=SUM(B2:B{last})"])
    for r in range(2, last + 2):
        ws.cell(row=r, column=2).number_format = "#,##0.00"
    ws.freeze_panes = "A2"
    chart = BarChart()
    chart.title = "Values"
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=last), titles_from_data=True)
    ws.add_chart(chart, "D2")
    wb.save(path)
    return path


class TestCases(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(tempfile.mkdtemp(), "report.xlsx")
        self.df = pd.DataFrame({"item": ["apples", "kiwis"], "value": [1234.5, 20.0]})

    def test_format(self):
        task_func(self.df, self.path)
        wb = load_workbook(self.path)
        ws = wb["Report"]
        self.assertTrue(ws["A1"].font.bold)
        self.assertEqual(ws["A1"].fill.fgColor.rgb, "004F81BD")
        self.assertEqual(ws["B2"].number_format, "#,##0.00")
        self.assertEqual(ws["B4"].value, "=SUM(B2:B3)")
        self.assertEqual(ws.column_dimensions["A"].width, 8)
        self.assertEqual(ws.freeze_panes, "A2")
        self.assertEqual(ws._charts[0].title.tx.rich.p[0].r[0].t, "Values")

    def test_pandas_reads(self):
        task_func(self.df, self.path)
        back = pd.read_excel(self.path, sheet_name="Report", nrows=2)
        self.assertEqual(back["item"].tolist(), ["apples", "kiwis"])
        self.assertEqual(back["value"].tolist(), [1234.5, 20.0])


if __name__ == "__main__":
    unittest.main()
