import os
import tempfile
import unittest

import pandas as pd


def task_func(sheets, path):
    """Write DataFrames to one Excel workbook (one sheet each); read back their shapes."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, df in sheets.items():
            df.to_excel(writer, sheet_name=name, index=False)
    back = pd.read_excel(path, sheet_name=None)
    return {name: df.shape for name, df in back.items()}


class TestCases(unittest.TestCase):
    def test_roundtrip(self):
        path = os.path.join(tempfile.mkdtemp(), "report.xlsx")
        shapes = task_func(
            {"q1": pd.DataFrame({"a": [1, 2], "b": [3, 4]}), "q2": pd.DataFrame({"c": [5]})}, path
        )
        self.assertEqual(shapes, {"q1": (2, 2), "q2": (1, 1)})
        self.assertEqual(pd.read_excel(path, sheet_name="q1")["b"].sum(), 7)


if __name__ == "__main__":
    unittest.main()
