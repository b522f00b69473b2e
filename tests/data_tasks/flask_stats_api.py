import unittest

import pandas as pd
from flask import Flask, abort, jsonify, request


def task_func(df):
    """A Flask app serving a DataFrame: GET /columns, GET /stats/<column> (count, mean,
    min, max of a numeric column; 404 unknown, 400 not numeric) and POST /rows (JSON
    list of objects with the same columns; 201 and the new row count)."""
    app = Flask(__name__)
    app.config["data"] = df.copy()

    @app.get("/columns")
    def columns():
        return jsonify(list(app.config["data"].columns))

    @app.get("/stats/<column>")
    def stats(column):
        data = app.config["data"]
        if column not in data.columns:
            abort(404, description=f"no column {column!r}")
        if not pd.api.types.is_numeric_dtype(data[column]):
            abort(400, description=f"{column!r} is not numeric")
        series = data[column]
        return jsonify(
            count=int(series.count()),
            mean=round(float(series.mean()), 4),
            min=float(series.min()),
            max=float(series.max()),
        )

    @app.post("/rows")
    def add_rows():
        rows = request.get_json(silent=True)
        data = app.config["data"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            abort(400, description="expected a JSON list of objects")
        if any(set(r) != set(data.columns) for r in rows):
            abort(400, description="rows must have exactly the columns " + ", ".join(data.columns))
        app.config["data"] = pd.concat([data, pd.DataFrame(rows)], ignore_index=True)
        return jsonify(rows=len(app.config["data"])), 201

    @app.errorhandler(400)
    @app.errorhandler(404)
    def error(exc):
        return jsonify(error=exc.description), exc.code

    return app


class TestCases(unittest.TestCase):
    def setUp(self):
        df = pd.DataFrame({"city": ["a", "b", "c"], "temp": [10.0, 14.0, 21.0]})
        self.client = task_func(df).test_client()

    def test_columns(self):
        response = self.client.get("/columns")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.get_json(), ["city", "temp"])

    def test_stats(self):
        body = self.client.get("/stats/temp").get_json()
        self.assertEqual(body, {"count": 3, "mean": 15.0, "min": 10.0, "max": 21.0})

    def test_errors(self):
        missing = self.client.get("/stats/rain")
        self.assertEqual(missing.status_code, 404)
        self.assertIn("rain", missing.get_json()["error"])
        self.assertEqual(self.client.get("/stats/city").status_code, 400)
        bad = self.client.post("/rows", json={"city": "d"})
        self.assertEqual(bad.status_code, 400)
        self.assertEqual(self.client.post("/rows", json=[{"city": "d"}]).status_code, 400)

    def test_add_rows_changes_stats(self):
        response = self.client.post("/rows", json=[{"city": "d", "temp": 35.0}])
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.get_json(), {"rows": 4})
        body = self.client.get("/stats/temp").get_json()
        self.assertEqual((body["count"], body["mean"], body["max"]), (4, 20.0, 35.0))


if __name__ == "__main__":
    unittest.main()
