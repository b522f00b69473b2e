import os
import tempfile
import unittest

import pandas as pd
import xlrd
import xlwt


def task_func(records, path, sheet_name="Sales"):
    """Write a list of dicts to a legacy .xls workbook with a bold header row.

    Dates are written as Excel dates. Returns the path written.
    """
    if not records:
        raise ValueError("no records")
    columns = list(records[0])
    book = xlwt.Workbook()
    sheet = book.add_sheet(sheet_name)
    bold = xlwt.easyxf("font: bold on")
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for col, name in enumerate(columns):
        sheet.write(0, col, name, bold)
    for row, record in enumerate(records, start=1):
        for col, name in enumerate(columns):
            value = record[name]
            if hasattr(value, "year"):
                sheet.write(row, col, value, dates)
            else:
                sheet.write(row, col, value)
    book.save(path)
    return path


class TestCases(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(tempfile.mkdtemp(), "sales.xls")
        self.records = [
            {"region": "north", "units": 12, "price": 2.5, "day": pd.Timestamp("2024-03-01")},
            {"region": "south", "units": 7, "price": 3.0, "day": pd.Timestamp("2024-03-02")},
            {"region": "north", "units": 5, "price": 2.5, "day": pd.Timestamp("2024-03-03")},
        ]

    def test_read_back_with_pandas(self):
        task_func(self.records, self.path)
        df = pd.read_excel(self.path, sheet_name="Sales")
        self.assertEqual(list(df.columns), ["region", "units", "price", "day"])
        self.assertEqual(df.groupby("region")["units"].sum().to_dict(), {"north": 17, "south": 7})
        self.assertEqual(df["day"].dt.day.tolist(), [1, 2, 3])

    def test_read_back_with_xlrd(self):
        task_func(self.records, self.path, sheet_name="Q1")
        book = xlrd.open_workbook(self.path, formatting_info=True)
        sheet = book.sheet_by_name("Q1")
        self.assertEqual((sheet.nrows, sheet.ncols), (4, 4))
        self.assertEqual(sheet.cell_value(2, 0), "south")
        self.assertEqual(sheet.cell_value(3, 1) * sheet.cell_value(3, 2), 12.5)
        self.assertEqual(sheet.cell_type(1, 3), xlrd.XL_CELL_DATE)
        header_font = book.font_list[book.xf_list[sheet.cell_xf_index(0, 0)].font_index]
        self.assertTrue(header_font.bold)

    def test_no_records(self):
        with self.assertRaises(ValueError):
            task_func([], self.path)


if __name__ == "__main__":
    unittest.main()
